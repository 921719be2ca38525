"""Fixtures for the PVE connection layer: a PVEClient on the simulator and a factory for its /_sim controls."""

from __future__ import annotations

import pytest
import yaml

from phoenix.guest.runner import RUNNER_PATH, feature_script_path, runner_script
from phoenix.pve.client import PVEClient
from phoenix.pve.retry import DEFAULT_POLICY
from phoenix.pve.settings import ConnectionSettings
from phoenix.sim.model.images import synthetic_qcow2

FAST = DEFAULT_POLICY.fast()


def _token_settings(server, **overrides) -> ConnectionSettings:
    env = {"PROXMOX_VE_ENDPOINT": server.endpoint, "PROXMOX_VE_API_TOKEN": server.api_token,
           "PROXMOX_VE_CA_FILE": str(server.ca_file)}
    env.update(overrides)
    return ConnectionSettings.from_env({k: v for k, v in env.items() if v is not None})


@pytest.fixture
def token_settings():
    """Factory: ConnectionSettings for a SimServer (token, verified TLS), with env overrides."""
    return _token_settings


@pytest.fixture
def fast_policy():
    return FAST


@pytest.fixture
def client(sim_server):
    with PVEClient.connect(_token_settings(sim_server), policy=FAST) as pve:
        yield pve


def _create_vm(client: PVEClient, vmid: int, node: str = "pve", **params) -> None:
    client.run_task("POST", f"/nodes/{node}/qemu", vmid=vmid, name=f"vm-{vmid}", memory=512, **params)


@pytest.fixture
def create_vm():
    """Factory: a small disk-less VM — enough for config, status and inventory tests."""
    return _create_vm


def create_guest_vm(client: PVEClient, server, vmid: int, hostname: str = "web-1",
                    ipconfig0: str = "ip=10.0.0.5/24,gw=10.0.0.1") -> None:
    """VM ``vmid`` (not started) whose disk has a guest agent and whose user-data runs phoenix's
    runner with the features base and docker (``local:snippets/u.yaml``)."""
    root = server.sim.storage_dir("local")
    (root / "import").mkdir(parents=True, exist_ok=True)
    (root / "import" / "agent.qcow2").write_bytes(synthetic_qcow2(1 << 30, with_agent=True))
    (root / "snippets").mkdir(parents=True, exist_ok=True)
    files = [{"path": RUNNER_PATH, "content": runner_script()}] + [
        {"path": feature_script_path(n), "content": "#!/bin/bash\n"} for n in ("base", "docker")]
    (root / "snippets" / "u.yaml").write_text("#cloud-config\n" + yaml.safe_dump(
        {"hostname": hostname, "write_files": files, "runcmd": [[RUNNER_PATH, "base", "docker"]]}))
    client.run_task("POST", "/nodes/pve/qemu", vmid=vmid, name=hostname, agent="enabled=1",
                    net0="virtio,bridge=vmbr0", ide2="local-lvm:cloudinit", ipconfig0=ipconfig0,
                    cicustom="user=local:snippets/u.yaml", scsi0="local-lvm:0,import-from=local:import/agent.qcow2")
