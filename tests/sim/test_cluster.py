"""Cluster and node endpoints: version, nodes, status, resources, nextid."""

from __future__ import annotations

import pytest
from proxmoxer import ResourceException

NODE = "pve"


def test_version(proxmox):
    version = proxmox.version.get()
    assert version["release"] == "9.1" and version["version"].startswith("9.1.")
    assert len(version["repoid"]) >= 8


def test_nodes_and_status(start_sim, proxmox_for, tmp_path):
    server = start_sim(tmp_path / "c", nodes=["pve1", "pve2"])
    px = proxmox_for(server)
    assert [n["node"] for n in px.nodes.get()] == ["pve1", "pve2"]
    assert all(n["status"] == "online" for n in px.nodes.get())
    status = px.cluster.status.get()
    assert status[0]["type"] == "cluster" and status[0]["nodes"] == 2 and status[0]["quorate"] == 1
    assert px.nodes("pve2").status.get()["memory"]["total"] > 0
    with pytest.raises(ResourceException) as info:
        px.nodes("nope").status.get()
    assert info.value.content.startswith("hostname lookup 'nope' failed")


def test_nextid_is_a_string_and_checks_usage(proxmox):
    assert proxmox.cluster.nextid.get() == "100"
    proxmox.nodes(NODE).qemu.post(vmid=100)
    assert proxmox.cluster.nextid.get() == "101"
    assert proxmox.cluster.nextid.get(vmid=555) == "555"
    with pytest.raises(ResourceException) as info:
        proxmox.cluster.nextid.get(vmid=100)
    assert info.value.status_code == 400 and info.value.errors == {"vmid": "VM 100 already exists"}


def test_resources_type_filter(proxmox):
    proxmox.nodes(NODE).qemu.post(vmid=100, name="a")
    kinds = {entry["type"] for entry in proxmox.cluster.resources.get()}
    assert kinds == {"qemu", "node", "storage"}
    [vm] = proxmox.cluster.resources.get(type="vm")
    assert vm["id"] == "qemu/100" and vm["vmid"] == 100 and vm["name"] == "a" and vm["template"] == 0
    storages = {e["storage"] for e in proxmox.cluster.resources.get(type="storage")}
    assert storages == {"local", "local-lvm", "shared-nfs"}
