"""Guest facts through the agent: read, waited for, and the runner re-run, against the simulated guest."""

from __future__ import annotations

import pytest

from phoenix.pve import propstr
from phoenix.pve.guest import GuestNotReady, read_guest, rerun_features, wait_for_guest
from tests.pve.conftest import create_guest_vm

NODE = "pve"


@pytest.fixture
def guest_vm(client, sim_server):
    """VM 100 with the runner and features base, docker in its user-data; returns its MAC (not started)."""
    create_guest_vm(client, sim_server, 100)
    return propstr.parse_net(client.get(f"/nodes/{NODE}/qemu/100/config")["net0"])["macaddr"]


def test_read_guest_of_a_stopped_vm_is_one_call(client, guest_vm):
    before = client.request_count
    facts = read_guest(client, NODE, 100, guest_vm)
    assert not facts.agent and facts.problem == "VM 100 is not running"
    assert client.request_count - before == 1


def test_wait_then_read(client, guest_vm, sim_control):
    sim_control.fault(feature="docker", exit_code=6, log=["curl: (6) Could not resolve host: download.docker.com"])
    client.run_task("POST", f"/nodes/{NODE}/qemu/100/status/start")
    facts = wait_for_guest(client, NODE, 100, mac=guest_vm, timeout=30)
    assert facts.agent and facts.hostname == "web-1" and facts.ipv4 == ("10.0.0.5/24",)
    assert facts.cloud_init_done and facts.cloud_init_errors and facts.features_current
    (failed,) = facts.status.failed
    assert (failed.name, failed.exit_code, failed.last_line) == (
        "docker", 6, "curl: (6) Could not resolve host: download.docker.com")
    again = rerun_features(client, NODE, 100, ["base", "docker"], mac=guest_vm, timeout=30)
    assert again.features_current and not again.status.failed and again.status.instance_id == facts.instance_id


def test_waiting_for_a_silent_agent_is_bounded(client, guest_vm, sim_control):
    client.run_task("POST", f"/nodes/{NODE}/qemu/100/status/start")
    sim_control.fault(endpoint="POST /nodes/{node}/qemu/{vmid}/agent/ping", count=1000,
                      message="QEMU guest agent is not running")
    with pytest.raises(GuestNotReady, match=r"VM 100: the guest agent did not answer within 0s"):
        wait_for_guest(client, NODE, 100, timeout=0.3)


def test_wait_after_a_reboot_needs_the_new_instance(client, guest_vm):
    client.run_task("POST", f"/nodes/{NODE}/qemu/100/status/start")
    first = wait_for_guest(client, NODE, 100, mac=guest_vm, timeout=30)
    client.put(f"/nodes/{NODE}/qemu/100/config", ipconfig0="ip=10.0.0.6/24,gw=10.0.0.1")
    with pytest.raises(GuestNotReady, match="cloud-init did not finish"):
        wait_for_guest(client, NODE, 100, mac=guest_vm, timeout=0.3, not_instance=first.instance_id)
    client.run_task("POST", f"/nodes/{NODE}/qemu/100/status/reboot")
    second = wait_for_guest(client, NODE, 100, mac=guest_vm, timeout=30, not_instance=first.instance_id)
    assert second.instance_id != first.instance_id and second.features_current and second.ipv4 == ("10.0.0.6/24",)
