"""Shared fixtures: a real simulated PVE over HTTPS and proxmoxer clients talking to it.

``sim_server`` is function-scoped (a fresh cluster per test, task_scale 0, no 401 delay); the
TLS material and credentials are generated once per session and copied into each data dir so a
fresh server starts in milliseconds.  ``sim_server_session`` shares one server for read-mostly tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from hypothesis import settings
from proxmoxer import ProxmoxAPI

from phoenix.sim.server import SimServer

# Shared 2-core CI machines stall now and then: judge hypothesis examples by their result, not their time.
settings.register_profile("phoenix", deadline=None)
settings.load_profile("phoenix")

_SEED_FILES = ("tls", "credentials.json", "authkey.pem")


@pytest.fixture(scope="session")
def _sim_seed_dir(tmp_path_factory) -> Path:
    """A data dir whose TLS files and credentials are reused by every test server."""
    seed = tmp_path_factory.mktemp("sim-seed")
    SimServer(seed / "data", auth_fail_delay=0)          # creating the Simulator generates the files
    return seed / "data"


def _fresh_data_dir(seed: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in _SEED_FILES:
        source = seed / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy2(source, target / name)
    return target


def start_sim_server(data_dir: Path, **kwargs) -> SimServer:
    """A started SimServer with test defaults (task_scale 0, no auth-failure delay); caller stops it."""
    kwargs.setdefault("task_scale", 0.0)
    kwargs.setdefault("auth_fail_delay", 0.0)
    kwargs.setdefault("nodes", ["pve"])
    return SimServer(data_dir, host="127.0.0.1", port=0, **kwargs).start()


def proxmox_client(server: SimServer, ticket: bool = False, timeout: int = 30) -> ProxmoxAPI:
    """A proxmoxer client for ``server``: API token by default, or root@pam password (ticket) auth."""
    host = server.endpoint[len("https://"):]
    if ticket:
        return ProxmoxAPI(host, user="root@pam", password=server.root_password,
                          verify_ssl=server.ca_file, timeout=timeout)
    user_and_id, _, secret = server.api_token.partition("=")
    user, _, token_name = user_and_id.partition("!")
    return ProxmoxAPI(host, user=user, token_name=token_name, token_value=secret,
                      verify_ssl=server.ca_file, timeout=timeout)


@pytest.fixture
def sim_server(tmp_path, _sim_seed_dir):
    """A started simulator with one node ``pve`` in a fresh data dir (function-scoped)."""
    server = start_sim_server(_fresh_data_dir(_sim_seed_dir, tmp_path / "sim"))
    yield server
    server.stop()


@pytest.fixture
def fresh_sim(_sim_seed_dir, tmp_path):
    """Factory for property tests: ``with fresh_sim() as server:`` a pristine simulator per example."""
    import contextlib
    import tempfile

    @contextlib.contextmanager
    def fresh(**kwargs):
        workdir = Path(tempfile.mkdtemp(dir=tmp_path))
        server = start_sim_server(_fresh_data_dir(_sim_seed_dir, workdir / "sim"), **kwargs)
        try:
            yield server
        finally:
            server.stop()

    return fresh


@pytest.fixture(scope="session")
def sim_server_session(tmp_path_factory, _sim_seed_dir):
    """One simulator shared by a whole session, for tests that do not depend on a pristine cluster."""
    server = start_sim_server(_fresh_data_dir(_sim_seed_dir, tmp_path_factory.mktemp("sim-session") / "sim"))
    yield server
    server.stop()


def client_settings(server: SimServer):
    """ConnectionSettings for ``server`` exactly as phoenix reads them from PROXMOX_VE_* (token, verified TLS)."""
    from phoenix.pve.settings import ConnectionSettings

    return ConnectionSettings.from_env({"PROXMOX_VE_ENDPOINT": server.endpoint,
                                        "PROXMOX_VE_API_TOKEN": server.api_token,
                                        "PROXMOX_VE_CA_FILE": str(server.ca_file)})


@pytest.fixture
def client(sim_server):
    """phoenix's own PVEClient on the test's simulator."""
    from phoenix.pve.client import PVEClient

    with PVEClient.connect(client_settings(sim_server)) as connected:
        yield connected


@pytest.fixture
def proxmox(sim_server) -> ProxmoxAPI:
    """proxmoxer with token auth against ``sim_server``, TLS verified with its CA."""
    return proxmox_client(sim_server)


@pytest.fixture
def proxmox_ticket(sim_server) -> ProxmoxAPI:
    """proxmoxer with root@pam password (ticket + CSRF) auth against ``sim_server``."""
    return proxmox_client(sim_server, ticket=True)


@pytest.fixture
def start_sim():
    """Factory: ``start_sim(data_dir, **SimServer kwargs)`` → a started server, stopped after the test."""
    started: list[SimServer] = []

    def start(data_dir: Path, **kwargs) -> SimServer:
        server = start_sim_server(Path(data_dir), **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def proxmox_for():
    """Factory: ``proxmox_for(server, ticket=False)`` for servers a test starts itself."""
    return proxmox_client


class SimControl:
    """The simulator's unauthenticated side door (loopback only): request stats and fault injection."""

    def __init__(self, server: SimServer):
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

    def faults(self) -> dict:
        response = self.session.get(self._url("faults"), timeout=10, verify=self.verify)
        response.raise_for_status()
        return response.json()

    def clear_faults(self) -> None:
        self.session.delete(self._url("faults"), timeout=10, verify=self.verify).raise_for_status()


@pytest.fixture
def sim_control_for():
    """Factory: a SimControl for any SimServer (closed by the caller)."""
    return SimControl


@pytest.fixture
def sim_control(sim_server):
    control = SimControl(sim_server)
    yield control
    control.clear_faults()
    control.session.close()


EXAMPLE = Path(__file__).resolve().parents[1] / "desired" / "phoenix_vm_configs.json"


class PhoenixCLI:
    """The real ``phoenix`` CLI (in-process, typer's runner) against one simulator, config and state file."""

    def __init__(self, server: SimServer, workdir: Path, edit: Callable[[dict], Any] | None = None):
        desired = workdir / "desired"
        desired.mkdir(parents=True, exist_ok=True)
        if (EXAMPLE.parent / "features").is_dir():
            shutil.copytree(EXAMPLE.parent / "features", desired / "features", dirs_exist_ok=True)
        self.config = desired / "phoenix_vm_configs.json"
        self.config.write_text(EXAMPLE.read_text())
        self.state = workdir / "state" / "phoenix.state.json"
        self.env = {
            "PROXMOX_VE_ENDPOINT": server.endpoint,
            "PROXMOX_VE_API_TOKEN": server.api_token,
            "PROXMOX_VE_CA_FILE": str(server.ca_file),
            "PHOENIX_SIM_DATA_DIR": str(server.sim.settings.data_dir),
            "COLUMNS": "160",
            "NO_COLOR": "1",
        }
        if edit:
            self.edit(edit)

    def __call__(self, *args: str, input: str | None = None):
        from typer.testing import CliRunner

        from phoenix.cli import app

        return CliRunner().invoke(app, ["--config", str(self.config), "--state", str(self.state), *args],
                                  env=self.env, input=input, catch_exceptions=False)

    def edit(self, change: Callable[[dict], Any]) -> None:
        data = json.loads(self.config.read_text())
        change(data)
        self.config.write_text(json.dumps(data, indent=2))


@pytest.fixture
def phoenix_cli(sim_server, tmp_path) -> PhoenixCLI:
    """phoenix on the shipped example against a fresh single-node simulator."""
    return PhoenixCLI(sim_server, tmp_path)


@pytest.fixture
def phoenix_cli_for(tmp_path):
    """Factory: ``phoenix_cli_for(server, edit=None)`` for another simulator or an edited example; the config
    and state live in the server's data dir's parent, so each server gets its own."""
    return lambda server, edit=None: PhoenixCLI(server, Path(server.sim.settings.data_dir).parent, edit)
