"""End-to-end harness: the real ``phoenix`` CLI (in-process, typer's runner) against a simulator over HTTPS."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoenix.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "desired" / "phoenix_vm_configs.json"


@dataclass
class PhoenixCLI:
    """Runs phoenix commands against one simulator with one config and state file."""

    config: Path
    state: Path
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None):
        runner = CliRunner()
        result = runner.invoke(app, ["--config", str(self.config), "--state", str(self.state), *args],
                               env=self.env, input=input, catch_exceptions=False)
        return result

    def edit(self, change) -> None:
        data = json.loads(self.config.read_text())
        change(data)
        self.config.write_text(json.dumps(data, indent=2))


@pytest.fixture
def phoenix_cli(sim_server, tmp_path) -> PhoenixCLI:
    desired = tmp_path / "desired"
    desired.mkdir()
    shutil.copy(EXAMPLE, desired / "phoenix_vm_configs.json")
    if (EXAMPLE.parent / "features").is_dir():
        shutil.copytree(EXAMPLE.parent / "features", desired / "features")
    env = {
        "PROXMOX_VE_ENDPOINT": sim_server.endpoint,
        "PROXMOX_VE_API_TOKEN": sim_server.api_token,
        "PROXMOX_VE_CA_FILE": str(sim_server.ca_file),
        "PHOENIX_SIM_DATA_DIR": str(sim_server.sim.settings.data_dir),
        "COLUMNS": "160",
        "NO_COLOR": "1",
    }
    return PhoenixCLI(config=desired / "phoenix_vm_configs.json", state=tmp_path / "state" / "phoenix.state.json",
                      env=env)
