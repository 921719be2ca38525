"""Cloud-init: dump output exactly as qemu-server generates it, cicustom snippets, GET/PUT cloudinit."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from urllib.parse import quote

import pytest
from proxmoxer import ResourceException

from ._tasks import run

NODE = "pve"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host"
MAC = "BC:24:11:AA:BB:CC"


@pytest.fixture
def vm(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(
        vmid=100, name="web1", net0=f"virtio={MAC},bridge=vmbr0", ide2="local-lvm:cloudinit",
        scsi0="local-lvm:1", ciuser="phoenix", sshkeys=quote(KEY, safe=""),
        ipconfig0="ip=10.0.0.101/24,gw=10.0.0.1", nameserver="1.1.1.1 9.9.9.9", searchdomain="example.com"))
    return proxmox.nodes(NODE).qemu(100)


USER = f"""#cloud-config
hostname: web1
manage_etc_hosts: true
fqdn: web1.example.com
user: phoenix
ssh_authorized_keys:
  - {KEY}
chpasswd:
  expire: False
users:
  - default
package_upgrade: true
"""

NETWORK = """version: 1
config:
    - type: physical
      name: eth0
      mac_address: 'bc:24:11:aa:bb:cc'
      subnets:
      - type: static
        address: '10.0.0.101'
        netmask: '255.255.255.0'
        gateway: '10.0.0.1'
    - type: nameserver
      address:
      - '1.1.1.1'
      - '9.9.9.9'
      search:
      - 'example.com'
"""


def test_dump_user_network_meta(vm):
    assert vm.cloudinit.dump.get(type="user") == USER
    assert vm.cloudinit.dump.get(type="network") == NETWORK
    sha = hashlib.sha1((USER + NETWORK).encode()).hexdigest()
    assert vm.cloudinit.dump.get(type="meta") == f"instance-id: {sha}\n"


def test_dhcp_and_password_and_no_upgrade(vm):
    vm.config.put(ipconfig0="ip=dhcp,ip6=auto", cipassword="pw", ciupgrade=0, ciuser="root")
    user = vm.cloudinit.dump.get(type="user")
    assert "user: root\ndisable_root: False\npassword: $5$" in user
    assert "users:" not in user and "package_upgrade" not in user
    network = vm.cloudinit.dump.get(type="network")
    assert "      - type: dhcp4\n      - type: ipv6_slaac\n" in network


@pytest.mark.skipif(shutil.which("cloud-init") is None, reason="cloud-init is not installed")
def test_generated_userdata_passes_cloud_init_schema(vm, tmp_path):
    path = tmp_path / "user-data"
    path.write_text(vm.cloudinit.dump.get(type="user"))
    result = subprocess.run(["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_changes_are_tracked_until_regenerated(vm, proxmox, sim_server):
    run(proxmox, vm.status.start.post())
    assert vm.cloudinit.get() and all("pending" not in item for item in vm.cloudinit.get())
    vm.config.put(ipconfig0="ip=10.0.0.102/24,gw=10.0.0.1")
    assert {"key": "ipconfig0", "value": "ip=10.0.0.101/24,gw=10.0.0.1",
            "pending": "ip=10.0.0.102/24,gw=10.0.0.1"} in vm.cloudinit.get()
    assert "\n[special:cloudinit]\nipconfig0: ip=10.0.0.101/24,gw=10.0.0.1\n" in sim_server.sim.model.vms[100].render()
    assert vm.cloudinit.put() is None
    assert all("pending" not in item for item in vm.cloudinit.get())
    assert "10.0.0.102" in sim_server.sim.model.vms[100].ci_generated["network"]


def test_cicustom_snippets_used_at_start(vm, proxmox, sim_server):
    snippets = sim_server.sim.storage_dir("local") / "snippets"
    snippets.mkdir(parents=True, exist_ok=True)
    (snippets / "user-100.yaml").write_text("#cloud-config\nhostname: custom\n")
    vm.config.put(cicustom="user=local:snippets/user-100.yaml")
    run(proxmox, vm.status.start.post())
    generated = sim_server.sim.model.vms[100].ci_generated
    assert generated["user"] == "#cloud-config\nhostname: custom\n" and generated["network"] == NETWORK
    assert vm.cloudinit.dump.get(type="user") == USER            # dump ignores cicustom, as on PVE


def test_missing_snippet_fails_the_start_task(vm, proxmox):
    vm.config.put(cicustom="user=local:snippets/missing.yaml")
    status = run(proxmox, vm.status.start.post())
    assert status["exitstatus"] == "can't open '/var/lib/vz/snippets/missing.yaml' - No such file or directory"
    assert vm.status.current.get()["status"] == "stopped"
    vm.config.put(cicustom="user=local:iso/x.iso")
    assert run(proxmox, vm.status.start.post())["exitstatus"] == "local:iso/x.iso is not in the snippets directory"
    with pytest.raises(ResourceException) as info:
        vm.cloudinit.put()
    assert info.value.content == "local:iso/x.iso is not in the snippets directory"
