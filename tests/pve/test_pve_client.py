"""PVEClient against the simulator over real HTTPS: auth, errors, parameters, tasks, retries."""

from __future__ import annotations

import threading
import time
import types

import pytest

from phoenix.errors import PhoenixError
from phoenix.pve import client as client_module
from phoenix.pve.client import PVEApiError, PVEClient, PVEConnectionError, TaskFailed, TaskTimeout, join_path
from phoenix.pve.retry import RetryPolicy
from phoenix.pve.settings import ConnectionSettings


LOCK_TIMEOUT = "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"


# --- authentication and TLS ---------------------------------------------------------------------

def test_token_auth_over_verified_tls(client, sim_server):
    nodes = client.get("/nodes")
    assert [n["node"] for n in nodes] == ["pve"]
    assert client.request_count == 1


def test_ticket_auth_can_read_and_write(sim_server, create_vm, fast_policy):
    settings = ConnectionSettings.from_env({
        "PROXMOX_VE_ENDPOINT": sim_server.endpoint, "PROXMOX_VE_USERNAME": "root@pam",
        "PROXMOX_VE_PASSWORD": sim_server.root_password, "PROXMOX_VE_CA_FILE": str(sim_server.ca_file)})
    with PVEClient.connect(settings, policy=fast_policy) as pve:
        create_vm(pve, 120)  # a POST: needs the CSRF token that comes with the ticket
        assert pve.get("/nodes/pve/qemu/120/config")["name"] == "vm-120"


def test_wrong_password_is_a_one_line_error_without_the_password(sim_server, fast_policy):
    settings = ConnectionSettings.from_env({
        "PROXMOX_VE_ENDPOINT": sim_server.endpoint, "PROXMOX_VE_USERNAME": "root@pam",
        "PROXMOX_VE_PASSWORD": "wrong-horse-battery", "PROXMOX_VE_CA_FILE": str(sim_server.ca_file)})
    with pytest.raises(PhoenixError) as excinfo:
        PVEClient.connect(settings, policy=fast_policy)
    assert "authentication failed for root@pam" in str(excinfo.value)
    assert "wrong-horse-battery" not in str(excinfo.value)


def test_wrong_token_secret_is_refused_and_not_echoed(sim_server, token_settings, fast_policy):
    user_and_id = sim_server.api_token.split("=", 1)[0]
    bogus = "00000000-0000-0000-0000-000000000000"
    with PVEClient.connect(token_settings(sim_server, PROXMOX_VE_API_TOKEN=f"{user_and_id}={bogus}"),
                           policy=fast_policy) as pve:
        with pytest.raises(PVEApiError) as excinfo:
            pve.get("/nodes")
    assert excinfo.value.status == 401 and bogus not in str(excinfo.value)


def test_unknown_ca_fails_tls_verification(sim_server, token_settings, fast_policy):
    settings = token_settings(sim_server, PROXMOX_VE_CA_FILE=None)  # system store does not know the sim's CA
    with PVEClient.connect(settings, policy=fast_policy) as pve:
        with pytest.raises(PVEConnectionError, match="TLS verification failed.*PROXMOX_VE_CA_FILE"):
            pve.get("/nodes")
        assert pve.request_count == 0


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_skips_verification(sim_server, capsys, monkeypatch, token_settings, fast_policy):
    from phoenix.pve import settings as settings_mod

    monkeypatch.setattr(settings_mod, "_warned", False)
    settings = token_settings(sim_server, PROXMOX_VE_CA_FILE=None, PROXMOX_VE_INSECURE="1")
    with PVEClient.connect(settings, policy=fast_policy) as pve:
        assert pve.get("/nodes")
    assert "not verified" in capsys.readouterr().err


def test_unreachable_endpoint_is_a_connection_error(sim_server, token_settings):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = token_settings(sim_server, PROXMOX_VE_ENDPOINT=f"https://127.0.0.1:{port}")
    with PVEClient.connect(settings, policy=RetryPolicy(attempts=2).fast()) as pve:
        with pytest.raises(PVEConnectionError, match=f"cannot reach GET /nodes at https://127.0.0.1:{port}"):
            pve.get("/nodes")


# --- errors and parameters ----------------------------------------------------------------------

def test_parameter_errors_are_one_line_with_pves_per_parameter_messages(client, sim_server):
    with pytest.raises(PVEApiError) as excinfo:
        client.post("/nodes/pve/qemu", vmid=50, name="x")
    error = excinfo.value
    assert error.status == 400 and error.message == "Parameter verification failed."
    assert "vmid" in error.errors and "valid VM ID" in error.errors["vmid"]
    text = str(error)
    assert "\n" not in text and text.startswith("POST /nodes/pve/qemu: Parameter verification failed. (HTTP 400)")
    assert "vmid: invalid format - value does not look like a valid VM ID" in text
    assert sim_server.api_token.split("=", 1)[1] not in text


def test_permanent_error_surfaces_at_once(client):
    before = client.request_count
    with pytest.raises(PVEApiError) as excinfo:
        client.get("/nodes/pve/qemu/4242/config")
    assert excinfo.value.status == 500
    assert "Configuration file 'nodes/pve/qemu-server/4242.conf' does not exist" in str(excinfo.value)
    assert client.request_count - before == 1


def test_booleans_become_digits_and_none_is_dropped(client, create_vm):
    create_vm(client, 130, start=False, description=None, onboot=True)
    config = client.get("/nodes/pve/qemu/130/config")
    assert config["onboot"] == 1 and "description" not in config
    client.put("/nodes/pve/qemu/130/config", onboot=False, name=None)
    assert client.get("/nodes/pve/qemu/130/config")["onboot"] == 0


def test_join_path_keeps_volids_in_one_segment():
    assert join_path("nodes", "pve", "storage", "local", "content", "local:snippets/u.yaml") == \
        "/nodes/pve/storage/local/content/local:snippets%2Fu.yaml"


# --- tasks --------------------------------------------------------------------------------------

def test_run_task_returns_the_final_status(client):
    status = client.run_task("POST", "/nodes/pve/qemu", vmid=140, name="t", memory=256)
    assert status["status"] == "stopped" and status["exitstatus"] == "OK" and status["type"] == "qmcreate"


def test_failed_task_raises_with_log_tail(client, sim_control, create_vm):
    create_vm(client, 150)
    sim_control.fault(task_type="qmstart", count=1, message="start failed: QEMU exited with code 1")
    with pytest.raises(TaskFailed) as excinfo:
        client.run_task("POST", "/nodes/pve/qemu/150/status/start")
    error = excinfo.value
    assert "start failed: QEMU exited with code 1" in error.exitstatus
    assert any("TASK ERROR" in line for line in error.log_tail)
    assert str(error).startswith("task qmstart 150 on pve failed: start failed") and "\n" not in str(error)


def test_wait_task_polls_quickly_then_backs_off(client, sim_server, create_vm, monkeypatch):
    create_vm(client, 160)
    sim_server.sim.settings.task_scale = 0.4  # qmstart: 1 s base → 0.4 s
    try:
        upid = client.post("/nodes/pve/qemu/160/status/start")
        seen, sleeps = [], []
        clock = types.SimpleNamespace(monotonic=time.monotonic, sleep=lambda s: (sleeps.append(s), time.sleep(s)))
        monkeypatch.setattr(client_module, "time", clock)      # this module's sleeps only
        before = client.request_count
        status = client.wait_task(upid, timeout=30, on_progress=seen.append)
    finally:
        sim_server.sim.settings.task_scale = 0.0
    assert status["exitstatus"] == "OK"
    assert seen[-1]["status"] == "stopped" and seen[0]["status"] == "running"
    assert client.request_count - before == len(seen) <= 12
    # No whole-second poll interval: a short first sleep, then growing ones (the sleeps asked for,
    # not the wall time, which a loaded machine stretches).
    assert sleeps and sleeps[0] <= 0.1 and sleeps == sorted(sleeps) and max(sleeps) < 1.0


def test_wait_task_timeout(client, sim_server, create_vm):
    create_vm(client, 170)
    sim_server.sim.settings.task_scale = 0.5  # qmstart: 0.5 s
    try:
        upid = client.post("/nodes/pve/qemu/170/status/start")
        with pytest.raises(TaskTimeout, match="still running after 0.1 s"):
            client.wait_task(upid, timeout=0.1)
    finally:
        sim_server.sim.settings.task_scale = 0.0
        client.wait_task(upid, timeout=30)


def test_bad_upid_is_a_clear_error(client):
    with pytest.raises(PhoenixError, match="not a PVE task id"):
        client.wait_task("nonsense")


# --- retries through the simulator's fault injection --------------------------------------------

def test_transient_http_faults_are_retried_and_succeed(client, sim_control, create_vm):
    create_vm(client, 180)
    sim_control.reset_stats()
    sim_control.fault(endpoint="GET /nodes/{node}/qemu/{vmid}/config", count=2, status=500,
                      message=LOCK_TIMEOUT.format(vmid=180))
    assert client.get("/nodes/pve/qemu/180/config")["name"] == "vm-180"
    assert sim_control.stats()["by_endpoint"]["GET /nodes/{node}/qemu/{vmid}/config"] == 3


@pytest.mark.parametrize("status, message", [(503, "Service Unavailable"), (595, "No route to host"),
                                             (500, "VM is locked (clone)")])
def test_transient_faults_on_task_requests_are_retried(client, sim_control, status, message, create_vm):
    create_vm(client, 190)
    sim_control.fault(endpoint="POST /nodes/{node}/qemu/{vmid}/status/start", count=2, status=status,
                      message=message)
    assert client.run_task("POST", "/nodes/pve/qemu/190/status/start")["exitstatus"] == "OK"
    assert client.get("/nodes/pve/qemu/190/status/current")["status"] == "running"


def test_permanent_fault_is_raised_at_once_with_pves_message(client, sim_control, create_vm):
    create_vm(client, 200)
    sim_control.reset_stats()
    sim_control.fault(endpoint="PUT /nodes/{node}/qemu/{vmid}/config", count=1, status=500,
                      message="storage 'x' does not exist")
    with pytest.raises(PVEApiError) as excinfo:
        client.put("/nodes/pve/qemu/200/config", cores=2)
    assert excinfo.value.status == 500 and excinfo.value.message == "storage 'x' does not exist"
    assert sim_control.stats()["by_endpoint"]["PUT /nodes/{node}/qemu/{vmid}/config"] == 1


def test_retries_give_up_after_the_bound(client, sim_control, create_vm):
    create_vm(client, 210)
    sim_control.fault(endpoint="GET /nodes/{node}/qemu/{vmid}/config", count=50, status=503, message="busy")
    bounded = PVEClient.connect(client.settings, policy=RetryPolicy(attempts=3).fast())
    with bounded, pytest.raises(PVEApiError, match="busy"):
        bounded.get("/nodes/pve/qemu/210/config")
    assert bounded.request_count == 3


def test_task_failing_on_a_lock_timeout_is_started_again(client, sim_control, create_vm):
    create_vm(client, 220)
    sim_control.fault(task_type="qmstart", count=1, message=LOCK_TIMEOUT.format(vmid=220))
    assert client.run_task("POST", "/nodes/pve/qemu/220/status/start")["exitstatus"] == "OK"


# --- concurrency --------------------------------------------------------------------------------

def test_one_client_is_safe_across_threads(client, sim_control):
    sim_control.reset_stats()
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(10):
                client.get("/nodes")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert client.request_count == 160 == sim_control.stats()["total"]
