"""``phoenix validate`` and ``phoenix schema`` through the real CLI app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from phoenix.cli import app
from phoenix.desired.commands import schema_command, validate_command
from desired_helpers import EXAMPLE, HASH, HERE


def test_validate_example_summary(capsys):
    assert validate_command(EXAMPLE) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"{EXAMPLE}: valid — 1 template, 2 VMs"


def test_validate_original_project_with_later_keys(capsys):
    assert validate_command(HERE / "original_project_later.json") == 0
    captured = capsys.readouterr()
    assert "valid — 1 template, 2 VMs (original project format)" in captured.out
    assert "warning: vms[1].firewall: ignored" in captured.err


def test_validate_prints_every_problem_one_per_line(capsys):
    assert validate_command(HERE / "broken" / "many_problems.json") == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(": " in line for line in lines)
    assert lines[1] == "vms[0].vmid: VM ID 42 is out of range; PVE accepts 100..999999999"


def test_validate_via_cli_runner_never_prints_the_hash():
    result = CliRunner().invoke(app, ["--config", str(EXAMPLE), "validate"])
    assert result.exit_code == 0 and HASH not in result.output
    bad = CliRunner().invoke(app, ["--config", str(HERE / "broken" / "invalid_json.json"), "validate"])
    assert bad.exit_code == 1 and "line 3, column 19" in bad.output


def test_schema_is_json_schema_of_the_native_form(capsys):
    assert schema_command() == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert {"vm_defaults", "templates", "vms"} <= set(schema["properties"])
    vm_defaults = schema["$defs"]["VMDefaults"]["properties"]
    assert {"snippets_backend", "sftp", "package_upgrade", "snippets_storage"} <= set(vm_defaults)
