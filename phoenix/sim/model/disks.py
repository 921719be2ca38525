"""Drive values in create/config requests: new disks, ``import-from``, cloud-init drives (qemu-server ``create_disks``).

``check_drive`` runs the synchronous checks PVE makes before forking; ``create_drive`` allocates
the volume and returns the drive string PVE stores (``local-lvm:vm-100-disk-0,size=32G``).
"""

from __future__ import annotations

import re
from typing import Any

from phoenix.sim import propstr
from phoenix.sim.core import PVEError, param_error
from phoenix.sim.model.storage import split_volid
from phoenix.sim.model.vm import is_drive_key

__all__ = ["NEW_DISK_RE", "check_drive", "create_drive", "cloudinit_key", "CLOUDINIT_SIZE", "parse_request_drive"]

NEW_DISK_RE = re.compile(r"^(?:([^/:\s]+):)?(\d+(?:\.\d+)?)$")
CLOUDINIT_RE = re.compile(r"^(?:([^/:\s]+):)?cloudinit$")
CLOUDINIT_SIZE = 4 << 20


def cloudinit_key(conf: dict[str, str], exclude: str | None = None) -> str | None:
    for key, value in conf.items():
        if key == exclude or not is_drive_key(key):
            continue
        volid = propstr.parse_drive(value).get("file", "")
        if CLOUDINIT_RE.match(volid) or re.search(r"(^|[:/])vm-\d+-cloudinit", volid):
            return key
    return None


def _images_storage(cluster: Any, sid: str | None, key: str) -> str:
    if not sid:
        raise PVEError("no storage ID specified (and no default storage)\n")
    cluster.storage(sid)
    if "images" not in cluster.storage_content(sid):
        raise param_error({"storage": f"storage '{sid}' does not support vm images"})
    return sid


def parse_request_drive(key: str, value: str) -> dict[str, str]:
    """``$check_drive_param``: ``parse_drive`` + ``cleanup_drive_path`` of a drive sent by a client.

    Unparsable → 400 ``unable to parse drive options``; ``cdrom``/``none`` without a medium get
    ``media=cdrom``.  Printing the result (:func:`propstr.print_drive`) gives PVE's canonical form.
    """
    try:
        drive = propstr.parse_drive(value, key)
    except propstr.PropertyStringError:
        raise param_error({key: "unable to parse drive options"}) from None
    if drive["file"] in ("cdrom", "none") and "media" not in drive:
        drive["media"] = "cdrom"
    return drive


def check_drive(cluster: Any, node: str, key: str, value: str, default_storage: str | None, user: str,
                conf: dict[str, str]) -> None:
    """Synchronous validation of one drive parameter (raises as PVE would before forking)."""
    drive = parse_request_drive(key, value) if is_drive_key(key) else propstr.parse_drive(value)
    volid = drive.get("file", "")
    if CLOUDINIT_RE.match(volid):
        sid = CLOUDINIT_RE.match(volid).group(1) or default_storage
        _images_storage(cluster, sid, key)
        existing = cloudinit_key(conf, exclude=key)
        if existing:
            raise PVEError(f"{key} - cloud-init drive is already attached at '{existing}'\n")
        return
    new = NEW_DISK_RE.match(volid)
    source = drive.get("import-from")
    if source is not None and not (new and float(new.group(2)) == 0):
        raise param_error({key: "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"})
    if new:
        _images_storage(cluster, new.group(1) or default_storage, key)
        if source is not None:
            _check_import_source(cluster, node, key, source, user)
        return
    if volid in ("none", "cdrom") or volid.startswith("/"):
        return
    sid, volname = split_volid(volid)
    cluster.storage(sid)
    if volname.startswith("iso/") and drive.get("media") != "cdrom":
        raise param_error({key: "explicit 'media=cdrom' is required for iso images"})
    if cluster.volume(node, volid) is None and (cluster.file_path(node, volid) is None or not cluster.file_path(node, volid)[0].exists()):
        raise PVEError(f"volume '{volid}' does not exist\n")


def _check_import_source(cluster: Any, node: str, key: str, source: str, user: str) -> None:
    if source.startswith("/"):
        if user != "root@pam":
            raise PVEError("Permission check failed (Only root can pass arbitrary filesystem paths.)\n", status=403)
        return
    sid, volname = split_volid(source)
    cluster.storage(sid)
    if cluster.volume(node, source) is not None:
        return
    vtype = volname.split("/", 1)[0] if "/" in volname else "images"
    if vtype != "import":
        raise param_error({key: f"{source} has wrong type '{vtype}' - needs to be 'images' or 'import'"})


def create_drive(cluster: Any, node: str, vmid: int, key: str, value: str, default_storage: str | None,
                 allocated: list[str], log=lambda line: None) -> str:
    """Allocate what ``value`` asks for and return the drive string to store, in canonical form."""
    drive = parse_request_drive(key, value)
    volid = drive.get("file", "")
    ci = CLOUDINIT_RE.match(volid)
    if ci:
        sid = ci.group(1) or default_storage
        fmt = "raw" if cluster.storage(sid)["type"] == "lvmthin" else "qcow2"
        volume = cluster.alloc_volume(sid, node, vmid, CLOUDINIT_SIZE, fmt=fmt, name=f"vm-{vmid}-cloudinit")
        allocated.append(volume.volid)
        drive["file"] = volume.volid
        drive["media"] = "cdrom"
        return propstr.print_drive(drive, key)
    new = NEW_DISK_RE.match(volid)
    if not new:
        drive.pop("size", None)
        size = _existing_size(cluster, node, volid)
        if size is not None:
            drive["size"] = propstr.format_size(size)
        return propstr.print_drive(drive, key)
    sid = new.group(1) or default_storage
    source = drive.pop("import-from", None)
    agent = guest = False
    if source is not None:
        size, agent = cluster.volume_size(node, source)   # its errors already say "cannot import from"
        guest = cluster.is_guest_image(node, source)
        log(f"importing disk '{source}' to VM {vmid} ...")
    else:
        size = int(float(new.group(2)) * (1 << 30))
    volume = cluster.alloc_volume(sid, node, vmid, size, fmt=drive.pop("format", None), agent_installed=agent,
                                  guest_image=guest)
    allocated.append(volume.volid)
    if source is not None:
        log(f"transferred {size} of {size} (100.00%)")
        log(f"{key}: successfully created disk '{volume.volid},size={propstr.format_size(size)}'")
    drive["file"] = volume.volid
    drive["size"] = propstr.format_size(size)
    return propstr.print_drive(drive, key)


def _existing_size(cluster: Any, node: str, volid: str) -> int | None:
    """``volume_size_info`` of a volume a drive names (``none``/``cdrom``/paths: no size)."""
    if ":" not in volid or volid.startswith("/"):
        return None
    volume = cluster.volume(node, volid)
    if volume is not None:
        return volume.size
    found = cluster.file_path(node, volid)
    return found[0].stat().st_size if found is not None and found[0].is_file() else None
