"""Config updates the way qemu-server's ``update_vm_api`` does them: pending section, hotplug, apply.

Every change is first written to ``[PENDING]``; a stopped VM gets it applied at once
(``vmconfig_apply_pending``), a running one only for what can be hot-plugged
(``vmconfig_hotplug_pending``), the rest waits for the next start.  Cloud-init relevant changes
are recorded in ``[special:cloudinit]`` until the drive is regenerated.
"""

from __future__ import annotations

import re
from typing import Any

from phoenix.sim import propstr
from phoenix.sim.model.vm import VM, CLOUDINIT_OPTIONS, cloudinit_pending_properties, is_drive_key

__all__ = ["FAST_PLUG", "apply_pending", "cleanup_pending", "hotplug_pending", "record_cloudinit_change", "has_cloudinit_drive",
           "drive_removed"]

# vmconfig_hotplug_pending's $fast_plug_option: applied even while running.
FAST_PLUG = {"description", "hookscript", "lock", "name", "onboot", "protection", "shares", "startup",
             "tags", "vmstatestorage"}
LIVE_KEYS = FAST_PLUG | set(CLOUDINIT_OPTIONS) | {"tablet", "cpulimit", "cpuunits"}


def has_cloudinit_drive(conf: dict[str, str]) -> bool:
    return any(is_drive_key(k) and re.search(r"[:/]vm-\d+-cloudinit", v) for k, v in conf.items())


def record_cloudinit_change(vm: VM, key: str, old: str | None, new: str | None) -> None:
    """qemu-server's ``$cloudinit_record_changed``: remember what the current drive was built from."""
    if key not in cloudinit_pending_properties() or not has_cloudinit_drive(vm.conf):
        return
    ci = vm.cloudinit
    added = {k for k in (ci.pop("added", "") or "").split(",") if k}
    recorded = ci.get(key)
    if new is not None:
        if recorded is not None:
            if new == recorded:
                ci.pop(key, None)
                added.discard(key)
        elif key in added:
            pass
        elif old is not None:
            ci[key] = old
        else:
            added.add(key)
    elif old is not None:
        if recorded is None:
            if key in added:
                added.discard(key)
            else:
                ci[key] = old
    if added:
        ci["added"] = ",".join(sorted(added))


def drive_removed(cluster: Any, vm: VM, key: str, value: str) -> None:
    """A drive leaves the config: its volume becomes ``unusedN`` (cloud-init drives are freed)."""
    drive = propstr.parse_drive(value)
    volid = drive.get("file", "")
    if drive.get("media") == "cdrom" and not re.search(r"vm-\d+-cloudinit", volid):
        return
    volume = cluster.volume(vm.node, volid) if ":" in volid else None
    if volume is None:
        return
    if volume.is_cloudinit:
        cluster.free_volume(vm.node, volid)
        return
    if key.startswith("unused"):
        cluster.free_volume(vm.node, volid)
        return
    if any(propstr.parse_drive(v).get("file") == volid for k, v in vm.conf.items() if (is_drive_key(k) or k.startswith("unused")) and k != key):
        return
    n = 0
    while f"unused{n}" in vm.conf:
        n += 1
    vm.conf[f"unused{n}"] = volid


def _delete_now(cluster: Any, vm: VM, key: str) -> None:
    old = vm.conf.pop(key, None)
    if old is None:
        return
    if is_drive_key(key) or key.startswith("unused"):
        drive_removed(cluster, vm, key, old)
    record_cloudinit_change(vm, key, old, None)


def _set_now(cluster: Any, vm: VM, key: str, value: str) -> None:
    old = vm.conf.get(key)
    if old is not None and is_drive_key(key) and propstr.parse_drive(old).get("file") != propstr.parse_drive(value).get("file"):
        vm.conf.pop(key)
        drive_removed(cluster, vm, key, old)
    record_cloudinit_change(vm, key, old, value)
    vm.conf[key] = value


def cleanup_pending(vm: VM) -> bool:
    """AbstractConfig ``cleanup_pending``: drop pending values equal to the current ones and deletes of unset keys.

    So writing a value the VM already has leaves nothing pending, applies nothing and records
    nothing in ``[special:cloudinit]``.  Returns whether anything was dropped.
    """
    changed = False
    for key, value in list(vm.pending.items()):
        if key != "delete" and vm.conf.get(key) is not None and str(vm.conf[key]) == str(value):
            del vm.pending[key]
            changed = True
    deletes = vm.pending_deletes()
    kept = {key: force for key, force in deletes.items() if key in vm.conf}
    if kept != deletes:
        vm.set_pending_deletes(kept)
        changed = True
    return changed


def apply_pending(cluster: Any, vm: VM) -> None:
    """``vmconfig_apply_pending``: everything pending becomes current (VM stopped or starting)."""
    cleanup_pending(vm)
    for key in list(vm.pending_deletes()):
        _delete_now(cluster, vm, key)
    for key, value in sorted(vm.pending.items()):
        if key != "delete":
            _set_now(cluster, vm, key, value)
    vm.pending.clear()


def _hot_pluggable(key: str, value: str | None) -> bool:
    if key in LIVE_KEYS or re.fullmatch(r"net\d+", key):
        return True
    if re.fullmatch(r"(scsi|virtio)\d+", key):
        return True
    if re.fullmatch(r"(ide|sata)\d+", key) and value is not None:
        return propstr.parse_drive(value).get("media") == "cdrom" and "cloudinit" not in value
    return False


def hotplug_pending(cluster: Any, vm: VM) -> None:
    """``vmconfig_hotplug_pending`` with PVE's default ``hotplug: network,disk,usb``."""
    deletes = vm.pending_deletes()
    for key in list(deletes):
        if _hot_pluggable(key, vm.conf.get(key)):
            _delete_now(cluster, vm, key)
            deletes.pop(key)
    vm.set_pending_deletes(deletes)
    for key, value in sorted(vm.pending.items()):
        if key != "delete" and _hot_pluggable(key, value):
            _set_now(cluster, vm, key, value)
            vm.pending.pop(key)
