"""Power endpoints: start/stop/shutdown tasks, status/current fields, pending applied at start."""

from __future__ import annotations

import pytest
from proxmoxer import ResourceException

from ._tasks import run

NODE = "pve"


@pytest.fixture
def vm(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, name="web", memory=2048, cores=2, scsi0="local-lvm:8",
                                              agent="enabled=1"))
    return proxmox.nodes(NODE).qemu(100)


def test_start_stop_cycle_and_status_fields(vm, proxmox):
    current = vm.status.current.get()
    assert (current["status"], current["qmpstatus"], current["name"]) == ("stopped", "stopped", "web")
    assert current["maxmem"] == 2048 << 20 and current["maxdisk"] == 8 << 30 and current["cpus"] == 2
    assert current["agent"] == 1 and current["ha"] == {"managed": 0}
    upid = vm.status.start.post()
    assert ":qmstart:100:" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    current = vm.status.current.get()
    assert current["status"] == "running" and current["pid"] > 0
    assert run(proxmox, vm.status.start.post())["exitstatus"] == "VM 100 already running"
    assert run(proxmox, vm.status.shutdown.post())["exitstatus"] == "OK"
    assert vm.status.current.get()["status"] == "stopped"
    assert run(proxmox, vm.status.stop.post())["exitstatus"] == "OK"   # stopping a stopped VM is fine


def test_locked_vm_cannot_start_or_stop(vm, proxmox, proxmox_ticket, sim_server):
    sim_server.sim.model.vms[100].conf["lock"] = "migrate"
    with pytest.raises(ResourceException) as info:
        vm.status.start.post()
    assert info.value.content == "VM is locked (migrate)"
    assert run(proxmox, vm.status.stop.post())["exitstatus"] == "VM is locked (migrate)"
    upid = proxmox_ticket.nodes(NODE).qemu(100).status.start.post(skiplock=1)
    assert run(proxmox, upid)["exitstatus"] == "OK"


def test_pending_changes_are_applied_at_next_start(vm, proxmox):
    run(proxmox, vm.status.start.post())
    vm.config.put(cores=4)
    assert vm.status.current.get()["cpus"] == 2
    run(proxmox, vm.status.stop.post())
    run(proxmox, vm.status.start.post())
    assert vm.config.get(current=1)["cores"] == 4 and vm.pending.get()[0].get("pending") is None


def test_resources_show_running_state_and_lock(vm, proxmox, sim_server):
    run(proxmox, vm.status.start.post())
    vm.config.put(tags="web;prod")
    sim_server.sim.model.vms[100].conf["lock"] = "backup"
    [entry] = proxmox.cluster.resources.get(type="vm")
    assert entry["id"] == "qemu/100" and entry["status"] == "running" and entry["lock"] == "backup"
    assert entry["tags"] == "web;prod" and entry["template"] == 0 and entry["node"] == NODE
