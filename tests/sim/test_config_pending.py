"""Config GET/POST/PUT, digest, pending semantics, cipassword hashing and sshkeys validation."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

import pytest
from proxmoxer import ResourceException

from ._tasks import run

NODE = "pve"
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host"


@pytest.fixture
def vm(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, name="web", cores=1, memory=1024, scsi0="local-lvm:1",
                                              ide2="local-lvm:cloudinit", net0="virtio,bridge=vmbr0"))
    return proxmox.nodes(NODE).qemu(100)


def test_digest_is_sha1_of_the_rendered_file(vm, sim_server):
    conf = vm.config.get()
    text = sim_server.sim.model.vms[100].render()
    assert conf["digest"] == hashlib.sha1(text.encode()).hexdigest()
    lines = text.splitlines()
    assert lines == sorted(lines) and all(re.fullmatch(r"[a-z0-9-]+: .+", line) for line in lines)


def test_digest_mismatch_is_refused_for_put_and_post(vm):
    old = vm.config.get()["digest"]
    vm.config.put(cores=2, digest=old)
    for call in (vm.config.put, vm.config.post):
        with pytest.raises(ResourceException) as info:
            call(cores=3, digest=old)
        assert info.value.status_code == 500
        assert info.value.content == "checksum mismatch (file change by other user?)"
    assert vm.config.get()["cores"] == 2


def test_stopped_vm_applies_at_once_and_post_is_a_qmconfig_task(vm, proxmox):
    upid = vm.config.post(cores=4, description="line one\nline: two")
    assert ":qmconfig:100:" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    assert vm.pending.get() == [item for item in vm.pending.get() if "pending" not in item]
    conf = vm.config.get(current=1)
    assert conf["cores"] == 4 and conf["description"] == "line one\nline: two"


def test_description_is_written_as_comment_lines(vm, sim_server):
    vm.config.put(description="hello: world")
    assert sim_server.sim.model.vms[100].render().startswith("#hello%3A world\n")


def test_running_vm_keeps_non_hotpluggable_changes_pending(vm, proxmox, sim_server):
    run(proxmox, vm.status.start.post())
    vm.config.put(memory=4096, name="renamed", net0="virtio=BC:24:11:00:00:01,bridge=vmbr1")
    merged, current = vm.config.get(), vm.config.get(current=1)
    assert merged["memory"] == "4096" and current["memory"] == "1024"
    assert current["name"] == "renamed" and current["net0"] == "virtio=BC:24:11:00:00:01,bridge=vmbr1"
    assert {"key": "memory", "value": "1024", "pending": "4096"} in vm.pending.get()
    assert "\n[PENDING]\nmemory: 4096\n" in sim_server.sim.model.vms[100].render()
    run(proxmox, vm.status.stop.post())
    run(proxmox, vm.status.start.post())
    assert vm.config.get(current=1)["memory"] == "4096"


def test_delete_and_pending_delete(vm, proxmox):
    vm.config.put(delete="cores")
    assert "cores" not in vm.config.get()
    run(proxmox, vm.status.start.post())
    vm.config.put(delete="memory")
    assert {"key": "memory", "value": "1024", "delete": 1} in vm.pending.get()
    assert "memory" not in vm.config.get() and vm.config.get(current=1)["memory"] == "1024"


def test_removed_disk_becomes_unused(vm):
    vm.config.put(delete="scsi0")
    assert vm.config.get()["unused0"] == "local-lvm:vm-100-disk-0"


def test_update_errors(vm, proxmox_ticket):
    with pytest.raises(ResourceException) as info:
        vm.config.put()
    assert info.value.content == "no options specified"
    with pytest.raises(ResourceException) as info:
        vm.config.put(cores=2, delete="cores")
    assert info.value.status_code == 400
    assert info.value.errors == {"delete": "you can't use '-cores' and -delete cores' at the same time"}
    with pytest.raises(ResourceException) as info:
        vm.config.put(cores=2, skiplock=1)               # API token user is not root@pam
    assert info.value.errors == {"skiplock": "Only root may use this option."}
    proxmox_ticket.nodes(NODE).qemu(100).config.put(cores=2, skiplock=1)


def test_locked_vm_refuses_config_changes(vm, sim_server):
    sim_server.sim.model.vms[100].conf["lock"] = "backup"
    with pytest.raises(ResourceException) as info:
        vm.config.put(cores=2)
    assert info.value.status_code == 500 and info.value.content == "VM is locked (backup)"


def test_cipassword_is_hashed_direct_and_masked(vm, sim_server):
    vm.config.put(cipassword="s3cret")
    stored = sim_server.sim.model.vms[100].conf["cipassword"]
    assert re.fullmatch(r"\$5\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{43}", stored)
    assert vm.config.get()["cipassword"] == "**********"
    assert {"key": "cipassword", "value": "**********"} in vm.pending.get()
    prehashed = "$6$saltsalt$" + "x" * 86
    vm.config.put(cipassword=prehashed)
    assert sim_server.sim.model.vms[100].conf["cipassword"] == prehashed


def test_sshkeys_must_be_valid_public_keys(vm):
    vm.config.put(sshkeys=quote(ED25519 + "\n", safe=""))
    assert vm.config.get()["sshkeys"] == quote(ED25519 + "\n", safe="")
    for bad in ("not a key", "ssh-ed25519 AAAA", "ssh-rsa " + ED25519.split()[1]):
        with pytest.raises(ResourceException) as info:
            vm.config.put(sshkeys=quote(bad, safe=""))
        assert info.value.status_code == 500 and info.value.content == "SSH public key validation error"


def test_net_without_mac_gets_a_new_random_one(vm):
    before = vm.config.get()["net0"]
    vm.config.put(net0="virtio,bridge=vmbr0")
    after = vm.config.get()["net0"]
    assert after.startswith("virtio=BC:24:11:") and after != before


def test_config_update_can_import_and_add_disks(vm, sim_server):
    vm.config.put(scsi1="local-lvm:2", virtio0="local:1,format=raw")
    conf = vm.config.get()
    assert conf["scsi1"] == "local-lvm:vm-100-disk-1,size=2G"
    assert conf["virtio0"] == "local:100/vm-100-disk-0.raw,size=1G"   # names are per storage
