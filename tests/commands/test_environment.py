"""The environment decides which PVE phoenix talks to; production code cannot tell a simulator apart.

* no production module imports ``phoenix.sim`` (only ``phoenix/cli.py`` wires it);
* a real PVE gets no probe request (``GET /version``) and no offline stand-ins;
* a missing endpoint says how to try the simulator; the CLI's help and completion are as people expect.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import requests
from typer.testing import CliRunner

from phoenix.cli import app
from phoenix.commands.context import Context
from phoenix.commands.environment import RealPVE
from phoenix.commands.provision import provision_command
from phoenix.template.report import RecordingReporter

from .test_provision_command import EXAMPLE

PACKAGE = Path(__file__).resolve().parents[2] / "phoenix"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_production_code_never_imports_the_simulator():
    production = [p for p in PACKAGE.rglob("*.py")
                  if p.relative_to(PACKAGE).parts[0] != "sim" and p != PACKAGE / "cli.py"]
    offenders = {str(p.relative_to(PACKAGE)): sorted(n for n in _imports(p) if n == "phoenix.sim" or
                                                     n.startswith("phoenix.sim."))
                 for p in production}
    assert {p: names for p, names in offenders.items() if names} == {}
    assert len(production) > 40


def test_no_production_signature_carries_a_simulated_flag():
    flagged = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "sim" or path == PACKAGE / "cli.py":   # cli.py parses --sim
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs
                flagged += [f"{path.name}:{node.name}" for a in args if a.arg in ("simulated", "sim")]
    assert flagged == []


def test_a_real_pve_gets_no_probe_and_no_stand_ins(sim_server, image_server, tmp_path):
    """Provision from a loopback image through RealPVE: PVE's own download, checksum verified, no GET /version."""
    data = json.loads(EXAMPLE.read_text())
    template = data["templates"][0]
    template.pop("customize")
    template["image"] = {"url": image_server.url(image_server.image_path), "checksum": image_server.digest,
                         "delivery": "pve"}
    config = tmp_path / "desired.json"
    config.write_text(json.dumps(data))
    env = {"PROXMOX_VE_ENDPOINT": sim_server.endpoint, "PROXMOX_VE_API_TOKEN": sim_server.api_token,
           "PROXMOX_VE_CA_FILE": str(sim_server.ca_file)}
    reporter = RecordingReporter()
    ctx = Context(config=config, state=tmp_path / "state.json", environment=RealPVE(env))
    assert provision_command(ctx, 8000, cache_dir=tmp_path / "cache", reporter=reporter) == 0
    assert not [line for line in reporter.lines if line.startswith("simulated")], reporter.lines
    stats = requests.get(f"{sim_server.endpoint}/_sim/stats", verify=str(sim_server.ca_file), timeout=10).json()
    assert "GET /version" not in stats["by_endpoint"]
    assert stats["by_endpoint"].get("POST /nodes/{node}/storage/{storage}/download-url") == 1


def test_a_missing_endpoint_says_how_to_use_the_simulator(tmp_path):
    result = CliRunner().invoke(app, ["--state", str(tmp_path / "s.json"), "plan"], env={"PROXMOX_VE_ENDPOINT": ""})
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: PROXMOX_VE_ENDPOINT is not set")
    assert "--sim" in result.output and "simulator" in result.output and "Traceback" not in result.output


def test_help_shows_flags_without_a_bool_metavar():
    for args in (["--help"], ["plan", "--help"], ["apply", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "160", "NO_COLOR": "1"})
        assert result.exit_code == 0 and "--auto-approve" in result.output or args[0] != "apply"
        assert "<bool>" not in result.output and "--help" in result.output


def test_shell_completion_installs(tmp_path):
    result = CliRunner().invoke(app, ["--install-completion", "bash"], prog_name="phoenix",
                                env={"HOME": str(tmp_path), "SHELL": "/bin/bash"})
    assert result.exit_code == 0, result.output
    assert "_PHOENIX_COMPLETE" in "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
