"""Fault injection, latency and request statistics (``/_sim/*``)."""

from __future__ import annotations

import time

import pytest
import requests
from proxmoxer.core import ResourceException


def _sim(server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{server.endpoint}/_sim/{path}", verify=server.ca_file, timeout=10, **kwargs)


def test_stats_count_by_endpoint_template_and_reset(proxmox, sim_server):
    proxmox.nodes("pve").tasks.get()
    proxmox.nodes("pve").tasks.get(limit=5)
    proxmox.access.ticket.get()
    stats = _sim(sim_server, "GET", "stats").json()
    assert stats["by_endpoint"]["GET /nodes/{node}/tasks"] == 2
    assert stats["by_endpoint"]["GET /access/ticket"] == 1
    assert stats["total"] == 3
    assert _sim(sim_server, "POST", "stats/reset").json() == {"total": 0, "by_endpoint": {}, "peak_in_flight": 0}


def test_endpoint_fault_fails_the_next_n_calls_pve_style(proxmox, sim_server):
    spec = {"endpoint": "GET /nodes/{node}/tasks", "count": 2, "status": 503, "message": "cluster not ready - no quorum?"}
    assert _sim(sim_server, "POST", "faults", json=spec).status_code == 200
    for _ in range(2):
        with pytest.raises(ResourceException) as caught:
            proxmox.nodes("pve").tasks.get()
        assert caught.value.status_code == 503
        assert caught.value.content == "cluster not ready - no quorum?"
    assert proxmox.nodes("pve").tasks.get() == []
    assert _sim(sim_server, "GET", "faults").json()["endpoints"] == []


def test_task_fault_fails_the_next_task_of_that_type(proxmox, sim_server):
    _sim(sim_server, "POST", "faults", json={"task_type": "qmclone", "message": "clone failed: injected"})
    ran: list[str] = []
    first = sim_server.sim.tasks.spawn("pve", "qmclone", "9000", "root@pam", lambda task: ran.append("first"))
    sim_server.sim.tasks.wait(first, 5)
    second = sim_server.sim.tasks.spawn("pve", "qmclone", "9000", "root@pam", lambda task: ran.append("second"))
    sim_server.sim.tasks.wait(second, 5)
    assert proxmox.nodes("pve").tasks(first).status.get()["exitstatus"] == "clone failed: injected"
    assert proxmox.nodes("pve").tasks(first).log.get()[-1]["t"] == "TASK ERROR: clone failed: injected"
    assert proxmox.nodes("pve").tasks(second).status.get()["exitstatus"] == "OK"
    assert ran == ["second"]                       # the failed task changed nothing


def test_hold_after_writes_answers_n_writes_then_holds_the_next_until_cleared(proxmox, sim_server):
    import threading

    assert _sim(sim_server, "POST", "faults", json={"hold_after_writes": 1}).status_code == 200
    proxmox.nodes("pve").qemu.post(vmid=120, name="first")              # write 1: answered
    proxmox.nodes("pve").qemu(120).config.get()                          # reads are never held
    outcome = {}

    def second_write():
        try:
            proxmox.nodes("pve").qemu.post(vmid=121, name="second")
        except ResourceException as exc:
            outcome["error"] = exc

    writer = threading.Thread(target=second_write)
    writer.start()
    deadline = time.monotonic() + 30
    while not _sim(sim_server, "GET", "faults").json().get("holding"):
        assert time.monotonic() < deadline, "the second write was not held"
        time.sleep(0.01)
    assert writer.is_alive()
    _sim(sim_server, "DELETE", "faults")
    writer.join(30)
    assert outcome["error"].status_code == 503                           # released unanswered, never executed
    assert {r["vmid"] for r in proxmox.cluster.resources.get(type="vm")} == {120}


def test_latency_fault_and_clear(proxmox, sim_server):
    _sim(sim_server, "POST", "faults", json={"latency_ms": 150})
    started = time.monotonic()
    proxmox.nodes("pve").tasks.get()
    assert time.monotonic() - started >= 0.15
    _sim(sim_server, "DELETE", "faults")
    assert _sim(sim_server, "GET", "faults").json() == {"endpoints": [], "tasks": [], "features": [], "latency_ms": 0.0}


def test_latency_setting_applies_to_every_request(proxmox, sim_server):
    sim_server.sim.settings.latency_ms = 100
    started = time.monotonic()
    proxmox.nodes("pve").tasks.get()
    assert time.monotonic() - started >= 0.1


@pytest.mark.parametrize("spec, fragment", [
    ({"endpoint": "GET /nope"}, "endpoint: unknown endpoint"),
    ({"endpoint": "GET /version", "count": "x"}, "count: must be a number"),
    ({"endpoint": "GET /version", "status": 200}, "status: must be at least 400"),
    ({"task_type": "qmclone", "colour": 1}, "colour: unknown field"),
    ({"something": 1}, "needs one of"),
])
def test_bad_fault_specs_are_400_naming_the_field(sim_server, spec, fragment):
    response = _sim(sim_server, "POST", "faults", json=spec)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_sim_endpoints_need_no_auth_but_api_does(sim_server):
    assert _sim(sim_server, "GET", "stats").status_code == 200
    assert _sim(sim_server, "GET", "nothing").status_code == 404
