"""The iso backend: a NoCloud cidata ISO read back with pycdlib, validated by cloud-init, uploaded, attached."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from phoenix.errors import PhoenixError
from phoenix.snippets.iso import IsoSnippets, attach_cidata, build_cidata_iso, read_cidata_iso

USER_DATA = """#cloud-config
hostname: web-1
users:
  - default
  - name: phoenix
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk3d6n0bBq7a3Zqk8pQ3m0Qy0e8Jw3Yx7m2Yt2dKq1v test@phoenix
packages:
  - qemu-guest-agent
runcmd:
  - [systemctl, enable, --now, qemu-guest-agent]
"""
META_DATA = "instance-id: phoenix-8003\nlocal-hostname: web-1\n"
NETWORK = "version: 1\nconfig:\n  - type: physical\n    name: eth0\n    subnets:\n      - type: dhcp\n"


def test_iso_reads_back_with_label_and_all_documents():
    found = read_cidata_iso(build_cidata_iso(USER_DATA, META_DATA, NETWORK))
    assert found == {"__label__": b"cidata", "user-data": USER_DATA.encode(), "meta-data": META_DATA.encode(),
                     "network-config": NETWORK.encode()}


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=200))
def test_any_document_bytes_survive_the_iso(user_data, meta_data):
    found = read_cidata_iso(build_cidata_iso(user_data, meta_data))
    assert (found["user-data"], found["meta-data"]) == (user_data, meta_data) and "network-config" not in found


@pytest.mark.skipif(shutil.which("cloud-init") is None, reason="cloud-init is not installed")
def test_user_data_in_the_iso_passes_cloud_init_schema(tmp_path):
    found = read_cidata_iso(build_cidata_iso(USER_DATA, META_DATA, NETWORK))
    path = tmp_path / "user-data"
    path.write_bytes(found["user-data"])
    result = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid" in result.stdout and "Error" not in result.stdout


def test_upload_attach_and_remove(client, proxmox, sim_roots):
    proxmox.nodes("pve").qemu.post(vmid=8003, name="web-1", ide2="local-lvm:cloudinit", scsi0="local-lvm:1")
    backend = IsoSnippets(client)
    volid = backend.deliver("pve", "local", 8003, USER_DATA, META_DATA, NETWORK)
    assert volid == "local:iso/phoenix-8003-cidata.iso"
    stored = sim_roots("pve", "local") / "template" / "iso" / "phoenix-8003-cidata.iso"
    assert read_cidata_iso(stored.read_bytes())["user-data"] == USER_DATA.encode()
    backend.deliver("pve", "local", 8003, USER_DATA + "# changed\n", META_DATA, NETWORK)   # replaced
    assert read_cidata_iso(stored.read_bytes())["user-data"].endswith(b"# changed\n")

    sent = attach_cidata(client, "pve", 8003, volid)
    assert sent == {"ide3": "local:iso/phoenix-8003-cidata.iso,media=cdrom", "delete": "ide2"}
    config = client.get("/nodes/pve/qemu/8003/config")
    assert config["ide3"].startswith("local:iso/phoenix-8003-cidata.iso") and "ide2" not in config

    assert backend.exists("pve", "local", "phoenix-8003-cidata.iso")
    client.put("/nodes/pve/qemu/8003/config", delete="ide3")
    backend.remove("pve", "local", "phoenix-8003-cidata.iso")
    assert not stored.exists() and not backend.exists("pve", "local", "phoenix-8003-cidata.iso")


def test_storage_without_iso_content_names_the_fix(client):
    with pytest.raises(PhoenixError, match=r"pvesm set local-lvm --content images,iso,rootdir"):
        IsoSnippets(client).put("pve", "local-lvm", "phoenix-1-cidata.iso", build_cidata_iso("#cloud-config\n", ""))
