"""The whole life of the shipped example against the simulator, as the reconciler issue describes it."""

from __future__ import annotations

import json


def vm_config(proxmox, vmid: int, node: str = "pve") -> dict:
    return proxmox.nodes(node).qemu(vmid).config.get()


def test_plan_apply_converge_change_drift_remove_destroy(phoenix_cli, proxmox):
    cli = phoenix_cli

    # Empty cluster: the plan shows the template and both VMs; --detailed-exitcode says "changes".
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "template.8000" in result.output and "vm.8001" in result.output and "vm.8002" in result.output
    assert "Plan: 3 to add, 0 to change, 0 to destroy." in result.output
    assert "$6$" not in result.output                      # the password hash never shows

    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete!" in result.output
    assert "simulated" in result.output                      # the offline image fetch says so
    config = vm_config(proxmox, 8001)
    assert config["cores"] == 4 and config["name"] == "docker-vm-01"
    assert "size=64G" in config["scsi0"]
    assert config["cicustom"] == "user=local:snippets/phoenix-8001-user.yaml"
    assert config["ipconfig0"] == "ip=10.0.0.101/24,gw=10.0.0.1"
    assert "%20" in config["sshkeys"] and "+" not in config["sshkeys"]
    assert proxmox.nodes("pve").qemu(8001).status.current.get()["status"] == "running"
    assert proxmox.nodes("pve").qemu(8000).config.get()["template"] == 1

    # Converged: no changes, exit 0.
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes." in result.output

    # Change cores in the file: one in-place change (8002 is running, cores needs a reboot).
    cli.edit(lambda d: d["vms"][1].update(cores=3))
    result = cli("plan", "--detailed-exitcode", "--allow-reboot")
    assert result.exit_code == 2, result.output
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in result.output
    assert "cores" in result.output and "2 -> 3" in result.output
    result = cli("apply", "--auto-approve", "--allow-reboot")
    assert result.exit_code == 0, result.output
    assert vm_config(proxmox, 8002)["cores"] == 3

    # Someone changes 8001's memory behind phoenix's back: drift is reported, exit 2.
    proxmox.nodes("pve").qemu(8001).config.put(memory=1024)
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "changed outside of phoenix" in result.output
    assert "memory_mb" in result.output and "8192 -> 1024" in result.output
    as_json = json.loads(cli("plan", "--json").output)
    assert as_json["resource_drift"][0]["address"] == "vm.8001"
    # memory is hot-pluggable only with a reboot: apply restores it with --allow-reboot.
    result = cli("apply", "--auto-approve", "--allow-reboot")
    assert result.exit_code == 0, result.output
    assert int(vm_config(proxmox, 8001)["memory"]) == 8192
    assert cli("plan", "--detailed-exitcode").exit_code == 0

    # Remove 8002 from the file: the plan destroys it.
    cli.edit(lambda d: d["vms"].pop(1))
    result = cli("plan")
    assert "vm.8002" in result.output and "will be destroyed" in result.output
    assert "Plan: 0 to add, 0 to change, 1 to destroy." in result.output
    assert cli("apply", "--auto-approve").exit_code == 0
    ids = {r["vmid"] for r in proxmox.cluster.resources.get(type="vm")}
    assert 8002 not in ids

    # destroy 8001: gone from PVE and from the state.
    result = cli("destroy", "8001", "--auto-approve")
    assert result.exit_code == 0, result.output
    ids = {r["vmid"] for r in proxmox.cluster.resources.get(type="vm")}
    assert 8001 not in ids and 8000 in ids
    state = json.loads(cli.state.read_text())
    assert "8001" not in state["resources"]
    assert "$6$" not in cli.state.read_text()


def test_apply_asks_for_yes(phoenix_cli, proxmox):
    result = phoenix_cli("apply", input="no\n")
    assert result.exit_code == 1
    assert "Apply cancelled." in result.output
    assert not proxmox.cluster.resources.get(type="vm")
