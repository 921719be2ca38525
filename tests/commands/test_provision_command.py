"""provision_command on the shipped example, offline against the simulator (its stand-ins injected)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from phoenix.commands.context import Context
from phoenix.commands.environment import Connection
from phoenix.commands.provision import provision_command
from phoenix.errors import PhoenixError
from phoenix.pve.client import PVEClient
from phoenix.template.report import RecordingReporter
from phoenix.template.simulated import OfflineStandIns

EXAMPLE = Path(__file__).resolve().parents[2] / "desired" / "phoenix_vm_configs.json"


@dataclass
class Connected:
    """An environment around a client the test already holds."""

    client: PVEClient
    stand_ins: OfflineStandIns | None = None

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        yield Connection(self.client, stand_ins=self.stand_ins)


def offline(client: PVEClient, tmp_path: Path, config: Path = EXAMPLE) -> Context:
    """The templates carry this state's ownership marker, so the state lives in the test's directory."""
    return Context(config=config, state=tmp_path / "state.json", environment=Connected(client, OfflineStandIns()))


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the shipped example desired/phoenix_vm_configs.json is missing")
def test_shipped_example_template_builds_offline_in_sim_mode_and_is_idempotent(client, tmp_path):
    reporter = RecordingReporter()
    assert provision_command(offline(client, tmp_path), 8000, cache_dir=tmp_path, reporter=reporter) == 0
    assert any(line.startswith("simulated: ") for line in reporter.lines)
    config = client.get("/nodes/pve/qemu/8000/config")
    assert config["template"] == 1 and config["name"] == "ubuntu-2404-cloud-template"
    again = RecordingReporter()
    assert provision_command(offline(client, tmp_path), None, cache_dir=tmp_path, reporter=again) == 0
    assert again.lines == ["template 8000 ('ubuntu-2404-cloud-template') already exists on node 'pve'; nothing to do"]


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the shipped example desired/phoenix_vm_configs.json is missing")
def test_undeclared_vmid_is_a_clear_error(client, tmp_path):
    with pytest.raises(PhoenixError, match=r"no template with vmid 1234 is declared \(declared: 8000\)"):
        provision_command(offline(client, tmp_path), 1234, cache_dir=tmp_path)
