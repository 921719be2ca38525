"""Multi-node placement, saved plans, replace, import and destroy rules — the real CLI against the simulator."""

from __future__ import annotations

import json

import pytest


def spread_over_two_nodes(data):
    data["vm_defaults"]["node"] = "pve1"
    data["templates"][0]["node"] = "pve1"
    data["templates"][0]["storage_pool"] = "shared-nfs"
    data["vm_defaults"]["storage_pool"] = "shared-nfs"
    data["vms"][1]["node"] = "pve2"


def test_two_nodes_clone_across_and_converge(start_sim, proxmox_for, tmp_path, phoenix_cli_for):
    server = start_sim(tmp_path / "sim", nodes=["pve1", "pve2"])
    run = phoenix_cli_for(server, spread_over_two_nodes)
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    proxmox = proxmox_for(server)
    placed = {r["vmid"]: r["node"] for r in proxmox.cluster.resources.get(type="vm")}
    assert placed == {8000: "pve1", 8001: "pve1", 8002: "pve2"}
    # The snippet is on pve2's own `local` storage, where PVE on pve2 reads it.
    dump = proxmox.nodes("pve2").qemu(8002).cloudinit.dump.get(type="user")
    assert "app-vm-02" in dump
    result = run("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes." in result.output


def test_clone_to_another_node_from_local_storage_fails_with_pves_words(start_sim, tmp_path, phoenix_cli_for):
    server = start_sim(tmp_path / "sim", nodes=["pve1", "pve2"])

    def local_template(data):
        spread_over_two_nodes(data)
        data["templates"][0]["storage_pool"] = "local-lvm"
        data["vm_defaults"]["storage_pool"] = "local-lvm"

    run = phoenix_cli_for(server, local_template)
    result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "vm.8002" in result.output and "can't clone to non-shared storage" in result.output  # PVE's words
    assert "vm.8001: Creation complete" in result.output                     # the other chain finished


def test_saved_plan_applies_exactly_and_goes_stale(sim_server, tmp_path, phoenix_cli_for):
    run = phoenix_cli_for(sim_server)
    plan_file = tmp_path / "plan.json"
    result = run("plan", "--out", str(plan_file))
    assert result.exit_code == 0, result.output
    text = plan_file.read_text()
    assert "$6$" not in text and "password" not in text
    assert run("apply", str(plan_file)).exit_code == 0            # no prompt for a saved plan
    # The same plan again: the state moved on, so it is refused.
    result = run("apply", str(plan_file))
    assert result.exit_code == 1
    assert "saved plan is stale" in result.output


def test_saved_plan_refused_when_file_changed(sim_server, tmp_path, phoenix_cli_for):
    run = phoenix_cli_for(sim_server)
    plan_file = tmp_path / "plan.json"
    run("plan", "--out", str(plan_file))
    data = json.loads(run.config.read_text())
    data["vms"][0]["cores"] = 8
    run.config.write_text(json.dumps(data))
    result = run("apply", str(plan_file))
    assert result.exit_code == 1
    assert "desired-state file changed" in result.output


def test_template_change_needs_replace_flag(sim_server, tmp_path, phoenix_cli_for):
    def two_templates(data):
        second = json.loads(json.dumps(data["templates"][0]))
        second.update(vmid=9000, name="noble-b")
        data["templates"].append(second)

    run = phoenix_cli_for(sim_server, two_templates)
    assert run("apply", "--auto-approve").exit_code == 0
    data = json.loads(run.config.read_text())
    data["vms"][1]["clone_from_vmid"] = 9000
    run.config.write_text(json.dumps(data))
    result = run("plan", "--detailed-exitcode")
    assert result.exit_code == 2
    assert "must be replaced" in result.output and "--replace 8002" in result.output
    result = run("apply", "--auto-approve")              # held back: nothing happens to 8002
    assert result.exit_code == 0
    result = run("apply", "--auto-approve", "--replace", "8002")
    assert result.exit_code == 0, result.output
    state = json.loads(run.state.read_text())
    assert state["resources"]["8002"]["template_vmid"] == 9000
    assert run("plan", "--detailed-exitcode").exit_code == 0


def test_shrinking_a_disk_is_a_plan_error_naming_the_vm(sim_server, tmp_path, phoenix_cli_for):
    run = phoenix_cli_for(sim_server)
    assert run("apply", "--auto-approve").exit_code == 0
    data = json.loads(run.config.read_text())
    data["vms"][0]["disk_size_gb"] = 16
    run.config.write_text(json.dumps(data))
    result = run("plan")
    assert result.exit_code == 1
    assert "VM 8001 (docker-vm-01)" in result.output and "cannot shrink" in result.output
    assert "Traceback" not in result.output


def test_unmanaged_vm_is_refused_then_imported(sim_server, proxmox, tmp_path, phoenix_cli_for):
    run = phoenix_cli_for(sim_server)
    assert run("apply", "--auto-approve", "--target", "8000", "--target", "8001").exit_code == 0
    # Someone else makes VM 8002 by hand from the same template.
    proxmox.nodes("pve").qemu(8000).clone.post(newid=8002, name="app-vm-02", full=1)
    result = run("plan")
    assert result.exit_code == 1
    assert "phoenix import 8002" in result.output
    result = run("import", "8002")
    assert result.exit_code == 0, result.output
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert run("plan", "--detailed-exitcode").exit_code == 0


def test_destroy_refuses_unmanaged_and_template_with_linked_clones(sim_server, proxmox, tmp_path, phoenix_cli_for):
    def linked(data):
        data["vm_defaults"]["full_clone"] = False

    run = phoenix_cli_for(sim_server, linked)
    assert run("apply", "--auto-approve").exit_code == 0, "setup"
    proxmox.nodes("pve").qemu.post(vmid=777, name="other", memory=512)
    result = run("destroy", "777", "--auto-approve")
    assert result.exit_code == 1 and "not managed by phoenix" in result.output
    result = run("destroy", "8000", "--auto-approve")
    assert result.exit_code == 1
    assert "still in use" in result.output                  # PVE's words about linked clones
    assert 8000 in {r["vmid"] for r in proxmox.cluster.resources.get(type="vm")}
    assert run("destroy", "777", "--auto-approve", "--force").exit_code == 0


def test_concurrent_apply_fails_at_once_naming_the_holder(sim_server, tmp_path, phoenix_cli_for):
    from phoenix.state.store import StateStore

    run = phoenix_cli_for(sim_server)
    store = StateStore(run.state)
    with store.lock("apply"):
        result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "lock" in result.output.lower() and "apply" in result.output


@pytest.mark.parametrize("backend", ["iso"])
def test_iso_backend_replaces_the_cloudinit_drive(sim_server, proxmox, tmp_path, backend, phoenix_cli_for):
    run = phoenix_cli_for(sim_server, lambda d: d["vm_defaults"].update(snippets_backend=backend))
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    config = proxmox.nodes("pve").qemu(8001).config.get()
    assert config["ide3"].startswith("local:iso/phoenix-8001-cidata.iso")
    assert "cicustom" not in config
    assert run("plan", "--detailed-exitcode").exit_code == 0


def test_saved_plan_refused_when_pve_changed_since(sim_server, proxmox, phoenix_cli_for, tmp_path):
    run = phoenix_cli_for(sim_server)
    assert run("apply", "--auto-approve").exit_code == 0
    run.edit(lambda d: d["vms"][0].update(tags=["phoenix", "web"]))
    plan_file = tmp_path / "plan.json"
    assert run("plan", "--out", str(plan_file)).exit_code == 0
    proxmox.nodes("pve").qemu(8001).config.put(description="touched by hand")   # digest changes
    result = run("apply", str(plan_file))
    assert result.exit_code == 1
    assert "vm.8001 changed in PVE since the plan was made" in result.output
