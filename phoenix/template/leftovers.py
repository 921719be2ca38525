"""What an interrupted template build leaves behind, and removing it on the next run.

Only names phoenix generated and that carry this state's owner tag
(:func:`phoenix.pve.ownership.owner_tag`) are removed: staging images ``<image>-<hex>-<vmid>-<tag>.qcow2``
in a storage's ``import/`` (on PVE, only for the template VMIDs this state declares) and
``work-<vmid>-<tag>-*`` directories in the local image cache.  Another state's files, a user's
images and anything still in use by a concurrent run of another state are never touched; this
state's own runs are serialised by the state lock, so its leftovers are never in use.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from phoenix.pve.ownership import owner_tag
from phoenix.template import delivery

__all__ = ["remove_staging_leftovers", "remove_cache_leftovers"]


def remove_staging_leftovers(client, node: str, storage_id: str, vmid: int, owner: str,
                             report: Callable[[str], None]) -> list[str]:
    """Staging images of template ``vmid`` that an interrupted run of this state left on PVE."""
    tag = owner_tag(owner)
    removed = []
    for entry in client.get(f"/nodes/{node}/storage/{storage_id}/content", content="import") or []:
        volid = str(entry.get("volid", ""))
        if delivery.is_staging_name(volid, vmid, tag):
            report(f"removing staging image {volid} left by an interrupted run")
            delivery.remove_volume(client, node, volid)
            removed.append(volid)
    return removed


def remove_cache_leftovers(cache_dir: Path, vmid: int, owner: str) -> list[Path]:
    """Work directories of template ``vmid`` that an interrupted run of this state left in the image cache."""
    removed = []
    if cache_dir.is_dir():
        for leftover in cache_dir.glob(f"work-{vmid}-{owner_tag(owner)}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    return removed
