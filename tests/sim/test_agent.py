"""Guest agent: answers only when enabled, installed (image marker or user-data) and booted."""

from __future__ import annotations

import time

import pytest
from proxmoxer import ResourceException

from phoenix.sim.model.images import SIDECAR_SUFFIX, synthetic_qcow2

from ._tasks import run

NODE = "pve"


def put_import_image(server, name: str, with_agent: bool) -> str:
    folder = server.sim.storage_dir("local") / "import"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(synthetic_qcow2(1 << 30, with_agent=with_agent))
    return f"local:import/{name}"


def agent_error(vm) -> str:
    with pytest.raises(ResourceException) as info:
        vm.agent.ping.post()
    assert info.value.status_code == 500
    return info.value.content


def test_agent_errors_in_pve_order(proxmox, sim_server):
    source = put_import_image(sim_server, "plain.qcow2", with_agent=False)
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, scsi0=f"local-lvm:0,import-from={source}"))
    vm = proxmox.nodes(NODE).qemu(100)
    assert agent_error(vm) == "No QEMU guest agent configured"
    vm.config.put(agent="enabled=0")
    assert agent_error(vm) == "VM 100 is not running"
    run(proxmox, vm.status.start.post())
    assert agent_error(vm) == "QEMU guest agent is not running"     # disabled: no QGA socket (§20)
    vm.config.put(agent="1")              # pending while running: no virtio-serial port yet
    run(proxmox, vm.status.stop.post())
    run(proxmox, vm.status.start.post())
    assert agent_error(vm) == "QEMU guest agent is not running"     # not installed in the image


def test_customized_image_answers_with_configured_ip(proxmox, sim_server):
    source = put_import_image(sim_server, "custom.qcow2", with_agent=True)
    run(proxmox, proxmox.nodes(NODE).qemu.post(
        vmid=101, agent="enabled=1", net0="virtio,bridge=vmbr0", ipconfig0="ip=10.0.0.101/24,gw=10.0.0.1",
        ide2="local-lvm:cloudinit", scsi0=f"local-lvm:0,import-from={source}", start=1))
    vm = proxmox.nodes(NODE).qemu(101)
    assert vm.agent.ping.post() == {"result": {}}
    interfaces = vm.agent("network-get-interfaces").get()["result"]
    eth0 = next(i for i in interfaces if i["name"] == "eth0")
    mac = vm.config.get()["net0"].split(",")[0].split("=")[1].lower()
    assert eth0["hardware-address"] == mac
    assert {"ip-address": "10.0.0.101", "ip-address-type": "ipv4", "prefix": 24} in eth0["ip-addresses"]


def test_sidecar_marks_image_and_linked_clones_inherit(proxmox, sim_server):
    source = put_import_image(sim_server, "side.qcow2", with_agent=False)
    (sim_server.sim.storage_dir("local") / "import" / ("side.qcow2" + SIDECAR_SUFFIX)).touch()
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=9000, agent=1, net0="virtio,bridge=vmbr0",
                                              scsi0=f"local-lvm:0,import-from={source}", template=1))
    run(proxmox, proxmox.nodes(NODE).qemu(9000).clone.post(newid=102))
    run(proxmox, proxmox.nodes(NODE).qemu(102).status.start.post())
    interfaces = proxmox.nodes(NODE).qemu(102).agent("network-get-interfaces").get()["result"]
    eth0 = next(i for i in interfaces if i["name"] == "eth0")
    assert eth0["ip-addresses"][0]["ip-address"].startswith("192.168.")      # DHCP-looking


def test_userdata_that_installs_the_agent(proxmox, sim_server):
    source = put_import_image(sim_server, "plain2.qcow2", with_agent=False)
    snippets = sim_server.sim.storage_dir("local") / "snippets"
    snippets.mkdir(parents=True, exist_ok=True)
    (snippets / "user-103.yaml").write_text("#cloud-config\npackages:\n  - qemu-guest-agent\n"
                                            "runcmd:\n  - systemctl enable --now qemu-guest-agent\n")
    run(proxmox, proxmox.nodes(NODE).qemu.post(
        vmid=103, agent=1, ide2="local-lvm:cloudinit", cicustom="user=local:snippets/user-103.yaml",
        scsi0=f"local-lvm:0,import-from={source}", start=1))
    assert proxmox.nodes(NODE).qemu(103).agent.ping.post() == {"result": {}}


def test_agent_needs_boot_time(start_sim, proxmox_for, tmp_path):
    server = start_sim(tmp_path / "slow", task_scale=0.05)
    px = proxmox_for(server)
    source = put_import_image(server, "c.qcow2", with_agent=True)
    upid = px.nodes(NODE).qemu.post(vmid=100, agent=1, scsi0=f"local-lvm:0,import-from={source}", start=1)
    server.sim.tasks.wait(upid, 10)
    assert agent_error(px.nodes(NODE).qemu(100)) == "QEMU guest agent is not running"
    time.sleep(3 * 0.05 + 0.05)
    assert px.nodes(NODE).qemu(100).agent.ping.post() == {"result": {}}
