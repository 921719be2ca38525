"""VM create / list / destroy over real HTTPS (proxmoxer → simulator), with PVE's exact errors."""

from __future__ import annotations

import re

import pytest
from proxmoxer import ResourceException

from phoenix.sim.model.images import synthetic_qcow2

from ._tasks import run

NODE = "pve"



def log_text(px, upid: str) -> str:
    return "\n".join(line["t"] for line in px.nodes(NODE).tasks(upid).log.get(limit=500))


def create(px, vmid: int, **params) -> dict:
    return run(px, px.nodes(NODE).qemu.post(vmid=vmid, **params))


def test_create_new_disk_cloudinit_and_defaults(proxmox):
    status = create(proxmox, 100, name="web", memory=2048, cores=2, net0="virtio,bridge=vmbr0",
                    scsi0="local-lvm:4,discard=on", ide2="local-lvm:cloudinit", scsihw="virtio-scsi-pci")
    assert status["exitstatus"] == "OK"
    conf = proxmox.nodes(NODE).qemu(100).config.get()
    assert conf["scsi0"] == "local-lvm:vm-100-disk-0,discard=on,size=4G"
    assert conf["ide2"] == "local-lvm:vm-100-cloudinit,media=cdrom"
    assert re.fullmatch(r"virtio=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2},bridge=vmbr0", conf["net0"])
    assert conf["boot"] == "order=scsi0;ide2;net0"
    assert conf["cores"] == 2 and conf["memory"] == "2048"       # integer vs property-string typing
    assert re.fullmatch(r"uuid=[0-9a-f-]{36}", conf["smbios1"])
    assert re.fullmatch(r"creation-qemu=[\d.]+,ctime=\d+", conf["meta"])
    assert re.fullmatch(r"[0-9a-f]{40}", conf["digest"])
    assert "lock" not in conf


def test_create_on_dir_storage_uses_qcow2_paths(proxmox):
    create(proxmox, 101, scsi0="local:1", ide2="local:cloudinit")
    conf = proxmox.nodes(NODE).qemu(101).config.get()
    assert conf["scsi0"] == "local:101/vm-101-disk-0.qcow2,size=1G"
    assert conf["ide2"] == "local:101/vm-101-cloudinit.qcow2,media=cdrom"


def test_import_from_import_volume_takes_image_size(proxmox, sim_server):
    (sim_server.sim.storage_dir("local") / "import").mkdir(parents=True, exist_ok=True)
    (sim_server.sim.storage_dir("local") / "import" / "noble.qcow2").write_bytes(synthetic_qcow2(3584 << 20))
    create(proxmox, 9000, scsi0="local-lvm:0,import-from=local:import/noble.qcow2")
    conf = proxmox.nodes(NODE).qemu(9000).config.get()
    assert conf["scsi0"] == "local-lvm:vm-9000-disk-0,size=3584M"        # import-from is not stored


def test_create_with_template_flag_makes_base_volumes(proxmox):
    create(proxmox, 9001, scsi0="local-lvm:1", template=1)
    conf = proxmox.nodes(NODE).qemu(9001).config.get()
    assert conf["template"] == 1 and conf["scsi0"].startswith("local-lvm:base-9001-disk-0,")


@pytest.mark.parametrize("params, status, message, errors", [
    ({"scsi0": "local-lvm:4,import-from=local:import/x.qcow2"}, 400, "Parameter verification failed.",
     {"scsi0": "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"}),
    ({"scsi0": "local-lvm:0,import-from=local:iso/x.iso"}, 400, "Parameter verification failed.",
     {"scsi0": "local:iso/x.iso has wrong type 'iso' - needs to be 'images' or 'import'"}),
    ({"scsi0": "local-lvm:1", "storage": "shared-nfs", "ide2": "local:iso/none.iso"}, 400,
     "Parameter verification failed.", {"ide2": "explicit 'media=cdrom' is required for iso images"}),
    ({"ide0": "local-lvm:cloudinit", "ide2": "local-lvm:cloudinit"}, 500,
     "ide2 - cloud-init drive is already attached at 'ide0'", None),
    ({"sshkeys": "ssh-ed25519%20notbase64%21"}, 500, "SSH public key validation error", None),
])
def test_create_rejects_bad_drives_synchronously(proxmox, params, status, message, errors):
    with pytest.raises(ResourceException) as info:
        proxmox.nodes(NODE).qemu.post(vmid=150, **params)
    assert info.value.status_code == status
    assert info.value.content == message
    if errors:
        assert info.value.errors == errors
    assert proxmox.cluster.resources.get(type="vm") == []


def test_storage_without_images_is_a_parameter_error(proxmox, sim_server):
    sim_server.sim.model.storages["local"]["content"] = "iso,snippets"
    with pytest.raises(ResourceException) as info:
        proxmox.nodes(NODE).qemu.post(vmid=150, scsi0="local:1")
    assert info.value.errors == {"storage": "storage 'local' does not support vm images"}


def test_vmid_in_use_anywhere(proxmox):
    create(proxmox, 100)
    with pytest.raises(ResourceException) as info:
        proxmox.nodes(NODE).qemu.post(vmid=100)
    assert info.value.status_code == 500
    assert info.value.content == "unable to create VM 100 - VM 100 already exists on node 'pve'"


def test_unknown_vm_and_wrong_node(start_sim, proxmox_for, tmp_path):
    server = start_sim(tmp_path / "two", nodes=["pve", "pve2"])
    px = proxmox_for(server)
    run(px, px.nodes("pve").qemu.post(vmid=100))
    for node, vmid in (("pve", 555), ("pve2", 100)):
        with pytest.raises(ResourceException) as info:
            px.nodes(node).qemu(vmid).config.get()
        assert info.value.status_code == 500
        assert info.value.content == f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    assert [vm["vmid"] for vm in px.nodes("pve2").qemu.get()] == []
    assert [vm["vmid"] for vm in px.nodes("pve").qemu.get()] == [100]


def test_start_param_boots_at_the_end_of_the_create_task(proxmox):
    create(proxmox, 102, scsi0="local-lvm:1", start=1)
    assert proxmox.nodes(NODE).qemu(102).status.current.get()["status"] == "running"


def test_destroy_frees_volumes_and_refuses_running(proxmox):
    create(proxmox, 103, scsi0="local-lvm:1", start=1)
    with pytest.raises(ResourceException) as info:
        proxmox.nodes(NODE).qemu(103).delete()
    assert info.value.content == "VM 103 is running - destroy failed"
    run(proxmox, proxmox.nodes(NODE).qemu(103).status.stop.post())
    assert run(proxmox, proxmox.nodes(NODE).qemu(103).delete(purge=1))["exitstatus"] == "OK"
    assert proxmox.nodes(NODE).storage("local-lvm").content.get(vmid=103) == []
    assert proxmox.nodes(NODE).qemu.get() == []


def test_destroy_template_with_linked_clone_fails_in_task(proxmox):
    create(proxmox, 9000, scsi0="local-lvm:1", template=1)
    run(proxmox, proxmox.nodes(NODE).qemu(9000).clone.post(newid=104))
    status = run(proxmox, proxmox.nodes(NODE).qemu(9000).delete())
    assert status["exitstatus"] == "base volume 'local-lvm:base-9000-disk-0' is still in use by linked cloned"
    assert proxmox.nodes(NODE).qemu(9000).config.get()["template"] == 1


def test_protection_blocks_destroy(proxmox):
    create(proxmox, 105, protection=1)
    with pytest.raises(ResourceException) as info:
        proxmox.nodes(NODE).qemu(105).delete()
    assert info.value.content == "can't remove VM 105 - protection mode enabled"


def test_create_logs_import_and_vm_listing_fields(proxmox, sim_server):
    create(proxmox, 106, name="db", cores=2, sockets=2, memory=1024, scsi0="local-lvm:2", tags="a;b")
    [entry] = proxmox.nodes(NODE).qemu.get()
    assert entry["name"] == "db" and entry["cpus"] == 4 and entry["maxmem"] == 1024 << 20
    assert entry["maxdisk"] == 2 << 30 and entry["status"] == "stopped" and entry["tags"] == "a;b"
