"""Fixtures for the PVE connection layer: a PVEClient on the simulator and its /_sim controls."""

from __future__ import annotations

import pytest
import requests

from phoenix.pve.client import PVEClient
from phoenix.pve.retry import DEFAULT_POLICY
from phoenix.pve.settings import ConnectionSettings

FAST = DEFAULT_POLICY.fast()


class SimControl:
    """The simulator's unauthenticated side door (loopback only): stats and fault injection."""

    def __init__(self, server):
        self.server = server
        self.session = requests.Session()
        self.verify = str(server.ca_file)  # per call: a session default loses to REQUESTS_CA_BUNDLE

    def _url(self, path: str) -> str:
        return f"{self.server.endpoint}/_sim/{path}"

    def stats(self) -> dict:
        response = self.session.get(self._url("stats"), timeout=10, verify=self.verify)
        response.raise_for_status()
        return response.json()

    def reset_stats(self) -> None:
        self.session.post(self._url("stats/reset"), timeout=10, verify=self.verify).raise_for_status()

    def fault(self, **spec) -> None:
        self.session.post(self._url("faults"), json=spec, timeout=10, verify=self.verify).raise_for_status()

    def clear_faults(self) -> None:
        self.session.delete(self._url("faults"), timeout=10, verify=self.verify).raise_for_status()


def _token_settings(server, **overrides) -> ConnectionSettings:
    env = {"PROXMOX_VE_ENDPOINT": server.endpoint, "PROXMOX_VE_API_TOKEN": server.api_token,
           "PROXMOX_VE_CA_FILE": str(server.ca_file)}
    env.update(overrides)
    return ConnectionSettings.from_env({k: v for k, v in env.items() if v is not None})


@pytest.fixture
def sim_control(sim_server):
    control = SimControl(sim_server)
    yield control
    control.clear_faults()
    control.session.close()


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


@pytest.fixture
def sim_control_for():
    """Factory: a SimControl for any SimServer (closed by the caller)."""
    return SimControl
