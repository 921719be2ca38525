"""Getting an image into a PVE storage with ``import`` content, three ways.

* ``download_on_pve``: PVE's ``download-url`` fetches and verifies it (``checksum`` +
  ``checksum-algorithm``); nothing passes through phoenix's machine.
* ``upload``: multipart ``upload`` of a local (verified, maybe customised) file.
* ``place_on_host``: phoenix runs on the PVE node itself — copy into ``<path>/import/`` atomically.

PVE accepts ``import`` files only as ``.qcow2|.raw|.vmdk|.ova``: Ubuntu's ``*.img`` (a qcow2)
is stored under a ``.qcow2`` name.  The name carries the checksum's first digits, so a file left
by an interrupted run is recognised as the same image and never mistaken for another.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from phoenix.errors import PhoenixError
from phoenix.template.checksum import Checksum

__all__ = ["import_filename", "is_staging_name", "find_import_storage", "storage_path", "volume_exists", "download_on_pve",
           "upload", "place_on_host", "remove_volume", "task_log"]

_IMPORT_EXT = (".qcow2", ".raw", ".vmdk", ".ova")


def import_filename(source_name: str, checksum: Checksum | None, vmid: int, tag: str = "") -> str:
    """``noble-server-cloudimg-amd64.img`` → ``noble-server-cloudimg-amd64-<12 hex>-<vmid>-<tag>.qcow2``.

    The template's VMID is part of the name: two templates built from one image at the same time
    must not share (and clean up) one staging file; ``tag`` (the state's owner tag) keeps two
    states building the same VMID apart, and lets a leftover sweep remove only its own files."""
    stem = source_name
    for ext in (".img", *_IMPORT_EXT):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    stem = re.sub(r"[^a-zA-Z0-9\-.+=_]", "_", stem) or "image"
    suffix = f"-{checksum.value[:12]}" if checksum is not None else ""
    return f"{stem}{suffix}-{vmid}{f'-{tag}' if tag else ''}.qcow2"


def is_staging_name(volid: str, vmid: int, tag: str) -> bool:
    """Does ``volid`` (``<storage>:import/<file>``) name a staging image of template ``vmid`` made by
    the state whose owner tag is ``tag``?"""
    name = volid.split(":", 1)[-1].removeprefix("import/")
    return "/" not in name and name.endswith(f"-{vmid}-{tag}.qcow2")


def find_import_storage(client, node: str, preferred: str | None = None) -> str:
    """A storage on ``node`` that takes ``import`` content: ``preferred`` if given, else ``local``, else the first."""
    storages = client.get_list(f"/nodes/{node}/storage")
    by_name = {s["storage"]: s for s in storages}
    capable = [s["storage"] for s in storages if "import" in _contents(s)]
    if preferred:
        if preferred not in by_name:
            raise PhoenixError(f"storage '{preferred}' does not exist on node '{node}'")
        if preferred not in capable:
            raise PhoenixError(_enable_hint(preferred, by_name[preferred], "import"))
        return preferred
    if "local" in capable:
        return "local"
    if capable:
        return sorted(capable)[0]
    target = "local" if "local" in by_name else (sorted(by_name)[0] if by_name else "local")
    raise PhoenixError(f"no storage on node '{node}' takes 'import' content; " +
                       _enable_hint(target, by_name.get(target, {}), "import"))


def _contents(storage: dict) -> list[str]:
    return [c for c in str(storage.get("content", "")).split(",") if c]


def _enable_hint(storage_id: str, storage: dict, content: str) -> str:
    current = _contents(storage)
    wanted = ",".join([*current, content]) if current else content
    return (f"storage '{storage_id}' does not allow '{content}' content; enable it with: "
            f"pvesm set {storage_id} --content {wanted}")


def storage_path(client, storage_id: str) -> Path:
    """The directory behind a file-based storage (``path`` in ``GET /storage``)."""
    for entry in client.get_list("/storage"):
        if entry.get("storage") == storage_id:
            if not entry.get("path"):
                raise PhoenixError(f"storage '{storage_id}' is not a directory storage (it has no path)")
            return Path(entry["path"])
    raise PhoenixError(f"storage '{storage_id}' does not exist")


def volume_exists(client, node: str, storage_id: str, volid: str, content: str = "import") -> bool:
    entries = client.get_list(f"/nodes/{node}/storage/{storage_id}/content", content=content)
    return any(e.get("volid") == volid for e in entries)


def task_log(client, node: str, upid: str | None) -> list[str]:
    """All log lines of a finished task (to surface PVE's own words, e.g. ``simulated: ...``)."""
    if not upid:
        return []
    entries = client.get_list(f"/nodes/{node}/tasks/{upid}/log", start=0, limit=1000)
    return [str(e.get("t", "")) for e in sorted(entries, key=lambda e: int(e.get("n", 0)))]


def download_on_pve(client, node: str, storage_id: str, url: str, filename: str, checksum: Checksum | None,
                    *, verify_certificates: bool = True) -> tuple[str, list[str]]:
    """PVE downloads (and verifies) the image; returns (volid, the task's log lines)."""
    params: dict[str, str | int] = {"url": url, "content": "import", "filename": filename}
    if checksum is not None:
        params.update({"checksum": checksum.value, "checksum-algorithm": checksum.algorithm})
    if not verify_certificates:
        params["verify-certificates"] = 0
    status = client.run_task("POST", f"/nodes/{node}/storage/{storage_id}/download-url", task_timeout=3600, **params)
    return f"{storage_id}:import/{filename}", task_log(client, node, status.get("upid"))


def upload(client, node: str, storage_id: str, path: Path, filename: str, checksum: Checksum | None,
           progress=None) -> str:
    """Streaming multipart upload of ``path`` as ``filename`` (``import`` content), in constant memory
    (:mod:`phoenix.pve.upload`); PVE re-checks the checksum.  ``progress(done, total)`` sees the bytes."""
    from phoenix.pve.upload import upload_file

    params: dict = {"content": "import"}
    if checksum is not None:
        params.update({"checksum-algorithm": checksum.algorithm, "checksum": checksum.value})
    upload_file(client, node, storage_id, path, filename, params, progress=progress)
    return f"{storage_id}:import/{filename}"


def place_on_host(client, storage_id: str, path: Path, filename: str, root: Path | None = None) -> str:
    """Copy ``path`` into the storage's ``import/`` directory (temp name + rename: never half a file)."""
    target_dir = Path(root or storage_path(client, storage_id)) / "import"
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", dir=target_dir)
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, target_dir / filename)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return f"{storage_id}:import/{filename}"


def remove_volume(client, node: str, volid: str) -> None:
    """Delete a storage volume (PVE answers with a task, or null when done at once)."""
    storage_id = volid.split(":", 1)[0]
    from phoenix.pve.client import join_path

    client.run_task("DELETE", join_path("nodes", node, "storage", storage_id, "content", volid))
