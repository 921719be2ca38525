"""Persistence of the simulated cluster, credentials and the ``phoenix sim serve`` runtime."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from phoenix.sim.persist import ModelStore, atomic_write_json
from phoenix.sim.simulator import Settings, Simulator


def test_atomic_write_leaves_only_the_file_with_mode_0600(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert target.stat().st_mode & 0o777 == 0o600


def test_two_servers_on_one_data_dir_see_one_cluster(tmp_path, start_sim):
    first = start_sim(tmp_path / "sim", nodes=["pve1", "pve2"])
    with first.sim.mutex:
        model_json = first.sim.model.to_json()
        first.sim.save()
    token, password, ca = first.api_token, first.root_password, first.ca_file
    first.stop()
    second = start_sim(tmp_path / "sim", nodes=["ignored"])
    assert (second.api_token, second.root_password, second.ca_file) == (token, password, ca)
    assert second.sim.model.to_json() == model_json
    assert "ignored" not in json.dumps(second.sim.model.to_json())


def test_a_newer_file_from_another_process_is_reloaded(tmp_path):
    data_dir = tmp_path / "sim"
    ours = Simulator(Settings(nodes=["pve"], data_dir=data_dir, auth_fail_delay=0))
    other = ModelStore(data_dir)
    changed = other.load()
    payload = changed.to_json()
    payload["_written_by_other_process"] = True          # survives from_json only if the model keeps it
    atomic_write_json(data_dir / "cluster.json", payload)
    before = ours.model
    assert ours._store.changed_on_disk()
    ours.refresh()
    assert ours.model is not before                       # a fresh model read from the newer file
    assert not ours._store.changed_on_disk()
    ours.save()                                           # our own write is not mistaken for a foreign one
    assert not ours._store.changed_on_disk()


def test_model_file_is_valid_json_after_save(sim_server):
    with sim_server.sim.mutex:
        sim_server.sim.save()
    stored = ModelStore(sim_server.sim.data_dir).load().to_json()      # snapshot + log replayed
    assert json.loads(json.dumps(stored)) == json.loads(json.dumps(sim_server.sim.model.to_json()))


def test_storage_dir_is_a_real_directory(sim_server):
    path = sim_server.sim.storage_dir("local")
    assert path.is_dir() and path.is_relative_to(sim_server.sim.data_dir)


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"simulator did not print {prefix!r}")


def test_phoenix_sim_serve_writes_env_file_and_stops_on_sigterm(tmp_path):
    data_dir = tmp_path / "sim"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from phoenix.cli import main; main()", "sim", "serve", "--port", "0",
         "--data-dir", str(data_dir), "--task-scale", "0", "--nodes", "pve1,pve2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        listening = _wait_for_line(proc, "phoenix simulator listening on")
        env_line = _wait_for_line(proc, "env file:")
        env_path = Path(env_line.split()[2])
        assert env_path == data_dir.resolve() / "sim.env"
        assert env_path.stat().st_mode & 0o777 == 0o600
        env = dict(line.split("=", 1) for line in env_path.read_text().splitlines())
        assert set(env) == {"PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN", "PROXMOX_VE_CA_FILE",
                            "PHOENIX_SIM_DATA_DIR"}
        assert env["PHOENIX_SIM_DATA_DIR"] == str(data_dir.resolve())
        assert env["PROXMOX_VE_ENDPOINT"] in listening
        secret = env["PROXMOX_VE_API_TOKEN"].split("=", 1)[1]
        response = requests.get(f"{env['PROXMOX_VE_ENDPOINT']}/api2/json/nodes/pve1/tasks",
                                headers={"Authorization": f"PVEAPIToken={env['PROXMOX_VE_API_TOKEN']}"},
                                verify=env["PROXMOX_VE_CA_FILE"], timeout=10)
        assert response.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert secret not in out + listening + env_line and secret not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_phoenix_sim_serve_rejects_bad_options(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "from phoenix.cli import main; main()", "sim", "serve", "--port", "0",
         "--data-dir", str(tmp_path / "sim"), "--task-scale", "-1"],
        capture_output=True, text=True, timeout=60, env={**os.environ})
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --task-scale: must be 0 or more"
