"""Fixtures for the PVE connection layer: a PVEClient on the simulator and a factory for its /_sim controls."""

from __future__ import annotations

import pytest

from phoenix.pve.client import PVEClient
from phoenix.pve.retry import DEFAULT_POLICY
from phoenix.pve.settings import ConnectionSettings

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
