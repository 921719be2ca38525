"""The feature runner: bash -n, shellcheck, and real runs whose status file phoenix's parser reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from phoenix.guest.runner import StatusError, parse_cloud_init_result, parse_status, runner_script

needs_shellcheck = pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")


@pytest.fixture
def guest_root(tmp_path) -> Path:
    (tmp_path / "features").mkdir()
    (tmp_path / "instance-id").write_text("iid-0123\n")
    (tmp_path / "runner").write_text(runner_script())
    return tmp_path


def feature(root: Path, name: str, body: str) -> None:
    path = root / "features" / f"{name}.sh"
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def run_runner(root: Path, *names: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PHOENIX_FEATURE_DIR=str(root / "features"), PHOENIX_LOG_DIR=str(root / "log"),
               PHOENIX_STATUS_FILE=str(root / "lib" / "status.json"), PHOENIX_INSTANCE_ID_FILE=str(root / "instance-id"),
               PHOENIX_LOCK_FILE=str(root / "lock"))
    return subprocess.run(["bash", str(root / "runner"), *names], env=env, capture_output=True, text=True, timeout=60)


def test_runner_passes_bash_n(guest_root):
    result = subprocess.run(["bash", "-n", str(guest_root / "runner")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@needs_shellcheck
def test_runner_passes_shellcheck(guest_root):
    result = subprocess.run(["shellcheck", "--shell=bash", str(guest_root / "runner")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_runner_runs_every_feature_and_fails_when_one_did(guest_root):
    feature(guest_root, "base", 'echo "base ok"\n')
    feature(guest_root, "docker", 'for i in $(seq 1 30); do echo "line $i"; done\n'
                                  'echo "curl: (6) Could not resolve host: download.docker.com" >&2\nexit 6\n')
    feature(guest_root, "motd", 'printf \'%s\\n\' "quote \\" back\\\\slash tab\tend" $\'bad \\xff byte\'\n')
    result = run_runner(guest_root, "base", "docker", "motd", "absent")
    assert result.returncode == 1
    status = parse_status((guest_root / "lib" / "status.json").read_text())
    assert status.done and status.exit_code == 1 and status.instance_id == "iid-0123"
    assert [(f.name, f.exit_code) for f in status.features] == [("base", 0), ("docker", 6), ("motd", 0), ("absent", 127)]
    docker = status.features[1]
    assert len(docker.log_tail) == 20 and docker.log_tail[0] == "line 12"
    assert docker.last_line == "curl: (6) Could not resolve host: download.docker.com"
    assert status.features[2].log_tail == ('quote " back\\slash tab\tend', "bad  byte")
    assert [f.name for f in status.failed] == ["docker", "absent"]
    assert all(f.started and f.duration_s is not None for f in status.features)
    assert (guest_root / "log" / "feature-docker.log").read_text().count("\n") == 31


def test_runner_without_features_records_the_instance(guest_root):
    assert run_runner(guest_root).returncode == 0
    status = parse_status((guest_root / "lib" / "status.json").read_text())
    assert status.done and status.exit_code == 0 and status.features == () and status.instance_id == "iid-0123"


@pytest.mark.parametrize("text, message", [
    ("nope", "not JSON"),
    ('{"format": 2}', "format 1"),
    ('{"format": 1, "state": "done", "instance_id": "x", "features": [{"name": "a", "state": "odd"}]}',
     "features[0].state"),
    ('{"format": 1, "state": "done", "instance_id": "x", "features": [{"name": "a", "state": "done", "exit_code": "6"}]}',
     "features[0].exit_code must be an integer"),
])
def test_broken_status_files_are_one_line_errors(text, message):
    with pytest.raises(StatusError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_status(text)


def test_cloud_init_result():
    assert parse_cloud_init_result(json.dumps({"v1": {"datasource": "DataSourceNoCloud", "errors": []}})) == []
    errors = parse_cloud_init_result('{"v1": {"errors": ["(\'scripts_user\', RuntimeError(\'x\'))"]}}')
    assert errors and "scripts_user" in errors[0]
    with pytest.raises(StatusError):
        parse_cloud_init_result("[]")
