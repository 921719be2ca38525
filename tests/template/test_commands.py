"""provision_command on the shipped example, offline against the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.errors import PhoenixError
from phoenix.template.commands import provision_command
from phoenix.template.report import RecordingReporter


EXAMPLE = Path(__file__).resolve().parents[2] / "desired" / "phoenix_vm_configs.json"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the shipped example desired/phoenix_vm_configs.json is missing")
def test_shipped_example_template_builds_offline_in_sim_mode_and_is_idempotent(client, tmp_path):
    reporter = RecordingReporter()
    assert provision_command(EXAMPLE, 8000, sim=True, client=client, cache_dir=tmp_path, reporter=reporter,
                             state_path=tmp_path / "state.json") == 0
    assert any(line.startswith("simulated: ") for line in reporter.lines)
    config = client.get("/nodes/pve/qemu/8000/config")
    assert config["template"] == 1 and config["name"] == "ubuntu-2404-cloud-template"
    again = RecordingReporter()
    assert provision_command(EXAMPLE, None, sim=True, client=client, cache_dir=tmp_path, reporter=again,
                             state_path=tmp_path / "state.json") == 0
    assert again.lines == ["template 8000 ('ubuntu-2404-cloud-template') already exists on node 'pve'; nothing to do"]


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the shipped example desired/phoenix_vm_configs.json is missing")
def test_undeclared_vmid_is_a_clear_error(client, tmp_path):
    with pytest.raises(PhoenixError, match=r"no template with vmid 1234 is declared \(declared: 8000\)"):
        provision_command(EXAMPLE, 1234, sim=True, client=client, cache_dir=tmp_path, state_path=tmp_path / "s.json")
