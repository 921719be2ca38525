"""Ansible's community.proxmox, unchanged, against ``phoenix sim serve``: clone to two nodes, update, grow, start,
read back, run again, remove — every task must succeed (issue 10).

The `ansible` PyPI package bundles community.proxmox; .ci/run installs it.  Skips (saying so) when absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import proxmox_client, start_sim_server

PLAYBOOK = Path(__file__).with_name("playbook.yml")
pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) is None
                                and shutil.which("ansible-playbook") is None,
                                reason="ansible is not installed (pip install ansible; .ci/run does)")


def _playbook(server, tmp_path: Path, *extra: str) -> dict:
    host, _, port = server.endpoint[len("https://"):].rpartition(":")
    user_token, _, secret = server.api_token.partition("=")
    env = {**os.environ, "PROXMOX_HOST": host, "PROXMOX_PORT": port, "PROXMOX_TOKEN_ID": user_token.split("!")[1],
           "PROXMOX_TOKEN_SECRET": secret, "REQUESTS_CA_BUNDLE": str(server.ca_file),
           "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_HOME": str(tmp_path / "ansible"),
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    binary = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook")
    result = subprocess.run([binary, "-i", "localhost,", str(PLAYBOOK), *extra], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return json.loads(result.stdout)


def _failed_or_changed(report: dict) -> tuple[int, int]:
    stats = report["stats"]["localhost"]
    return stats["failures"] + stats.get("unreachable", 0), stats["changed"]


@pytest.mark.timeout(900)
def test_community_proxmox_playbook(tmp_path, _sim_seed_dir):
    from tests.conftest import _fresh_data_dir
    server = start_sim_server(_fresh_data_dir(_sim_seed_dir, tmp_path / "sim"), nodes=["pve1", "pve2"])
    try:
        px = proxmox_client(server)
        upid = px.nodes("pve1").qemu.post(vmid=9000, name="tmpl", memory=512, scsi0="shared-nfs:1",
                                         ide2="shared-nfs:cloudinit", net0="virtio,bridge=vmbr0", agent="1",
                                         template=1)
        assert px.nodes("pve1").tasks(upid).status.get()["exitstatus"] == "OK"
        first = _playbook(server, tmp_path, "--skip-tags", "remove")
        assert _failed_or_changed(first)[0] == 0
        vms = {vm["vmid"]: vm for vm in px.cluster.resources.get(type="vm")}
        assert (vms[201]["node"], vms[202]["node"]) == ("pve1", "pve2")
        assert vms[201]["status"] == "running" and vms[202]["status"] == "running"
        again = _playbook(server, tmp_path, "--skip-tags", "remove")
        assert _failed_or_changed(again)[0] == 0
        removed = _playbook(server, tmp_path, "--tags", "remove")
        assert _failed_or_changed(removed)[0] == 0
        assert sorted(vm["vmid"] for vm in px.cluster.resources.get(type="vm")) == [9000]
    finally:
        server.stop()
