"""Interruptions from outside phoenix: a simulator killed mid-task, two states at once, an interrupted destroy.

The real CLI against the simulator; processes that must be killed run as subprocesses.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from phoenix.pve.ownership import owner_of

from .crashkit import (assert_converges, cluster_problems, kill_after_writes, leftovers, phoenix_cmd,
                       template_and_three_vms_on_two_nodes)


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def _wait_for(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- the simulator killed while a task runs ------------------------------------------------------

@pytest.mark.timeout(300)
@pytest.mark.parametrize("kill_at", ["POST /nodes/{node}/qemu", "POST /nodes/{node}/qemu/{vmid}/clone",
                                     "PUT /nodes/{node}/qemu/{vmid}/resize"])
def test_simulator_killed_mid_task_then_restarted_converges(kill_at, start_sim, phoenix_cli_for, sim_control_for,
                                                            tmp_path, caplog):
    """PVE (the simulator) dies while phoenix's create / clone / resize task runs.  After the restart a
    dead task's lock is named at once with its way out, and ``--unlock-stale`` (root@pam with a
    password, as PVE requires) clears it and removes the half-made clone; the apply then converges."""
    data_dir = tmp_path / "sim"
    port = _free_port()
    serve = subprocess.Popen([sys.executable, "-m", "phoenix", "sim", "serve", "--port", str(port), "--nodes",
                              "pve1,pve2", "--data-dir", str(data_dir), "--task-scale", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "listening" in serve.stdout.readline()
        env = dict(line.split("=", 1) for line in (data_dir / "sim.env").read_text().splitlines() if "=" in line)
        served = SimpleNamespace(endpoint=env["PROXMOX_VE_ENDPOINT"], api_token=env["PROXMOX_VE_API_TOKEN"],
                                 ca_file=env["PROXMOX_VE_CA_FILE"],
                                 sim=SimpleNamespace(settings=SimpleNamespace(data_dir=data_dir)))
        run = phoenix_cli_for(served, template_and_three_vms_on_two_nodes)
        control = sim_control_for(served)
        apply = subprocess.Popen(phoenix_cmd(run, "apply", "--auto-approve"), env={**os.environ, **run.env},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            def reached() -> bool:
                if kill_at.endswith("/clone"):        # the target's lock-clone placeholder is in PVE's config
                    return any(vm.get("lock") == "clone" for vm in _resources(served))
                return control.stats()["by_endpoint"].get(kill_at, 0) >= 1

            _wait_for(lambda: reached() or apply.poll() is not None, f"phoenix's first {kill_at}", timeout=240)
            assert apply.poll() is None, apply.communicate()[0]
            serve.kill()                                                   # PVE dies mid-task
        finally:
            apply.kill()
            apply.wait()
    finally:
        serve.kill()
        serve.wait()
    server = start_sim(data_dir, nodes=["pve1", "pve2"], task_scale=0.05, agent_boot_seconds=0.5)
    run.env["PROXMOX_VE_ENDPOINT"] = server.endpoint
    with caplog.at_level(logging.DEBUG, logger="phoenix.sim.server"):     # its access log: one line per request
        result = run("apply", "--auto-approve")
    # A create or clone killed mid-task leaves its lock (create / clone) behind; a resize takes no config lock.
    if kill_at.endswith("/resize"):
        assert result.exit_code == 0, result.output
    if result.exit_code != 0:
        # Only a stale lock may stop this run, and it must say so at once: which lock, which task, the way out.
        assert "but the task that took the lock is gone" in result.output, result.output
        assert "qm unlock" in result.output and "phoenix apply --unlock-stale" in result.output
        vmid = re.search(r"VM (\d+)\s+is\s+locked", result.output).group(1)
        polls = [r.getMessage() for r in caplog.records
                 if r.name == "phoenix.sim.server" and f"/qemu/{vmid}/config " in r.getMessage()]
        # the chain's own read, the lock's first sight, one look again before naming it (other VMs' chains
        # go on meanwhile and read their own configs: not counted)
        assert len(polls) <= 3, f"the lock was polled {len(polls)} times before the dead task was named: {polls}"
        env_token = {k: run.env.pop(k) for k in ("PROXMOX_VE_API_TOKEN",)}
        run.env.update(PROXMOX_VE_USERNAME="root@pam", PROXMOX_VE_PASSWORD=server.root_password)
        result = run("apply", "--auto-approve", "--unlock-stale")
        assert result.exit_code == 0, result.output
        assert "clearing stale lock '" in result.output
        run.env.pop("PROXMOX_VE_USERNAME"), run.env.pop("PROXMOX_VE_PASSWORD")
        run.env.update(env_token)
    assert_converges(server, run, f"simulator killed at {kill_at}")


def _resources(served) -> list[dict]:
    response = requests.get(f"{served.endpoint}/api2/json/cluster/resources", params={"type": "vm"}, timeout=10,
                            headers={"Authorization": f"PVEAPIToken={served.api_token}"}, verify=served.ca_file)
    response.raise_for_status()
    return response.json()["data"]


# --- two state files at once -------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_two_state_files_applied_at_once_never_share_or_delete_a_vm(start_sim, phoenix_cli_for, tmp_path):
    server = start_sim(tmp_path / "sim", task_scale=0.2, agent_boot_seconds=0.5)
    run = phoenix_cli_for(server)
    env = {**os.environ, **run.env}
    states = [tmp_path / "a" / "phoenix.state.json", tmp_path / "b" / "phoenix.state.json"]
    procs = [subprocess.Popen([sys.executable, "-m", "phoenix", "--config", str(run.config), "--state", str(state),
                               "apply", "--auto-approve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for state in states]
    outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    codes = [proc.returncode for proc in procs]
    assert "Traceback" not in "".join(outputs)
    # A run whose plan already saw the other state's template stops before its first record: it has
    # no state file, and it must have said why.
    lineages = [json.loads(state.read_text())["lineage"] if state.exists() else None for state in states]
    for lineage, output, code in zip(lineages, outputs, codes):
        if lineage is None:
            assert code == 1 and "belongs to another phoenix state" in output, output
    sim = server.sim
    assert sim.tasks.wait_idle(60)
    with sim.mutex:
        owners = {vmid: owner_of(vm.conf.get("description"), vmid) for vmid, vm in sim.model.vms.items()}
    assert sorted(owners) == [8000, 8001, 8002], owners               # nothing duplicated, nothing deleted
    assert set(owners.values()) <= set(lineages) - {None}, owners      # every VM is exactly one state's
    assert 1 in codes, outputs                                          # the loser of a race says so …
    for output, code in zip(outputs, codes):
        if code:
            assert "belongs to another phoenix state" in output, output
    for state, lineage in zip(states, lineages):
        if lineage is None:
            continue
        stranger = [vmid for vmid, owner in owners.items() if owner != lineage]
        result = _plan(run, state)
        if stranger:                                                   # … and so does its next plan, without touching them
            assert result.exit_code == 1 and f"VM {stranger[0]}" in result.output, result.output
            assert "belongs to another phoenix state" in result.output
    with sim.mutex:
        assert sorted(sim.model.vms) == [8000, 8001, 8002]


def _plan(run, state: Path):
    from typer.testing import CliRunner

    from phoenix.cli import app

    return CliRunner().invoke(app, ["--config", str(run.config), "--state", str(state), "plan"], env=run.env,
                              catch_exceptions=False)


# --- destroy --------------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_an_interrupted_destroy_finishes_when_run_again(start_sim, phoenix_cli_for, sim_control_for, tmp_path):
    server = start_sim(tmp_path / "sim", nodes=["pve1", "pve2"], task_scale=0.05, agent_boot_seconds=0.5)
    run = phoenix_cli_for(server, template_and_three_vms_on_two_nodes)
    assert run("apply", "--auto-approve").exit_code == 0
    control = sim_control_for(server)
    killed, output = kill_after_writes(control, run, 2, args=("destroy", "8001", "8002", "8003", "--auto-approve"))
    assert killed, output
    result = run("destroy", "8001", "8002", "8003", "--auto-approve")
    assert result.exit_code == 0, result.output
    result = run("destroy", "8001", "8002", "8003", "--auto-approve")   # all gone already: still fine
    assert result.exit_code == 0, result.output
    assert "VM 8003 is already destroyed" in result.output
    assert server.sim.tasks.wait_idle(60)
    with server.sim.mutex:
        assert sorted(server.sim.model.vms) == [8000]
    state = json.loads(run.state.read_text())
    assert sorted(state["resources"]) == ["8000"]
    assert leftovers(server, run) == []
    snippets = [p for node in ("pve1", "pve2")
                for p in (server.sim.model.storage_root("local", node) / "snippets").glob("phoenix-80*")]
    assert snippets == []


def test_destroying_a_vm_that_is_already_gone_is_not_an_error(phoenix_cli, proxmox):
    assert phoenix_cli("apply", "--auto-approve").exit_code == 0
    proxmox.nodes("pve").qemu(8002).status.stop.post()
    proxmox.nodes("pve").qemu(8002).delete()                          # gone, but still in the state
    result = phoenix_cli("destroy", "8002", "8009", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "already destroyed" in result.output and "VM 8009 is already destroyed" in result.output
    assert "8002" not in json.loads(phoenix_cli.state.read_text())["resources"]


def test_destroy_refuses_a_vm_without_this_states_marker(phoenix_cli, proxmox):
    proxmox.nodes("pve").qemu.post(vmid=8100, name="not-ours")
    result = phoenix_cli("destroy", "8100", "--auto-approve")
    assert result.exit_code == 1 and "--force" in result.output
    assert phoenix_cli("destroy", "8100", "--auto-approve", "--force").exit_code == 0


def test_a_vm_that_was_never_created_is_not_called_deleted_outside_phoenix(phoenix_cli, sim_control):
    sim_control.fault(task_type="qmclone", count=10, message="clone failed: no space left on device")
    result = phoenix_cli("apply", "--auto-approve")
    assert result.exit_code == 1 and "no space left on device" in result.output
    sim_control.clear_faults()
    result = phoenix_cli("plan")
    assert "deleted outside phoenix" not in result.output and "changed outside" not in result.output
    assert "its creation did not finish last time" in result.output
    assert phoenix_cli("apply", "--auto-approve").exit_code == 0


def test_import_adds_the_marker_and_then_phoenix_manages_the_vm(phoenix_cli, proxmox):
    assert phoenix_cli("apply", "--auto-approve", "--target", "8000").exit_code == 0
    proxmox.nodes("pve").qemu(8000).clone.post(newid=8001, name="docker-vm-01", full=1)
    result = phoenix_cli("plan")
    assert result.exit_code == 1 and "phoenix import 8001" in result.output
    result = phoenix_cli("import", "8001")
    assert result.exit_code == 0, result.output
    lineage = json.loads(phoenix_cli.state.read_text())["lineage"]
    assert owner_of(proxmox.nodes("pve").qemu(8001).config.get()["description"], 8001) == lineage
    assert phoenix_cli("apply", "--auto-approve").exit_code == 0
    assert phoenix_cli("plan", "--detailed-exitcode").exit_code == 0
