"""Pools, users and permissions as PVE answers them (behaviors.md §16-17), and the node/cluster lists clients read."""

from __future__ import annotations

import pytest
from proxmoxer import ResourceException

from ._tasks import run

NODE = "pve"


def error(call, *args, **kwargs) -> ResourceException:
    with pytest.raises(ResourceException) as info:
        call(*args, **kwargs)
    return info.value


def test_pools_exist_only_once_created_and_list_their_members(proxmox, sim_server):
    assert proxmox.pools.get() == []
    refused = error(proxmox.nodes(NODE).qemu.post, vmid=100, pool="prod", memory=512)
    assert refused.status_code == 403 and refused.content == "Permission check failed (pool 'prod' does not exist)"
    assert 100 not in sim_server.sim.model.vms                    # checked before the config is written
    proxmox.pools.post(poolid="prod", comment="production")
    assert proxmox.pools.get() == [{"poolid": "prod", "comment": "production"}]      # no members key
    assert "already exists" in error(proxmox.pools.post, poolid="prod").content
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, pool="prod", memory=512, scsi0="local-lvm:1"))
    [pool] = proxmox.pools.get(poolid="prod")
    assert [m["id"] for m in pool["members"]] == ["qemu/100"] and pool["members"][0]["vmid"] == 100
    assert proxmox.pools("prod").get()["members"] == pool["members"]          # deprecated path: unwrapped
    resources = proxmox.cluster.resources.get()
    assert next(r for r in resources if r.get("vmid") == 100)["pool"] == "prod"
    assert {"id": "/pool/prod", "pool": "prod", "type": "pool"}.items() <= next(
        r for r in resources if r["type"] == "pool").items()
    assert all(r["type"] != "pool" for r in proxmox.cluster.resources.get(type="vm"))
    assert "is not empty (contains VM 100)" in error(proxmox.pools.delete, poolid="prod").content
    run(proxmox, proxmox.nodes(NODE).qemu(100).delete())           # destroy leaves the pool too
    assert proxmox.pools.get(poolid="prod")[0]["members"] == []
    proxmox.pools.delete(poolid="prod")
    assert error(proxmox.pools.get, poolid="prod").content == "pool 'prod' does not exist"


def test_clone_into_a_pool_and_pool_updates(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, memory=512, scsi0="local-lvm:1"))
    refused = error(proxmox.nodes(NODE).qemu(100).clone.post, newid=101, pool="nope")
    assert refused.status_code == 403
    proxmox.pools.post(poolid="a")
    proxmox.pools.post(poolid="b")
    run(proxmox, proxmox.nodes(NODE).qemu(100).clone.post(newid=101, pool="a"))
    assert [m["vmid"] for m in proxmox.pools.get(poolid="a")[0]["members"]] == [101]
    moved = error(proxmox.pools.put, poolid="b", vms="101")
    assert moved.content == "update pools failed: VM 101 belongs already to pool 'a' and 'allow-move' is not set"
    proxmox.pools.put(poolid="b", vms="101", **{"allow-move": 1})
    assert proxmox.pools.get(poolid="a")[0]["members"] == []
    bad = error(proxmox.pools.post, poolid="bad name")
    assert bad.status_code == 400 and "contains invalid characters" in bad.errors["poolid"]


@pytest.mark.parametrize("ticket", [False, True])
def test_users_and_permissions_for_root_and_its_token(sim_server, proxmox_for, ticket):
    px = proxmox_for(sim_server, ticket=ticket)
    [root] = px.access.users.get(full=1)
    assert root["userid"] == "root@pam" and root["enable"] == 1 and root["expire"] == 0
    assert root["groups"] == "" and root["tokens"] == [{"tokenid": "phoenix", "expire": 0, "privsep": 0}]
    assert "tokens" not in px.access.users.get()[0]
    perms = px.access.permissions.get()
    assert {"/", "/vms", "/storage", "/nodes"} <= set(perms)
    assert perms["/"]["VM.Allocate"] == 1 and len(perms["/"]) == 47 and "VM.Monitor" not in perms["/"]
    assert px.access.permissions.get(path="/vms/100") == {"/vms/100": perms["/"]}


def test_network_ha_and_cluster_tasks(proxmox):
    bridges = proxmox.nodes(NODE).network.get(type="any_bridge")
    assert [b["iface"] for b in bridges] == ["vmbr0"] and bridges[0]["active"] == 1
    assert proxmox.cluster.ha.resources.get() == []
    upid = proxmox.nodes(NODE).qemu.post(vmid=100, memory=512)
    run(proxmox, upid)
    tasks = proxmox.cluster.tasks.get()
    assert tasks[0]["upid"] == upid and tasks[0]["type"] == "qmcreate" and tasks[0]["status"] == "OK"


def test_pools_and_members_survive_a_restart(sim_server, proxmox, start_sim, proxmox_for):
    proxmox.pools.post(poolid="keep", comment="kept")
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, pool="keep", memory=512))
    data_dir = sim_server.sim.data_dir
    sim_server.stop()
    px = proxmox_for(start_sim(data_dir))
    [pool] = px.pools.get(poolid="keep")
    assert pool["comment"] == "kept" and [m["vmid"] for m in pool["members"]] == [100]
