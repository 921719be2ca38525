"""``PUT .../resize``: a ``resize`` task; checks inside the worker surface as task errors."""

from __future__ import annotations

import pytest
from proxmoxer import ResourceException

from ._tasks import run

NODE = "pve"


@pytest.fixture
def vm(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, scsi0="local-lvm:10", ide2="local-lvm:cloudinit"))
    return proxmox.nodes(NODE).qemu(100)


def test_relative_and_absolute_growth(vm, proxmox):
    upid = vm.resize.put(disk="scsi0", size="+2G")
    assert ":resize:100:" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    assert vm.config.get()["scsi0"] == "local-lvm:vm-100-disk-0,size=12G"
    run(proxmox, vm.resize.put(disk="scsi0", size="12800M"))
    assert vm.config.get()["scsi0"] == "local-lvm:vm-100-disk-0,size=12800M"
    assert vm.status.current.get()["maxdisk"] == 12800 << 20
    digest = vm.config.get()["digest"]
    assert run(proxmox, vm.resize.put(disk="scsi0", size="12800M"))["exitstatus"] == "OK"    # equal: no-op
    assert vm.config.get()["digest"] == digest


@pytest.mark.parametrize("params, error", [
    ({"disk": "scsi0", "size": "5G"}, "shrinking disks is not supported"),
    ({"disk": "scsi3", "size": "+1G"}, "disk 'scsi3' does not exist"),
    ({"disk": "scsi0", "size": "+1G", "digest": "0" * 40}, "checksum mismatch (file change by other user?)"),
])
def test_errors_are_task_errors(vm, proxmox, params, error):
    assert run(proxmox, vm.resize.put(**params))["exitstatus"] == error
    assert vm.config.get()["scsi0"] == "local-lvm:vm-100-disk-0,size=10G"


def test_cdrom_and_lock(vm, proxmox, sim_server):
    assert run(proxmox, vm.resize.put(disk="ide2", size="+1G"))["exitstatus"] == "you can't resize a cdrom"
    sim_server.sim.model.vms[100].conf["lock"] = "backup"
    assert run(proxmox, vm.resize.put(disk="scsi0", size="+1G"))["exitstatus"] == "VM is locked (backup)"


def test_unknown_vm_is_synchronous(proxmox):
    with pytest.raises(ResourceException) as info:
        proxmox.nodes(NODE).qemu(404).resize.put(disk="scsi0", size="+1G")
    assert info.value.content == "Configuration file 'nodes/pve/qemu-server/404.conf' does not exist"
