"""Converged means converged inside the VM: the real CLI against the simulator and its guest.

An IP change on a running VM is held back, then applied with --allow-reboot; a failing feature fails
its VM (the others go on), taints it, shows in plan and show, and converges once the fault is gone;
a silent agent taints the VM; a pending value someone else set is reverted without a reboot.
"""

from __future__ import annotations

import json

NODE = "pve"
EXIT_6_LINE = "curl: (6) Could not resolve host: download.docker.com"


def guest_ipv4(proxmox, vmid: int) -> list[str]:
    nics = proxmox.nodes(NODE).qemu(vmid).agent("network-get-interfaces").get()["result"]
    eth0 = next(n for n in nics if n["name"] == "eth0")
    return [f"{a['ip-address']}/{a['prefix']}" for a in eth0["ip-addresses"] if a["ip-address-type"] == "ipv4"]


def task_types(proxmox, vmid: int) -> list[str]:
    return [t["type"] for t in proxmox.nodes(NODE).tasks.get(vmid=vmid, limit=500)]


def test_ip_change_is_held_back_then_applied_with_a_reboot(phoenix_cli, proxmox):
    cli = phoenix_cli
    assert cli("apply", "--auto-approve").exit_code == 0
    cli.edit(lambda d: d["vms"][0]["network_config"].update(ip="10.0.0.111/24"))

    result = cli("plan", "--detailed-exitcode", "--guest")
    assert result.exit_code == 2, result.output
    assert '~ vm.8001 guest: ipv4 = "10.0.0.101/24" -> "10.0.0.111/24"' in result.output
    assert "held back: ipconfig0: the guest applies cloud-init changes only at its next boot" in result.output
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert proxmox.nodes(NODE).qemu(8001).config.get()["ipconfig0"] == "ip=10.0.0.101/24,gw=10.0.0.1"
    assert guest_ipv4(proxmox, 8001) == ["10.0.0.101/24"]

    result = cli("apply", "--auto-approve", "--allow-reboot")
    assert result.exit_code == 0, result.output
    assert "vm.8001: rebooting" in result.output and "vm.8001: feature docker ok" in result.output
    assert "qmreboot" in task_types(proxmox, 8001)
    assert guest_ipv4(proxmox, 8001) == ["10.0.0.111/24"]
    result = cli("plan", "--guest", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes." in result.output and "guest:" not in result.output


def test_a_failing_feature_fails_its_vm_until_the_fault_is_gone(phoenix_cli, sim_control):
    cli = phoenix_cli
    sim_control.fault(feature="base", vmid=8001, exit_code=6, log=["fetching the key", EXIT_6_LINE])
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert f"docker-vm-01: feature base failed (exit 6) after 0 s — {EXIT_6_LINE}" in result.output
    assert "vm.8002: Creation complete" in result.output            # the other VM went on
    assert "error: vm.8001: wait_guest: docker-vm-01: feature base failed (exit 6)" in result.output

    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "# vm.8001 (docker-vm-01, node pve) will be updated in-place" in result.output
    assert "tainted: the last apply failed (wait_guest: docker-vm-01: feature base failed (exit 6)" in result.output
    result = cli("plan", "--guest")
    assert f"~ vm.8001 guest: feature base failed (exit 6) after 0 s — {EXIT_6_LINE}" in result.output

    result = cli("show")
    assert result.exit_code == 0, result.output
    assert "base failed (exit 6), docker ok" in result.output and "tainted" in result.output
    rows = {row["vmid"]: row for row in json.loads(cli("show", "--json", "8001").output)}
    base = rows[8001]["features"][0]
    assert (base["name"], base["exit_code"], base["error"]) == (
        "base", 6, f"feature base failed (exit 6) after 0 s — {EXIT_6_LINE}")
    assert rows[8001]["ipv4"] == ["10.0.0.101/24"] and rows[8001]["tainted"].startswith("wait_guest:")

    # The fault was for one run: the next apply runs the features again (agent exec) and converges.
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "vm.8001: running the features again" in result.output
    result = cli("plan", "--guest", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert json.loads(cli("show", "--json", "8001").output)[0]["tainted"] is None


def test_a_silent_agent_is_shown_again_by_the_next_plan(phoenix_cli, sim_control):
    cli = phoenix_cli
    sim_control.fault(endpoint="POST /nodes/{node}/qemu/{vmid}/agent/ping", count=100000,
                      message="QEMU guest agent is not running")
    result = cli("apply", "--auto-approve", "--guest-timeout", "1")
    assert result.exit_code == 1, result.output
    assert "the guest agent did not answer within 1s (QEMU guest agent is not running)" in result.output
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "tainted: the last apply failed (wait_guest: VM 8001: the guest agent did not answer" in result.output
    sim_control.clear_faults()
    assert cli("apply", "--auto-approve").exit_code == 0
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output


def test_a_pending_value_set_outside_phoenix_is_reverted_without_a_reboot(phoenix_cli, proxmox):
    cli = phoenix_cli
    assert cli("apply", "--auto-approve").exit_code == 0
    proxmox.nodes(NODE).qemu(8001).config.put(memory=1024)          # running: pending until the next boot
    before = task_types(proxmox, 8001)

    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert '~ memory_mb (pending) = 1024 -> 8192' in result.output
    assert "memory_mb: a pending value set outside phoenix is reverted; the running value stays (no reboot)" \
        in result.output
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    pending = proxmox.nodes(NODE).qemu(8001).pending.get()
    assert not [item for item in pending if "pending" in item or "delete" in item]
    assert task_types(proxmox, 8001) == before                       # no stop, start or reboot
    assert cli("plan", "--detailed-exitcode").exit_code == 0


def test_a_value_already_pending_waits_for_a_reboot(phoenix_cli, proxmox):
    cli = phoenix_cli
    assert cli("apply", "--auto-approve").exit_code == 0
    cli.edit(lambda d: d["vms"][0].update(memory_mb=4096))
    proxmox.nodes(NODE).qemu(8001).config.put(memory=4096)          # someone wrote the declared value already
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "memory_mb: already written, waiting for a reboot of the running VM" in result.output
    result = cli("apply", "--auto-approve", "--allow-reboot")
    assert result.exit_code == 0, result.output
    assert str(proxmox.nodes(NODE).qemu(8001).config.get(current=1)["memory"]) == "4096"
    assert cli("plan", "--detailed-exitcode").exit_code == 0
