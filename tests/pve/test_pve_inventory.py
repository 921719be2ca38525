"""read_inventory: one resources call plus one config call per requested VM, read in parallel."""

from __future__ import annotations

import pytest

from phoenix.pve.client import PVEClient
from phoenix.pve.inventory import read_inventory



def test_request_count_is_n_plus_one(client, sim_control, create_vm):
    for vmid in (301, 302, 303, 304, 305):
        create_vm(client, vmid)
    client.run_task("POST", "/nodes/pve/qemu/305/template")
    sim_control.reset_stats()

    inventory = read_inventory(client, [301, 303, 305, 999])  # 999 does not exist

    assert sorted(inventory.vms) == [301, 303, 305]
    assert inventory.request_count == 4
    stats = sim_control.stats()
    assert stats["total"] == 4
    assert stats["by_endpoint"]["GET /cluster/resources"] == 1
    assert stats["by_endpoint"]["GET /nodes/{node}/qemu/{vmid}/pending"] == 3     # current + pending, one call

    vm = inventory.vms[301]
    assert (vm.vmid, vm.node, vm.name, vm.status, vm.template, vm.lock) == (301, "pve", "vm-301", "stopped",
                                                                             False, None)
    assert vm.config["memory"] in (512, "512") and vm.digest and len(vm.digest) == 40
    assert inventory.vms[305].template is True
    assert inventory.nodes == ["pve"]
    assert inventory.node_of(302) == "pve" and inventory.node_of(999) is None
    assert 302 in inventory.guests and 302 not in inventory.vms


def test_all_vms_when_no_ids_given(client, create_vm):
    for vmid in (311, 312):
        create_vm(client, vmid)
    inventory = read_inventory(client)
    assert {311, 312} <= set(inventory.vms)
    assert inventory.request_count == len(inventory.vms) + 1


def test_prefetched_resources_save_the_call(client, sim_control, create_vm):
    create_vm(client, 321)
    resources = client.get("/cluster/resources")
    sim_control.reset_stats()
    inventory = read_inventory(client, [321], resources=resources)
    assert inventory.request_count == 1 and sim_control.stats()["by_endpoint"].get("GET /cluster/resources") is None


def test_empty_request_reads_only_resources(client, create_vm):
    create_vm(client, 331)
    inventory = read_inventory(client, [])
    assert inventory.vms == {} and inventory.request_count == 1 and 331 in inventory.guests


@pytest.fixture
def two_node_server(tmp_path):
    from phoenix.sim.server import SimServer

    with SimServer(tmp_path / "sim", nodes=["pve1", "pve2"], host="127.0.0.1", port=0, task_scale=0.0) as server:
        yield server


def test_nodes_are_known_without_vms_or_extra_calls(two_node_server, create_vm, token_settings, fast_policy, sim_control_for):
    control = sim_control_for(two_node_server)
    with PVEClient.connect(token_settings(two_node_server), policy=fast_policy) as pve:
        create_vm(pve, 401, node="pve2")
        control.reset_stats()
        inventory = read_inventory(pve, [401])
    assert sorted(inventory.nodes) == ["pve1", "pve2"]
    assert inventory.vms[401].node == "pve2"
    assert control.stats()["total"] == 2
    control.session.close()


def test_many_vms_are_read_concurrently(client, sim_control, create_vm):
    vmids = list(range(501, 521))
    for vmid in vmids:
        create_vm(client, vmid)
    sim_control.fault(latency_ms=200)       # wide margin: overlapping reads are certain even on a loaded box
    sim_control.reset_stats()
    inventory = read_inventory(client, vmids, max_workers=10)
    assert sorted(inventory.vms) == vmids and inventory.request_count == 21
    # Serial reads would never have two requests in the simulator at once; 200 ms each overlap.
    assert sim_control.stats()["peak_in_flight"] > 1
