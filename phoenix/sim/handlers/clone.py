"""Clone (``qmclone``) and template conversion (``qmtemplate``), with qemu-server's checks and locking.

Clone: early checks in the request, then the worker takes the source flock (shared while the
source is stopped, so several clones of one template run at once) and the target flock, writes
the target as ``lock: clone`` and copies drive by drive.
"""

from __future__ import annotations

import re
import uuid

from phoenix.sim import propstr
from phoenix.sim.core import PVEError, Request, param_error, route
from phoenix.sim.handlers._vmutil import check_lock, spawn, vm_of
from phoenix.sim.handlers.qemu import smbios_with_uuid, with_mac
from phoenix.sim.model.disks import CLOUDINIT_SIZE
from phoenix.sim.model.vm import VM, is_drive_key

SKIP_ON_CLONE = {"snapshots", "parent", "snaptime", "vmstate", "snapstate", "runningcpu", "runningmachine",
                 "running-nets-host-mtu", "template", "lock"}


def _is_cdrom(value: str) -> bool:
    return propstr.parse_drive(value).get("media") == "cdrom"


def _is_cloudinit(value: str) -> bool:
    return bool(re.search(r"(^|[:/])vm-\d+-cloudinit", propstr.parse_drive(value).get("file", "")))


def _load_and_check(req: Request, params: dict) -> dict:
    """``$load_and_check`` of clone_vm: everything PVE verifies before (and again after) forking."""
    cluster = req.sim.model
    node, vmid, newid = req.node, req.vmid, int(params["newid"])
    cluster.require_node(node)
    if params.get("pool"):
        cluster.pools.check_exist(params["pool"])
    target = params.get("target")
    if target in (node, "localhost"):
        target = None
    if target is not None and target not in cluster.nodes:
        raise PVEError(f"no such cluster node '{target}'\n")
    storage = params.get("storage")
    if storage is not None:
        cluster.storage(storage)
        if target is not None and not cluster.is_shared(storage):
            raise PVEError(f"can't clone to non-shared storage '{storage}'\n")
    vm = cluster.vm_on(node, vmid)
    check_lock(vm)
    if params.get("snapname") and params["snapname"] not in vm.snapshots:
        raise PVEError(f"snapshot '{params['snapname']}' does not exist\n")
    full = bool(params["full"]) if params.get("full") is not None else not vm.is_template
    if storage is not None and not full:
        raise PVEError("parameter 'storage' not allowed for linked clones\n")
    if params.get("format") is not None and not full:
        raise PVEError("parameter 'format' not allowed for linked clones\n")
    if storage is not None and "images" not in cluster.storage_content(storage):
        raise param_error({"storage": f"storage '{storage}' does not support vm images"})
    shared_vm = True
    drives: dict[str, str] = {}
    snapname = params.get("snapname")
    source = vm.snapshots[snapname] if snapname else vm.conf       # clone from a snapshot: its [section]
    for key, value in sorted(source.items()):
        if not is_drive_key(key):
            continue
        volid = propstr.parse_drive(value).get("file", "")
        if volid in ("", "none"):
            continue
        if _is_cdrom(value) and not _is_cloudinit(value):
            if volid == "cdrom" or (":" in volid and not cluster.is_shared(volid.split(":")[0])):
                shared_vm = False
            continue
        sid = volid.split(":")[0]
        if not cluster.is_shared(storage if storage and not _is_cdrom(value) else sid):
            shared_vm = False
        if not _is_cloudinit(value):
            volume = cluster.volume(node, volid)
            if not full and (volume is None or not volume.is_base):
                what = f"a snapshot of '{volid}'" if snapname else f"'{volid}'"
                raise PVEError(f"Linked clone feature is not supported for {what} ({key})\n")
        drives[key] = value
    if target is not None and not shared_vm:
        raise PVEError(f"can't clone VM to node '{target}' (VM uses local storage)\n")
    if newid in cluster.vms:
        raise PVEError(f"unable to create VM {newid}: config file already exists\n")
    return {"vm": vm, "conf": source, "full": full, "drives": drives, "target": target, "storage": storage}


def _new_config(cluster, old: VM, source: dict[str, str], params: dict) -> dict[str, str]:
    """The clone's config from ``source`` (the VM's config, or the snapshot's section it clones from)."""
    conf = {}
    for key, value in source.items():
        if key in SKIP_ON_CLONE or key.startswith("unused") or key in ("description",) or is_drive_key(key) and not _is_cdrom(value):
            continue
        if is_drive_key(key) and _is_cloudinit(value):
            continue
        conf[key] = value
    if source.get("description") is not None:
        conf["description"] = source["description"]
    for key in list(conf):
        if re.fullmatch(r"net\d+", key):
            net = propstr.parse_net(conf[key])
            net.pop("macaddr", None)
            conf[key] = with_mac(cluster, propstr.print_net(net))
    conf["smbios1"] = smbios_with_uuid(conf.get("smbios1"))
    if conf.get("vmgenid"):
        conf["vmgenid"] = str(uuid.uuid4())
    conf["name"] = params.get("name") or f"Copy-of-VM-{source.get('name', old.vmid)}"
    if params.get("description") is not None:
        conf["description"] = params["description"]
    return conf


@route("POST", "/nodes/{node}/qemu/{vmid}/clone")
def clone_vm(req: Request) -> str:
    params = dict(req.params)
    node, vmid, newid = req.node, req.vmid, int(params["newid"])
    with req.sim.mutex:
        running = _load_and_check(req, params)["vm"].running

    def work(task) -> None:
        sim = task.sim
        with sim.locks.vm(vmid, shared=not running, timeout=1), sim.locks.vm(newid, timeout=1):
            with sim.mutex:
                cluster = sim.model
                checked = _load_and_check(req, params)
                old: VM = checked["vm"]
                if old.running != running:
                    raise PVEError("unexpected state change\n")
                newconf = _new_config(cluster, old, checked["conf"], params)
                if old.pending:
                    task.log(f"found pending changes for '{','.join(sorted(k for k in old.pending))}', discarding for clone")
                target_vm = VM(vmid=newid, node=node, conf={"description": " qmclone temporary file", "lock": "clone"})
                cluster.vms[newid] = target_vm
                sim.save()
            created: list[str] = []
            try:
                drives = checked["drives"]
                for key in sorted(drives):
                    task.sleep(2.0 / max(1, len(drives)))
                    with sim.mutex:
                        cluster = sim.model
                        newconf[key] = _clone_drive(cluster, task, node, newid, key, drives[key], checked, params, created)
                        cluster.vms[newid].conf = dict(newconf, lock="clone")
                        sim.save()
                with sim.mutex:
                    cluster = sim.model
                    target_vm = cluster.vms[newid]
                    target_vm.conf = newconf
                    if checked["target"]:
                        target_vm.node = checked["target"]
                    if params.get("pool"):
                        cluster.pools.add_vm(params["pool"], newid)
                    sim.save()
            except Exception as exc:
                with sim.mutex:
                    sim.model.discard_vm(node, newid, created)
                    sim.save()
                message = getattr(exc, "message", str(exc)).rstrip("\n")
                raise PVEError(f"clone failed: {message}\n") from exc

    return spawn(req, "qmclone", vmid, work)


def _clone_drive(cluster, task, node: str, newid: int, key: str, value: str, checked: dict, params: dict,
                 created: list[str]) -> str:
    drive = propstr.parse_drive(value)
    volid = drive["file"]
    source_sid = volid.split(":")[0]
    full = checked["full"]
    target_sid = checked["storage"] or source_sid
    if _is_cloudinit(value):
        sid = target_sid if full else source_sid
        fmt = "raw" if cluster.storage(sid)["type"] == "lvmthin" else "qcow2"
        task.log(f"create full clone of drive {key} ({volid})")
        volume = cluster.alloc_volume(sid, node, newid, CLOUDINIT_SIZE, fmt=fmt, name=f"vm-{newid}-cloudinit")
        created.append(volume.volid)
        drive["file"] = volume.volid
        return propstr.print_drive(drive)
    source = cluster.volume(node, volid)
    if source is None:
        raise PVEError(f"volume '{volid}' does not exist\n")
    if full or key == "tpmstate0":
        task.log(f"create full clone of drive {key} ({volid})")
        same_storage = target_sid == source_sid
        volume = cluster.alloc_volume(target_sid, node, newid, source.size,
                                      fmt=params.get("format") or (source.format if same_storage else None),
                                      agent_installed=source.agent_installed, guest_image=source.guest_image)
        task.log(f"transferred {propstr.format_size(source.size)} of {propstr.format_size(source.size)} (100.00%)")
    else:
        task.log(f"create linked clone of drive {key} ({volid})")
        volume = cluster.alloc_volume(source_sid, node, newid, source.size, fmt=source.format, parent=source,
                                      agent_installed=source.agent_installed, guest_image=source.guest_image)
    created.append(volume.volid)
    drive["file"] = volume.volid
    drive["size"] = propstr.format_size(volume.size)
    return propstr.print_drive(drive)


def convert_to_base(cluster, vm: VM, only_disk: str | None, log) -> None:
    """``template_create``: ``template: 1`` and every non-CD-ROM drive renamed ``vm-`` → ``base-``."""
    vm.conf["template"] = "1"
    for key in sorted(vm.conf):
        value = vm.conf[key]
        if not is_drive_key(key) or _is_cdrom(value) or (only_disk and key != only_disk):
            continue
        drive = propstr.parse_drive(value)
        volume = cluster.volume(vm.node, drive.get("file", ""))
        if volume is None or volume.is_base:
            continue
        head, _, name = volume.volname.rpartition("/")
        new_volname = (head + "/" if head else "") + re.sub(r"^vm-", "base-", name)
        cluster.rename_volume(volume, new_volname)
        drive["file"] = volume.volid
        vm.conf[key] = propstr.print_drive(drive)


def _template_checks(vm: VM, disk: str | None) -> None:
    check_lock(vm)
    if vm.snapshots:
        raise PVEError("unable to create template, because VM contains snapshots\n")
    if vm.is_template and not disk:
        raise PVEError("you can't convert a template to a template\n")
    if vm.running:
        raise PVEError("you can't convert a VM to template if VM is running\n")


@route("POST", "/nodes/{node}/qemu/{vmid}/template")
def template_vm(req: Request) -> str:
    node, vmid, disk = req.node, req.vmid, req.params.get("disk")
    with req.sim.mutex:
        _template_checks(vm_of(req), disk)

    def work(task) -> None:
        sim = task.sim
        with sim.locks.vm(vmid):
            with sim.mutex:
                cluster = sim.model
                vm = cluster.vm_on(node, vmid)
                _template_checks(vm, disk)
                convert_to_base(cluster, vm, disk, task.log)
                sim.save()
            task.sleep(0.5)

    return spawn(req, "qmtemplate", vmid, work)
