"""Apply under failure: transient faults are retried and converge; permanent ones stop only their chain;
an apply killed half-way leaves a true state, and the next plan shows only what remains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from phoenix.state import StateStore


def test_transient_faults_are_retried_and_apply_converges(sim_server, sim_control, proxmox, tmp_path, phoenix_cli_for):
    run = phoenix_cli_for(sim_server)
    sim_control.fault(endpoint="POST /nodes/{node}/qemu/{vmid}/clone", count=2, status=500,
                      message="can't lock file '/var/lock/qemu-server/lock-8000.conf' - got timeout\n")
    sim_control.fault(endpoint="GET /nodes/{node}/qemu/{vmid}/config", count=2, status=503,
                      message="Service Unavailable")
    sim_control.fault(endpoint="PUT /nodes/{node}/qemu/{vmid}/config", count=1, status=500,
                      message="VM is locked (clone)\n")
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete!" in result.output
    assert run("plan", "--detailed-exitcode").exit_code == 0
    assert proxmox.nodes("pve").qemu(8002).status.current.get()["status"] == "running"


def test_a_failed_task_of_a_transient_kind_is_retried(sim_server, sim_control, tmp_path, phoenix_cli_for):
    run = phoenix_cli_for(sim_server)
    sim_control.fault(task_type="qmclone", count=1,
                      message="clone failed: can't lock file '/var/lock/qemu-server/lock-8000.conf' - got timeout")
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output


def test_permanent_error_stops_only_that_vm_with_pves_message(sim_server, proxmox, tmp_path, phoenix_cli_for):
    run = phoenix_cli_for(sim_server, lambda d: d["vms"][1].update(storage_pool="no-such-storage"))
    result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "vm.8002" in result.output and "no-such-storage" in result.output
    assert "vm.8001: Creation complete" in result.output
    ids = {r["vmid"] for r in proxmox.cluster.resources.get(type="vm")}
    assert 8001 in ids and 8002 not in ids


def test_failed_step_leaves_a_true_record_and_the_next_plan_shows_only_the_rest(sim_server, sim_control, tmp_path, phoenix_cli_for):
    run = phoenix_cli_for(sim_server)
    sim_control.fault(task_type="qmstart", count=20, message="start failed: QEMU exited with code 1")
    result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    state = json.loads(run.state.read_text())
    recorded = state["resources"]["8001"]["attributes"]
    assert recorded["name"] == "docker-vm-01" and recorded["cores"] == 4      # cloned and configured
    assert "power" not in recorded                                          # never started
    sim_control.clear_faults()
    result = run("plan")
    assert "Plan: 0 to add, 2 to change, 0 to destroy." in result.output
    assert '"stopped" -> "running"' in result.output
    assert "cores" not in result.output                       # configured before the failure
    assert run("apply", "--auto-approve").exit_code == 0
    assert run("plan", "--detailed-exitcode").exit_code == 0


@pytest.mark.timeout(120)
def test_apply_killed_mid_clone_resumes(start_sim, tmp_path, phoenix_cli_for):
    """SIGKILL a real phoenix process while PVE is cloning; a re-run waits for the clone lock and converges."""
    server = start_sim(tmp_path / "sim", task_scale=0.5, agent_boot_seconds=0.2)
    run = phoenix_cli_for(server)
    env = {**os.environ, "PROXMOX_VE_ENDPOINT": server.endpoint, "PROXMOX_VE_API_TOKEN": server.api_token,
           "PROXMOX_VE_CA_FILE": str(server.ca_file), "PHOENIX_SIM_DATA_DIR": str(server.sim.settings.data_dir)}
    cmd = [sys.executable, "-m", "phoenix", "--config", str(run.config), "--state", str(run.state),
           "apply", "--auto-approve"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    deadline = time.monotonic() + 60
    try:
        for line in proc.stdout:
            seen.append(line)
            if "cloning" in line or time.monotonic() > deadline:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert any("cloning" in line for line in seen), "".join(seen)
    state = StateStore(run.state).read()                      # the file plus the killed run's journal
    cloning = {line.split(":")[0].removeprefix("vm.") for line in seen if "cloning" in line}
    assert cloning and cloning <= set(state.resources)       # recorded before the clone began
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert run("plan", "--detailed-exitcode").exit_code == 0


@pytest.mark.timeout(120)
def test_ctrl_c_lets_running_steps_finish_and_starts_nothing_new(start_sim, tmp_path, phoenix_cli_for):
    server = start_sim(tmp_path / "sim", task_scale=0.5, agent_boot_seconds=0.2)
    run = phoenix_cli_for(server)
    env = {**os.environ, **run.env}
    cmd = [sys.executable, "-m", "phoenix", "--config", str(run.config), "--state", str(run.state),
           "apply", "--auto-approve"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "cloning" in line:
            proc.send_signal(signal.SIGINT)
            break
    lines += proc.stdout.readlines()
    assert proc.wait(timeout=60) == 1
    output = "".join(lines)
    assert "Interrupted: letting running steps finish" in output, output
    assert "interrupted before" in output
    assert "Traceback" not in output
    state = json.loads(run.state.read_text())
    cloned = [vmid for vmid, r in state["resources"].items() if "name" in r["attributes"]]
    assert cloned, "the clone that was running finished and was recorded"
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert run("plan", "--detailed-exitcode").exit_code == 0


def test_per_node_bound_runs_one_chain_at_a_time_on_a_node(sim_server, phoenix_cli_for):
    run = phoenix_cli_for(sim_server)
    result = run("apply", "--auto-approve", "--parallelism", "4", "--per-node", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    started = {vm: next(i for i, l in enumerate(lines) if l.startswith(f"{vm}: create")) for vm in ("vm.8001", "vm.8002")}
    finished = {vm: next(i for i, l in enumerate(lines) if l.startswith(f"{vm}: Creation complete"))
                for vm in ("vm.8001", "vm.8002")}
    first, second = sorted(started, key=started.get)
    assert finished[first] < started[second], result.output
