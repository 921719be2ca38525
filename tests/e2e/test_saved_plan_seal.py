"""Saved plans are sealed and narrowed (issue 14): an edited plan never runs, even with the key.

Before: editing ``resource_changes`` of a ``plan --out`` file made ``apply FILE`` set any PVE
option (``hookscript``, ``args``) without a prompt, and plan files were 0644.
"""

from __future__ import annotations

import json
import shutil
import stat

import pytest

from phoenix.plan.seal import _mac


def _configure(data: dict, address: str) -> dict:
    rc = next(rc for rc in data["resource_changes"] if rc["address"] == address)
    return next(step for step in rc["steps"] if step["op"] == "configure")


def _reseal(data: dict, state_path) -> None:
    """What an attacker who also stole the state's key could do."""
    data["mac"] = _mac(data, json.loads(state_path.read_text())["plan_key"])


def _applied_and_untouched(run, proxmox, plan_file, expect: str) -> None:
    result = run("apply", str(plan_file))
    assert result.exit_code == 1, result.output
    assert expect in result.output, result.output
    assert "Traceback" not in result.output
    assert not any(vm["vmid"] == 8001 for vm in proxmox.cluster.resources.get(type="vm"))


def test_plan_file_is_0600_and_sealed(phoenix_cli, tmp_path):
    plan_file = tmp_path / "plan.json"
    assert phoenix_cli("plan", "--out", str(plan_file)).exit_code == 0
    assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600
    data = json.loads(plan_file.read_text())
    assert data["mac"].startswith("hmac-sha256:")
    state = json.loads(phoenix_cli.state.read_text())
    assert data["state_lineage"] == state["lineage"] and state["plan_key"] not in plan_file.read_text()


def test_edited_plan_is_refused_by_its_mac(phoenix_cli, proxmox, tmp_path):
    plan_file = tmp_path / "plan.json"
    assert phoenix_cli("plan", "--out", str(plan_file)).exit_code == 0
    data = json.loads(plan_file.read_text())
    _configure(data, "vm.8001")["args"]["attributes"]["hookscript"] = "local:snippets/evil.sh"
    plan_file.write_text(json.dumps(data))
    _applied_and_untouched(phoenix_cli, proxmox, plan_file, "the saved plan was changed after 'phoenix plan' wrote it")


def _add_step(data: dict) -> None:
    rc = next(rc for rc in data["resource_changes"] if rc["address"] == "vm.8001")
    rc["steps"].insert(0, {"op": "destroy", "args": {}, "note": ""})


@pytest.mark.parametrize("edit, expect", [
    (lambda d: _configure(d, "vm.8001")["args"]["attributes"].update(hookscript="local:snippets/evil.sh", args="-x"),
     "vm.8001 would write args, hookscript, which is not a setting phoenix manages"),
    (lambda d: _configure(d, "vm.8001")["args"]["attributes"].update(cores=64), "is not what the desired file produces"),
    (_add_step, "is not what the desired file produces"),
], ids=["foreign-options", "changed-value", "added-step"])
def test_resealed_plan_runs_only_what_the_desired_file_produces(phoenix_cli, proxmox, tmp_path, edit, expect):
    plan_file = tmp_path / "plan.json"
    assert phoenix_cli("plan", "--out", str(plan_file)).exit_code == 0
    data = json.loads(plan_file.read_text())
    edit(data)
    _reseal(data, phoenix_cli.state)
    plan_file.write_text(json.dumps(data))
    _applied_and_untouched(phoenix_cli, proxmox, plan_file, expect)


def test_plan_for_another_state_is_refused(phoenix_cli, proxmox, tmp_path):
    plan_file = tmp_path / "plan.json"
    assert phoenix_cli("plan", "--out", str(plan_file)).exit_code == 0
    shutil.move(phoenix_cli.state, tmp_path / "elsewhere.json")           # a different state takes its place
    assert phoenix_cli("plan").exit_code == 0
    assert phoenix_cli("plan", "--out", str(tmp_path / "other.json")).exit_code == 0
    _applied_and_untouched(phoenix_cli, proxmox, plan_file, "its MAC does not verify")
