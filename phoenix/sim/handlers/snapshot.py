"""Snapshots: list, create (``qmsnapshot``), config, rollback (``qmrollback``), delete (``qmdelsnapshot``).

Follows qemu-server ``Qemu.pm`` L6077-6510 and pve-guest-common ``AbstractConfig.pm`` L686-1201:
a snapshot is a ``[<snapname>]`` section of the VM's config (the current config minus the
snapshot bookkeeping keys, plus ``snaptime``/``description`` and ``parent`` = the snapshot before
it); the main section's ``parent`` names the latest one.  Volume contents are not modelled, so a
rollback restores the configuration (and which volumes it uses), not bytes.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from phoenix.sim import propstr
from phoenix.sim.core import PVEError, Request, route
from phoenix.sim.handlers._vmutil import check_lock, spawn, start_vm, stop_vm, vm_of, vm_status
from phoenix.sim.model.pending import drive_removed
from phoenix.sim.model.vm import VM, is_drive_key, typed_config

NOT_IN_SNAPSHOT = {"snapstate", "snaptime", "vmstate", "lock", "digest", "description"}
RESERVED = ("current", "pending")


def _section(vm: VM, name: str) -> dict[str, str]:
    section = vm.snapshots.get(name)
    if section is None:
        raise PVEError(f"snapshot '{name}' does not exist\n")
    return section


def _is_cdrom(value: str) -> bool:
    return propstr.split(value, "file").get("media") == "cdrom"


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot")
def list_snapshots(req: Request) -> list:
    with req.sim.mutex:
        vm = vm_of(req)
        items: list[dict[str, Any]] = []
        for name, section in vm.snapshots.items():
            item: dict[str, Any] = {"name": name, "snaptime": int(section.get("snaptime") or 0),
                                    "vmstate": 1 if section.get("vmstate") else 0,
                                    "description": section.get("description", "")}
            for key in ("parent", "snapstate"):
                if section.get(key):
                    item[key] = section[key]
            items.append(item)
        current: dict[str, Any] = {"name": "current", "digest": vm.digest, "running": 1 if vm.running else 0,
                                   "description": "You are here!"}
        if vm.conf.get("parent"):
            current["parent"] = vm.conf["parent"]
    return items + [current]


def _check_storage_feature(cluster: Any, vm: VM) -> None:
    """``has_feature('snapshot')`` over every non-CD-ROM drive: raw files on a dir storage cannot."""
    for key, value in vm.conf.items():
        if not is_drive_key(key) or _is_cdrom(value):
            continue
        volume = cluster.volume(vm.node, propstr.split(value, "file").get("file", ""))
        if volume is None or (volume.format == "raw" and cluster.storage(volume.storage)["type"] == "dir"):
            raise PVEError("snapshot feature is not available\n")


@route("POST", "/nodes/{node}/qemu/{vmid}/snapshot")
def create_snapshot(req: Request) -> str:
    name = req.params["snapname"]
    if name.lower() in RESERVED:
        raise PVEError(f"unable to use snapshot name '{name}' (reserved name)\n")
    node, vmid = req.node, req.vmid
    with req.sim.mutex:
        vm_of(req)

    def work(task) -> None:
        sim = task.sim
        with sim.locks.vm(vmid), sim.mutex:
            cluster = sim.model
            vm = cluster.vm_on(node, vmid)
            if vm.is_template:
                raise PVEError("you can't take a snapshot if it's a template\n")
            check_lock(vm)
            if name in vm.snapshots:
                raise PVEError(f"snapshot name '{name}' already used\n")
            _check_storage_feature(cluster, vm)
            section = {k: v for k, v in vm.conf.items() if k not in NOT_IN_SNAPSHOT and not k.startswith("unused")}
            section.update({"snapstate": "prepare", "snaptime": str(int(time.time()))})
            if req.params.get("description") is not None:
                section["description"] = req.params["description"]
            if req.params.get("vmstate") and vm.running:
                memory = int(propstr.split(vm.conf.get("memory", "512"), "current")["current"])
                storage = propstr.split(next((v for k, v in sorted(vm.conf.items()) if is_drive_key(k)
                                              and not _is_cdrom(v)), "local:x"), "file")["file"].split(":")[0]
                state = cluster.alloc_volume(storage, node, vmid, (2 * memory + 500) << 20, fmt="raw",
                                             name=f"vm-{vmid}-state-{name}")
                section.update({"vmstate": state.volid,
                                "runningmachine": vm_status(vm, full=True)["running-machine"]})
            vm.conf["lock"] = "snapshot"
            vm.snapshots[name] = section
            sim.save()
            for key, value in sorted(vm.conf.items()):
                if is_drive_key(key) and not _is_cdrom(value):
                    task.log(f"snapshotting 'drive-{key}' ({propstr.split(value, 'file')['file']})")
        task.sleep(0.5)
        with sim.mutex:
            vm = sim.model.vm_on(node, vmid)
            if vm.lock != "snapshot":
                raise PVEError("missing snapshot lock\n")
            vm.snapshots[name].pop("snapstate", None)
            vm.touch()                            # a section is a nested dict: tell the persistence layer
            vm.conf.pop("lock", None)
            vm.conf["parent"] = name
            sim.save()

    def discard(task) -> None:
        """``snapshot create failed: starting cleanup``: the half-made snapshot goes, with its lock."""
        with task.sim.mutex:
            vm = task.sim.model.vms.get(vmid)
            if vm is not None and vm.snapshots.get(name, {}).get("snapstate") == "prepare":
                state = vm.snapshots.pop(name).get("vmstate")
                if state:
                    task.sim.model.free_volume(node, state)
                if vm.lock == "snapshot":
                    vm.conf.pop("lock")
                task.sim.save()

    return spawn(req, "qmsnapshot", vmid, work, on_failure=discard)


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def snapshot_index(req: Request) -> list:
    return [{"cmd": "rollback"}, {"cmd": "config"}]


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config")
def snapshot_config(req: Request) -> dict:
    with req.sim.mutex:
        section = dict(_section(vm_of(req), req.params["snapname"]))
    return typed_config(section)


@route("PUT", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config")
def update_snapshot_config(req: Request) -> None:
    if req.params.get("description") is None:
        return None
    with req.sim.locks.vm(req.vmid), req.sim.mutex:
        vm = vm_of(req)
        check_lock(vm)
        _section(vm, req.params["snapname"])["description"] = req.params["description"]
        vm.touch()
        req.sim.save()
    return None


def _volids(conf: dict[str, str]) -> set[str]:
    return {propstr.split(v, "file").get("file", "") for k, v in conf.items()
            if is_drive_key(k) or k.startswith("unused")}


@route("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback")
def rollback(req: Request) -> str:
    name, node, vmid = req.params["snapname"], req.node, req.vmid
    with req.sim.mutex:
        vm_of(req)

    def work(task) -> None:
        sim = task.sim
        with sim.mutex:
            vm = sim.model.vm_on(node, vmid)
            if vm.is_template:
                raise PVEError("you can't rollback if vm is a template\n")
            section = _section(vm, name)
            if section.get("snapstate"):
                raise PVEError(f"unable to rollback to incomplete snapshot (snapstate = {section['snapstate']})\n")
            check_lock(vm)
            running = vm.running
        if running:
            stop_vm(sim, task, node, vmid, seconds=0.2)   # a hard stop, no shutdown (QemuConfig.pm L504-509)
        with sim.locks.vm(vmid), sim.mutex:
            cluster = sim.model
            vm = cluster.vm_on(node, vmid)
            section = _section(vm, name)
            kept = {k: v for k, v in vm.conf.items() if k == "description" or k.startswith("unused")}
            restored = {k: v for k, v in section.items() if k not in ("snaptime", "vmstate", "runningmachine",
                                                                     "runningcpu", "description")}
            old_conf, vm.conf = vm.conf, {**restored, **kept, "parent": name}
            vm.pending = {}
            if vm.conf.get("vmgenid"):
                vm.conf["vmgenid"] = str(uuid.uuid4())
            for volid in sorted(_volids(old_conf) - _volids(vm.conf)):
                key = next(k for k, v in old_conf.items() if (is_drive_key(k) or k.startswith("unused"))
                           and propstr.split(v, "file").get("file") == volid)
                if re.search(r"vm-\d+-cloudinit", volid):
                    task.log(f"found unused cloudinit disk '{volid}', removing it")
                drive_removed(cluster, vm, key, old_conf[key])
            sim.save()
            start = bool(section.get("vmstate")) or bool(req.params.get("start"))
        if start:
            start_vm(sim, task, node, vmid)

    return spawn(req, "qmrollback", vmid, work)


@route("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def delete_snapshot(req: Request) -> str:
    name, node, vmid, force = req.params["snapname"], req.node, req.vmid, bool(req.params.get("force"))
    with req.sim.mutex:
        vm_of(req)

    def work(task) -> None:
        sim = task.sim
        with sim.locks.vm(vmid), sim.mutex:
            vm = sim.model.vm_on(node, vmid)
            section = _section(vm, name)
            check_lock(vm)
            if vm.is_template:
                raise PVEError("you can't delete a snapshot if vm is a template\n")
            vm.conf["lock"] = "snapshot-delete"
            section["snapstate"] = "delete"
            vm.touch()
            sim.save()
        task.sleep(0.3)
        with sim.mutex:
            cluster = sim.model
            vm = cluster.vm_on(node, vmid)
            section = vm.snapshots.pop(name)
            if section.get("vmstate"):
                cluster.free_volume(node, section["vmstate"])
            parent = section.get("parent")
            for other in [*vm.snapshots.values(), vm.conf]:
                if other.get("parent") == name:
                    if parent:
                        other["parent"] = parent
                    else:
                        other.pop("parent")
            vm.touch()
            still_used = _volids(vm.conf).union(*(_volids(s) for s in vm.snapshots.values()))
            for volid in sorted(_volids(section) - still_used):
                if cluster.volume(node, volid) is not None and "cloudinit" not in volid:
                    n = 0
                    while f"unused{n}" in vm.conf:
                        n += 1
                    vm.conf[f"unused{n}"] = volid
            vm.conf.pop("lock", None)
            sim.save()
            task.log(f"delete snapshot '{name}'" + (" (forced)" if force else ""))

    return spawn(req, "qmdelsnapshot", vmid, work)
