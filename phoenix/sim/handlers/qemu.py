"""VM lifecycle endpoints: list, create (``qmcreate``), directory index, destroy (``qmdestroy``)."""

from __future__ import annotations

import time
import uuid

from phoenix.sim import propstr
from phoenix.sim.core import PVEError, Request, route
from phoenix.sim.handlers._vmutil import (
    assert_root_for_skiplock, check_lock, spawn, start_vm, validate_sshkeys, vm_of, vm_status,
)
from phoenix.sim.model import disks
from phoenix.sim.model.vm import VM, is_drive_key

CREATE_ONLY = {"archive", "bwlimit", "force", "ha-managed", "import-working-storage", "live-restore", "node",
               "pool", "start", "storage", "unique", "vmid"}
QEMU_VERSION = "9.2.0"
VM_SUBDIRS = ["config", "pending", "status", "unlink", "vncproxy", "termproxy", "migrate", "resize", "move",
              "rrd", "rrddata", "monitor", "agent", "snapshot", "spiceproxy", "sendkey", "firewall", "mtunnel",
              "remote_migrate", "cloudinit"]


@route("GET", "/nodes/{node}/qemu")
def vm_list(req: Request) -> list:
    with req.sim.mutex:
        cluster = req.sim.model
        cluster.require_node(req.node)
        return [vm_status(vm, full=bool(req.params.get("full"))) for _, vm in sorted(cluster.vms.items())
                if vm.node == req.node]


@route("GET", "/nodes/{node}/qemu/{vmid}")
def vm_dir_index(req: Request) -> list:
    with req.sim.mutex:
        vm_of(req)
    return [{"subdir": name} for name in VM_SUBDIRS]


def default_boot_order(conf: dict[str, str]) -> str:
    """``get_default_bootdevices``: first disk, first CD-ROM, first NIC."""
    from phoenix.sim.model.vm import drive_keys
    devices = []
    for want_cdrom in (False, True):
        for key in drive_keys(conf):
            if key in ("efidisk0", "tpmstate0"):
                continue
            if (propstr.parse_drive(conf[key]).get("media") == "cdrom") == want_cdrom:
                devices.append(key)
                break
    nets = sorted((k for k in conf if k.startswith("net") and k[3:].isdigit()), key=lambda k: int(k[3:]))
    devices += nets[:1]
    return "order=" + ";".join(devices) if devices else ""


def with_mac(cluster, value: str) -> str:
    net = propstr.parse_net(value)
    if not net.get("macaddr"):
        net["macaddr"] = cluster.random_mac()
    return propstr.print_net(net)


def smbios_with_uuid(value: str | None) -> str:
    fields = propstr.split(value or "")
    fields["uuid"] = str(uuid.uuid4())
    return propstr.print_property_string({}, fields)


@route("POST", "/nodes/{node}/qemu")
def create_vm(req: Request) -> str:
    params = dict(req.params)
    vmid, node = int(params["vmid"]), req.node
    if params.get("archive"):
        raise PVEError("restoring backups is not supported by the simulator\n", status=501)
    if params.get("sshkeys") is not None:
        validate_sshkeys(params["sshkeys"])
    storage = params.get("storage")
    with req.sim.mutex:
        cluster = req.sim.model
        cluster.require_node(node)
        if params.get("pool"):
            cluster.pools.check_exist(params["pool"])
        existing = cluster.vms.get(vmid)
        if existing is not None:
            raise PVEError(f"unable to create VM {vmid} - VM {vmid} already exists on node '{existing.node}'\n")
        if storage is not None:
            disks.check_drive(cluster, node, "storage", f"{storage}:1", None, req.user, {})
        checked: dict[str, str] = {}
        for key, value in sorted((k, v) for k, v in params.items() if is_drive_key(k)):
            disks.check_drive(cluster, node, key, value, storage, req.user, checked)
            checked[key] = value
        cluster.vms[vmid] = VM(vmid=vmid, node=node, conf={"lock": "create"})
        req.sim.save()

    allocated: list[str] = []

    def work(task) -> None:
        sim = task.sim
        with sim.locks.vm(vmid, timeout=5):
            with sim.mutex:
                cluster = sim.model
                conf = {k: str(v) for k, v in params.items() if k not in CREATE_ONLY and not is_drive_key(k)}
                for key, value in sorted(params.items()):
                    if is_drive_key(key):
                        conf[key] = disks.create_drive(cluster, node, vmid, key, value, storage, allocated, task.log)
                    elif key.startswith("net") and key[3:].isdigit():
                        conf[key] = with_mac(cluster, value)
                if conf.get("smbios1") is None or "uuid=" not in conf["smbios1"]:
                    conf["smbios1"] = smbios_with_uuid(conf.get("smbios1"))
                if conf.get("vmgenid") in (None, "1"):
                    conf["vmgenid"] = str(uuid.uuid4())
                elif conf.get("vmgenid") == "0":
                    del conf["vmgenid"]
                conf.setdefault("meta", f"creation-qemu={QEMU_VERSION},ctime={int(time.time())}")
                if not conf.get("boot"):
                    order = default_boot_order(conf)
                    if order:
                        conf["boot"] = order
                vm = cluster.vm_on(node, vmid)
                vm.conf = conf
                if conf.get("template") == "1":
                    from phoenix.sim.handlers.clone import convert_to_base
                    convert_to_base(cluster, vm, None, task.log)
                if params.get("pool"):
                    cluster.pools.add_vm(params["pool"], vmid)
                sim.save()
            task.sleep(1.0)
        if params.get("start") and params.get("template") != 1:
            start_vm(sim, task, node, vmid)

    def discard(task) -> None:
        """A failed create (injected faults too) removes its config and frees what it allocated."""
        with task.sim.mutex:
            vm = task.sim.model.vms.get(vmid)
            if vm is not None and vm.node == node and vm.lock == "create":
                task.sim.model.discard_vm(node, vmid, allocated)
                task.sim.save()

    return spawn(req, "qmcreate", vmid, work, on_failure=discard)


@route("DELETE", "/nodes/{node}/qemu/{vmid}")
def destroy_vm(req: Request) -> str:
    skiplock = assert_root_for_skiplock(req)
    purge_unreferenced = bool(req.params.get("destroy-unreferenced-disks"))
    node, vmid = req.node, req.vmid

    def early_checks(vm: VM) -> None:
        if vm.conf.get("protection") == "1":
            raise PVEError(f"can't remove VM {vmid} - protection mode enabled\n")
        if vm.running:
            raise PVEError(f"VM {vmid} is running - destroy failed\n")

    with req.sim.mutex:
        early_checks(vm_of(req))

    def work(task) -> None:
        sim = task.sim
        with sim.locks.vm(vmid):
            with sim.mutex:
                cluster = sim.model
                vm = cluster.vm_on(node, vmid)
                early_checks(vm)
                check_lock(vm, skiplock)
                referenced = _referenced_volumes(vm)
                if vm.is_template:
                    for volid in referenced:
                        volume = cluster.volume(node, volid)
                        if volume is not None and volume.is_base and cluster.linked_clones_of(volume):
                            raise PVEError(f"base volume '{volid}' is still in use by linked cloned\n")
                vm.conf, vm.pending, vm.cloudinit, vm.snapshots = {"lock": "destroyed"}, {}, {}, {}
                sim.save()
            task.sleep(0.5)
            with sim.mutex:
                cluster = sim.model
                for volid in referenced:
                    volume = cluster.volume(node, volid)
                    if volume is not None and volume.vmid == vmid:
                        cluster.free_volume(node, volid)
                if purge_unreferenced:
                    for volume in [v for v in cluster.volumes.values() if v.vmid == vmid]:
                        if not cluster.linked_clones_of(volume):
                            del cluster.volumes[(volume.node, volume.volid)]
                cluster.vms.pop(vmid, None)
                cluster.pools.remove_vm(vmid)
                sim.save()
            if sim.guests is not None:
                sim.guests.destroy(vmid)        # a real guest's overlay disk, seed ISO and logs

    return spawn(req, "qmdestroy", vmid, work)


def _referenced_volumes(vm: VM) -> list[str]:
    """Every volume the config names: current, pending and snapshot sections (with their vmstate)."""
    volids = []
    sections = [vm.conf, {k: v for k, v in vm.pending.items() if k != "delete"}, *vm.snapshots.values()]
    for section in sections:
        for key, value in section.items():
            if is_drive_key(key) or key.startswith("unused") or key == "vmstate":
                volid = propstr.parse_drive(value).get("file", "")
                if ":" in volid and volid not in volids:
                    volids.append(volid)
    return volids
