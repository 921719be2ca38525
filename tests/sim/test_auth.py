"""Ticket, CSRF and API-token authentication of the simulator (behaviors.md §2)."""

from __future__ import annotations

import time

import pytest
import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException

from phoenix.sim.tasks import parse_upid


def _until_stopped(task) -> None:
    """Worker body that runs until DELETE /tasks/{upid} interrupts it (at most 30 s)."""
    for _ in range(3000):
        task.sleep(0)
        time.sleep(0.01)


def _api(server, path: str) -> str:
    return f"{server.endpoint}/api2/json{path}"


def _login(server) -> dict:
    response = requests.post(_api(server, "/access/ticket"), data={"username": "root@pam",
                             "password": server.root_password}, verify=server.ca_file, timeout=10)
    assert response.status_code == 200
    return response.json()["data"]


def test_ticket_login_returns_pve_shapes(sim_server):
    data = _login(sim_server)
    assert data["username"] == "root@pam"
    assert data["ticket"].startswith("PVE:root@pam:")
    head, _, signature = data["ticket"].partition("::")
    assert len(head.split(":")[2]) == 8 and signature
    stamp, _, digest = data["CSRFPreventionToken"].partition(":")
    assert len(stamp) == 8 and int(stamp, 16) and digest
    assert "cap" in data


def test_proxmoxer_ticket_auth_reads_and_writes(proxmox_ticket, sim_server):
    upid = sim_server.sim.tasks.spawn("pve", "qmstart", "100", "root@pam", _until_stopped)
    assert proxmox_ticket.nodes("pve").tasks.get(source="active")[0]["upid"] == upid
    proxmox_ticket.nodes("pve").tasks(upid).delete()        # non-GET: CSRF header sent by proxmoxer
    assert sim_server.sim.tasks.wait(upid, 5).exitstatus == "received interrupt"


def test_token_auth_user_is_the_token_user(proxmox, sim_server):
    upid = sim_server.sim.tasks.spawn("pve", "qmstart", "100", "root@pam!phoenix", lambda task: None)
    sim_server.sim.tasks.wait(upid, 5)
    status = proxmox.nodes("pve").tasks(upid).status.get()
    assert (status["user"], status["tokenid"]) == ("root@pam", "phoenix")
    assert parse_upid(upid)["user"] == "root@pam!phoenix"


def test_missing_credentials_is_bare_401_no_ticket(sim_server):
    response = requests.get(_api(sim_server, "/nodes/pve/tasks"), verify=sim_server.ca_file, timeout=10)
    assert (response.status_code, response.reason, response.content) == (401, "No ticket", b"")


@pytest.mark.parametrize("header", [
    "PVEAPIToken=root@pam!phoenix=00000000-0000-0000-0000-000000000000",
    "PVEAPIToken=root@pam!other={secret}",
    "PVEAPIToken=garbage",
    "PVEAuthCookie=PVE:root@pam:00000000::AAAA",
])
def test_bad_token_or_ticket_is_authentication_failed(sim_server, header):
    secret = sim_server.api_token.partition("=")[2]
    response = requests.get(_api(sim_server, "/nodes/pve/tasks"), headers={"Authorization": header.format(secret=secret)},
                            verify=sim_server.ca_file, timeout=10)
    assert (response.status_code, response.reason) == (401, "Authentication failed!")
    assert secret not in response.text


def test_tampered_ticket_cookie_is_refused(sim_server):
    ticket = _login(sim_server)["ticket"]
    forged = ticket.replace("root@pam", "admin@pam", 1)
    response = requests.get(_api(sim_server, "/nodes/pve/tasks"), cookies={"PVEAuthCookie": forged},
                            verify=sim_server.ca_file, timeout=10)
    assert (response.status_code, response.reason) == (401, "Authentication failed!")


def test_ticket_in_cookie_or_authorization_header(sim_server):
    ticket = _login(sim_server)["ticket"]
    by_cookie = requests.get(_api(sim_server, "/nodes/pve/tasks"), cookies={"PVEAuthCookie": ticket},
                             verify=sim_server.ca_file, timeout=10)
    by_header = requests.get(_api(sim_server, "/nodes/pve/tasks"), headers={"Authorization": f"PVEAuthCookie={ticket}"},
                             verify=sim_server.ca_file, timeout=10)
    assert by_cookie.status_code == by_header.status_code == 200


def test_non_get_with_ticket_needs_csrf_token(sim_server):
    data = _login(sim_server)
    upid = sim_server.sim.tasks.spawn("pve", "qmstart", "100", "root@pam", _until_stopped)
    url = _api(sim_server, f"/nodes/pve/tasks/{upid}")
    cookies = {"PVEAuthCookie": data["ticket"]}
    missing = requests.delete(url, cookies=cookies, verify=sim_server.ca_file, timeout=10)
    wrong = requests.delete(url, cookies=cookies, headers={"CSRFPreventionToken": "00000000:AAAA"},
                            verify=sim_server.ca_file, timeout=10)
    for response in (missing, wrong):
        assert (response.status_code, response.reason) == (401, "Permission denied - invalid csrf token")
    good = requests.delete(url, cookies=cookies, headers={"CSRFPreventionToken": data["CSRFPreventionToken"]},
                           verify=sim_server.ca_file, timeout=10)
    assert good.status_code == 200
    sim_server.sim.tasks.wait(upid, 5)


def test_wrong_password_is_401_authentication_failure_with_json_message(sim_server):
    response = requests.post(_api(sim_server, "/access/ticket"), data={"username": "root@pam", "password": "nope"},
                             verify=sim_server.ca_file, timeout=10)
    assert (response.status_code, response.reason) == (401, "authentication failure")
    assert response.json() == {"data": None, "message": "authentication failure\n"}
    with pytest.raises(AuthenticationError):
        ProxmoxAPI(sim_server.endpoint[8:], user="root@pam", password="nope", verify_ssl=sim_server.ca_file)


def test_wrong_password_is_delayed_by_the_setting(sim_server):
    """With a long delay configured, a client that waits briefly never sees the 401; without it, it does."""
    wrong = {"username": "root", "realm": "pam", "password": "nope"}
    sim_server.sim.settings.auth_fail_delay = 30
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(_api(sim_server, "/access/ticket"), data=wrong, verify=sim_server.ca_file, timeout=(10, 0.5))
    sim_server.sim.settings.auth_fail_delay = 0
    response = requests.post(_api(sim_server, "/access/ticket"), data=wrong, verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 401


def test_username_without_realm_uses_realm_param_and_ticket_renews(sim_server):
    first = requests.post(_api(sim_server, "/access/ticket"), data={"username": "root", "realm": "pam",
                          "password": sim_server.root_password}, verify=sim_server.ca_file, timeout=10)
    assert first.json()["data"]["username"] == "root@pam"
    renewed = requests.post(_api(sim_server, "/access/ticket"), data={"username": "root@pam",
                            "password": first.json()["data"]["ticket"]}, verify=sim_server.ca_file, timeout=10)
    assert renewed.status_code == 200


def test_api_token_on_allowtoken_0_endpoint_is_403(proxmox):
    with pytest.raises(ResourceException) as caught:
        proxmox.access.ticket.post(username="root@pam", password="whatever")
    assert caught.value.status_code == 403
    assert caught.value.content == ("Permission check failed (URI '/access/ticket' not available with API token, "
                                    "need proper ticket.")


def test_credentials_are_0600_and_stable(sim_server):
    for name in ("credentials.json", "authkey.pem", "tls/server-key.pem"):
        assert (sim_server.sim.data_dir / name).stat().st_mode & 0o077 == 0
    assert sim_server.api_token.startswith("root@pam!phoenix=")
