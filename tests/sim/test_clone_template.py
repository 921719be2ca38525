"""Clone (linked/full, cross-node, locks, errors) and template conversion."""

from __future__ import annotations

import re
import threading

import pytest
from proxmoxer import ResourceException

from phoenix.sim.core import PVEError

NODE = "pve"


def run(px, upid: str, node: str = NODE) -> dict:
    status = px.nodes(node).tasks(upid).status.get()
    assert status["status"] == "stopped"
    return status


def log_text(px, upid: str) -> str:
    return "\n".join(line["t"] for line in px.nodes(NODE).tasks(upid).log.get(limit=500))


@pytest.fixture
def template(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(
        vmid=9000, name="ubuntu-tmpl", memory=2048, cores=2, net0="virtio,bridge=vmbr0", scsi0="local-lvm:3",
        ide2="local-lvm:cloudinit", serial0="socket", vga="serial0", agent="enabled=1", ciuser="phoenix"))
    upid = proxmox.nodes(NODE).qemu(9000).template.post()
    assert run(proxmox, upid)["exitstatus"] == "OK"
    return proxmox.nodes(NODE).qemu(9000)


def test_template_renames_disks_to_base(template):
    conf = template.config.get()
    assert conf["template"] == 1
    assert conf["scsi0"] == "local-lvm:base-9000-disk-0,size=3G"
    assert conf["ide2"] == "local-lvm:vm-9000-cloudinit,media=cdrom"      # CD-ROM untouched


def test_template_errors(template, proxmox):
    with pytest.raises(ResourceException) as info:
        template.template.post()
    assert info.value.content == "you can't convert a template to a template"
    status = run(proxmox, template.status.start.post())
    assert status["exitstatus"] == "you can't start a vm if it's a template"


def test_linked_clone_from_template_inherits_config(template, proxmox):
    upid = template.clone.post(newid=101, name="web1")
    assert ":qmclone:9000:" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    assert "create linked clone of drive scsi0 (local-lvm:base-9000-disk-0)" in log_text(proxmox, upid)
    source, clone = template.config.get(), proxmox.nodes(NODE).qemu(101).config.get()
    for key in ("memory", "cores", "serial0", "vga", "agent", "ciuser", "boot"):
        assert clone[key] == source[key]
    assert clone["name"] == "web1" and "template" not in clone
    assert clone["scsi0"] == "local-lvm:vm-101-disk-0,size=3G"
    assert clone["ide2"] == "local-lvm:vm-101-cloudinit,media=cdrom"
    assert clone["net0"] != source["net0"] and clone["net0"].startswith("virtio=BC:24:11:")
    assert clone["smbios1"] != source["smbios1"] and clone["vmgenid"] != source["vmgenid"]
    disks = {d["volid"]: d for d in proxmox.nodes(NODE).storage("local-lvm").content.get(vmid=101)}
    assert disks["local-lvm:vm-101-disk-0"]["parent"] == "base-9000-disk-0"
    assert "parent" not in disks["local-lvm:vm-101-cloudinit"]


def test_full_clone_and_default_name(template, proxmox):
    upid = template.clone.post(newid=102, full=1, storage="local", format="qcow2")
    assert run(proxmox, upid)["exitstatus"] == "OK"
    assert "create full clone of drive scsi0" in log_text(proxmox, upid)
    conf = proxmox.nodes(NODE).qemu(102).config.get()
    assert conf["name"] == "Copy-of-VM-ubuntu-tmpl"
    assert conf["scsi0"] == "local:102/vm-102-disk-0.qcow2,size=3G"


def test_clone_errors(template, proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=200, scsi0="local-lvm:1"))
    cases = [
        (dict(vmid=200, newid=201, full=0), "Linked clone feature is not supported for 'local-lvm:vm-200-disk-0' (scsi0)"),
        (dict(vmid=9000, newid=201, storage="local"), "parameter 'storage' not allowed for linked clones"),
        (dict(vmid=9000, newid=201, format="raw"), "parameter 'format' not allowed for linked clones"),
        (dict(vmid=9000, newid=201, target="nowhere"), "no such cluster node 'nowhere'"),
        (dict(vmid=9000, newid=200), "unable to create VM 200: config file already exists"),
        (dict(vmid=777, newid=201), "Configuration file 'nodes/pve/qemu-server/777.conf' does not exist"),
    ]
    for params, message in cases:
        vmid = params.pop("vmid")
        with pytest.raises(ResourceException) as info:
            proxmox.nodes(NODE).qemu(vmid).clone.post(**params)
        assert (info.value.status_code, info.value.content) == (500, message)
    assert 201 not in [vm["vmid"] for vm in proxmox.cluster.resources.get(type="vm")]


def test_locked_source_refuses_clone(template, sim_server, proxmox):
    sim_server.sim.model.vms[9000].conf["lock"] = "backup"
    with pytest.raises(ResourceException) as info:
        template.clone.post(newid=101)
    assert info.value.content == "VM is locked (backup)"


def test_target_is_locked_clone_while_the_task_runs(template, start_sim, proxmox_for, tmp_path, sim_server):
    # A slow server (task_scale 1) shows the new VM with lock=clone; calls on it fail as on PVE.
    slow = start_sim(tmp_path / "slow", task_scale=1.0)
    px = proxmox_for(slow)
    run_slow = lambda upid: slow.sim.tasks.wait(upid, 30)  # noqa: E731
    run_slow(px.nodes(NODE).qemu.post(vmid=9000, scsi0="local-lvm:1", template=1))
    upid = px.nodes(NODE).qemu(9000).clone.post(newid=101)
    entry = {vm["vmid"]: vm for vm in px.cluster.resources.get(type="vm")}[101]
    assert entry["lock"] == "clone"
    with pytest.raises(ResourceException) as info:
        px.nodes(NODE).qemu(101).config.put(cores=2)
    assert info.value.content == "VM is locked (clone)"
    with pytest.raises(ResourceException) as info:
        px.nodes(NODE).qemu(101).status.start.post()
    assert info.value.content == "VM is locked (clone)"
    # the source is flocked shared: a second clone may run, an exclusive holder would time out
    assert slow.sim.locks.held(9000) == "shared"
    with pytest.raises(PVEError) as locked:
        with slow.sim.locks.vm(9000, timeout=0.05):
            pass
    assert locked.value.message == "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout\n"
    task = run_slow(upid)
    assert task.exitstatus == "OK" and "lock" not in px.nodes(NODE).qemu(101).config.get()


def test_concurrent_clones_of_one_template(template, proxmox):
    upids = []
    threads = [threading.Thread(target=lambda n=n: upids.append(template.clone.post(newid=300 + n)))
               for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [run(proxmox, upid)["exitstatus"] for upid in upids] == ["OK"] * 4
    disks = {proxmox.nodes(NODE).qemu(300 + n).config.get()["scsi0"] for n in range(4)}
    assert len(disks) == 4


def test_cross_node_clone_needs_shared_storage(start_sim, proxmox_for, tmp_path):
    server = start_sim(tmp_path / "two", nodes=["pve", "pve2"])
    px = proxmox_for(server)
    run(px, px.nodes("pve").qemu.post(vmid=9000, scsi0="local-lvm:1", template=1))
    with pytest.raises(ResourceException) as info:
        px.nodes("pve").qemu(9000).clone.post(newid=101, target="pve2")
    assert info.value.content == "can't clone VM to node 'pve2' (VM uses local storage)"
    with pytest.raises(ResourceException) as info:
        px.nodes("pve").qemu(9000).clone.post(newid=101, target="pve2", full=1, storage="local-lvm")
    assert info.value.content == "can't clone to non-shared storage 'local-lvm'"
    upid = px.nodes("pve").qemu(9000).clone.post(newid=101, target="pve2", full=1, storage="shared-nfs")
    assert run(px, upid)["exitstatus"] == "OK"
    assert re.fullmatch(r"shared-nfs:101/vm-101-disk-0\.qcow2,size=1G", px.nodes("pve2").qemu(101).config.get()["scsi0"])
