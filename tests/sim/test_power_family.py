"""reset, suspend (to RAM and to disk), resume (behaviors.md §18), and the running machine type."""

from __future__ import annotations

import pytest
from proxmoxer import ResourceException

from ._tasks import run

NODE = "pve"


@pytest.fixture
def vm(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, memory=512, scsi0="local-lvm:1", machine="q35"))
    return proxmox.nodes(NODE).qemu(100)


def error(call) -> str:
    with pytest.raises(ResourceException) as info:
        call()
    return info.value.content


def test_stopped_vm_and_unknown_vm(vm, proxmox):
    for action in ("reset", "suspend", "resume"):
        assert error(getattr(vm.status, action).post) == "VM 100 not running"
    assert error(proxmox.nodes(NODE).qemu(999).status.reset.post) == \
        "unable to find configuration file for VM 999 on node 'pve'"


def test_pause_resume_reset_and_q35(vm, proxmox):
    run(proxmox, vm.status.start.post())
    assert vm.status.current.get()["running-machine"].startswith("pc-q35-")
    upid = vm.status.suspend.post()
    assert ":qmpause:100:" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    current = vm.status.current.get()
    assert (current["status"], current["qmpstatus"]) == ("running", "paused")
    assert error(vm.status.shutdown.post) == "VM is paused - cannot shutdown"
    upid = vm.status.resume.post()
    assert ":qmresume:100:" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    assert vm.status.current.get()["qmpstatus"] == "running"
    upid = vm.status.reset.post()
    assert ":qmreset:100:" in upid and run(proxmox, upid)["exitstatus"] == "OK"


def test_suspend_to_disk_and_resume(vm, proxmox, sim_server):
    run(proxmox, vm.status.start.post())
    upid = vm.status.suspend.post(todisk=1)
    assert ":qmsuspend:100:" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    config = vm.config.get()
    assert config["lock"] == "suspended" and config["vmstate"].startswith("local-lvm:vm-100-state-suspend-")
    assert vm.status.current.get()["status"] == "stopped"
    run(proxmox, vm.status.resume.post())
    config = vm.config.get()
    assert vm.status.current.get()["status"] == "running" and "lock" not in config and "vmstate" not in config
    assert sim_server.sim.model.volume(NODE, "local-lvm:vm-100-state-suspend-x") is None
