"""Apply-time recovery: clones that settle instead of re-sending, locks whose task died, leftovers.

* :func:`clone_owned` sends the clone with this state's ownership marker in ``description`` and,
  when the answer is lost or PVE says the VM exists, settles by reading back
  (:func:`phoenix.pve.settle.settle_create`), never by sending it again.
* :func:`await_vm` waits for a VM's create/clone lock; a lock whose task died raises at once —
  or, with ``--unlock-stale``, is cleared through the API and the half-made VM removed so the
  chain makes it again (only VMs of this state; see docs/pve-locks.md).
* :func:`sweep_template_leftovers` removes staging images that a run killed between a template's
  conversion and its cleanup left behind (the template's own step never runs again).
"""

from __future__ import annotations

from typing import Any, Callable

from phoenix.errors import PhoenixError
from phoenix.pve.client import PVEApiError, PVEConnectionError
from phoenix.pve.locks import StaleLockError, clear_stale_lock, wait_unlocked
from phoenix.pve.ownership import NotOwnedError, ownership, with_marker
from phoenix.pve.settle import settle_create, vm_node

__all__ = ["clone_owned", "await_vm", "sweep_template_leftovers", "CLONE_WAIT_S"]

CLONE_WAIT_S = 600
Report = Callable[[str], None]


def clone_owned(client: Any, source_node: str, source: int, params: dict[str, Any], lineage: str,
                report: Report) -> None:
    """``POST .../clone`` with the marker; a lost answer or ``already exists`` is settled by reading back."""
    params = {**params, "description": with_marker(params.get("description", ""), lineage, int(params["newid"]))}
    try:
        client.run_task("POST", f"/nodes/{source_node}/qemu/{source}/clone", task_timeout=CLONE_WAIT_S, **params)
    except (PVEConnectionError, PVEApiError) as exc:
        if isinstance(exc, PVEApiError) and "already exists" not in exc.message:
            raise
        settle_create(client, source_node, int(params["newid"]), lineage, exc, report, timeout=CLONE_WAIT_S,
                      source_vmid=source)


def await_vm(client: Any, vmid: int, lineage: str, report: Report, *, source_vmid: int | None = None,
             unlock_stale: bool = False) -> dict[str, Any] | None:
    """The VM's config once no create/clone task holds it (None when the VM is gone or was removed
    here after ``--unlock-stale``); :class:`NotOwnedError` for a finished VM that is not ours."""
    node = vm_node(client, vmid)
    if node is None:
        return None
    try:
        config = wait_unlocked(client, node, vmid, timeout=CLONE_WAIT_S, source_vmid=source_vmid, on_wait=report)
    except StaleLockError as exc:
        if not unlock_stale:
            raise
        holder = exc.holder
        report(f"clearing stale lock '{holder.lock}' (its task is gone: {holder.upid or 'none running'})")
        clear_stale_lock(client, holder)
        if holder.lock in ("create", "clone"):
            report(f"removing the half-made VM {vmid} that the dead {holder.lock} task left")
            client.run_task("DELETE", f"/nodes/{node}/qemu/{vmid}", purge=1)
            return None
        config = client.get(f"/nodes/{node}/qemu/{vmid}/config")
    except PVEApiError as exc:
        if "does not exist" in exc.message:
            return None                    # the task failed and PVE removed its placeholder
        raise
    owned = ownership(config, lineage, vmid)
    if not owned.ours:
        raise NotOwnedError(vmid, config.get("name"), node, owned)
    return config


def sweep_template_leftovers(client: Any, cfg: Any, inventory: Any, lineage: str, report: Report) -> None:
    """Staging images of this state's finished templates (two GETs per template; never fails the apply)."""
    from phoenix.template.leftovers import remove_staging_leftovers
    from phoenix.template.delivery import find_import_storage

    for spec in getattr(cfg, "templates", []):
        facts = inventory.vms.get(spec.vmid)
        if facts is None or not facts.template or not ownership(facts.config, lineage, spec.vmid).ours:
            continue
        try:
            storage = find_import_storage(client, facts.node, None)
            remove_staging_leftovers(client, facts.node, storage, spec.vmid, lineage, report)
        except PhoenixError as exc:
            report(f"template {spec.vmid}: could not check for leftover staging images: {exc}")
