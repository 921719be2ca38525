"""Snapshots (behaviors.md §19): [snapname] sections with parent, qmsnapshot/qmrollback/qmdelsnapshot tasks, persisted."""

from __future__ import annotations

import pytest
from proxmoxer import ResourceException

from ._tasks import run

NODE = "pve"


@pytest.fixture
def vm(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, memory=1024, cores=1, scsi0="local-lvm:2",
                                              ide2="local-lvm:cloudinit"))
    return proxmox.nodes(NODE).qemu(100)


def test_create_list_config_rollback_delete(vm, proxmox, sim_server, start_sim, proxmox_for):
    assert vm.snapshot.get() == [{"name": "current", "digest": vm.config.get()["digest"], "running": 0,
                                  "description": "You are here!"}]
    upid = vm.snapshot.post(snapname="before", description="clean")
    assert ":qmsnapshot:100:" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    vm.config.put(cores=4)
    run(proxmox, vm.snapshot.post(snapname="after"))
    names = [(s["name"], s.get("parent")) for s in vm.snapshot.get()]
    assert names == [("before", None), ("after", "before"), ("current", "after")]
    config = vm.snapshot("before").config.get()
    assert config["cores"] == 1 and isinstance(config["snaptime"], int) and config["description"] == "clean"
    assert "lock" not in vm.config.get() and vm.config.get(snapshot="after")["cores"] == 4
    assert vm.snapshot("xx").get() == [{"cmd": "rollback"}, {"cmd": "config"}]
    text = sim_server.sim.model.vms[100].render()
    assert "\n[after]\n" in text and "parent: before\n" in text
    run(proxmox, vm.snapshot("before").rollback.post())
    assert vm.config.get()["cores"] == 1 and vm.config.get()["parent"] == "before"
    run(proxmox, vm.snapshot("before").delete())
    assert [(s["name"], s.get("parent")) for s in vm.snapshot.get()] == [("after", None), ("current", None)]
    # persisted with the rest of the cluster
    data_dir = sim_server.sim.data_dir
    sim_server.stop()
    px = proxmox_for(start_sim(data_dir))
    assert [s["name"] for s in px.nodes(NODE).qemu(100).snapshot.get()] == ["after", "current"]


def test_snapshot_errors(vm, proxmox):
    with pytest.raises(ResourceException) as info:
        vm.snapshot.post(snapname="current")
    assert info.value.content == "unable to use snapshot name 'current' (reserved name)"
    with pytest.raises(ResourceException) as info:
        vm.snapshot.post(snapname="1bad")
    assert info.value.status_code == 400 and "invalid configuration ID" in info.value.errors["snapname"]
    run(proxmox, vm.snapshot.post(snapname="s1"))
    assert run(proxmox, vm.snapshot.post(snapname="s1"))["exitstatus"] == "snapshot name 's1' already used"
    assert "lock" not in vm.config.get()
    assert run(proxmox, vm.snapshot("nope").delete())["exitstatus"] == "snapshot 'nope' does not exist"
    with pytest.raises(ResourceException) as info:
        vm.snapshot("nope").config.get()
    assert info.value.content == "snapshot 'nope' does not exist"
    with pytest.raises(ResourceException) as info:
        vm.template.post()
    assert info.value.content == "unable to create template, because VM contains snapshots"


def test_clone_from_a_snapshot_and_destroy_frees_snapshot_state(vm, proxmox, sim_server):
    run(proxmox, vm.snapshot.post(snapname="s1"))
    vm.config.put(cores=6, name="later")
    run(proxmox, vm.clone.post(newid=101, snapname="s1", full=1))
    clone = proxmox.nodes(NODE).qemu(101).config.get()
    assert clone["cores"] == 1 and clone["name"] == "Copy-of-VM-100"        # the snapshot's config, not today's
    assert "parent" not in clone and "snaptime" not in clone
    run(proxmox, vm.status.start.post())
    run(proxmox, vm.snapshot.post(snapname="withram", vmstate=1))
    state = vm.snapshot("withram").config.get()["vmstate"]
    assert state == "local-lvm:vm-100-state-withram"
    run(proxmox, vm.status.stop.post())
    run(proxmox, vm.delete())
    assert not [v for v in sim_server.sim.model.volumes.values() if v.vmid == 100]
