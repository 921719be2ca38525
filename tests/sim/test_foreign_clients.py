"""Clients written elsewhere run against the simulator unchanged: here curl, the way PVE's own docs use it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install curl)")


def curl(server, *args: str) -> tuple[int, str]:
    """Run curl against the server (CA verified); returns (HTTP status, body)."""
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", str(server.ca_file),
                          "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=30, check=True)
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


def test_curl_with_an_api_token(sim_server):
    status, body = curl(sim_server, "-H", f"Authorization: PVEAPIToken={sim_server.api_token}",
                        f"{sim_server.endpoint}/api2/json/version")
    assert status == 200
    assert json.loads(body)["data"]["release"] == "9.1"


def test_curl_with_a_ticket_like_pves_documentation(sim_server):
    # As in PVE's API documentation: get a ticket, then send it as a cookie, with the CSRF
    # token on writes.
    status, body = curl(sim_server, "--data-urlencode", "username=root@pam",
                        "--data-urlencode", f"password={sim_server.root_password}",
                        f"{sim_server.endpoint}/api2/json/access/ticket")
    assert status == 200
    ticket = json.loads(body)["data"]
    cookie = f"PVEAuthCookie={ticket['ticket']}"
    status, body = curl(sim_server, "-b", cookie, "-H", f"CSRFPreventionToken: {ticket['CSRFPreventionToken']}",
                        "-X", "POST", "--data", "vmid=120", "--data", "name=from-curl", "--data", "memory=512",
                        f"{sim_server.endpoint}/api2/json/nodes/pve/qemu")
    assert status == 200 and json.loads(body)["data"].startswith("UPID:pve:")
    # A write without the CSRF token is refused exactly as PVE refuses it.
    status, _ = curl(sim_server, "-b", cookie, "-X", "POST", "--data", "vmid=121",
                     f"{sim_server.endpoint}/api2/json/nodes/pve/qemu")
    assert status == 401
    status, body = curl(sim_server, "-b", cookie, f"{sim_server.endpoint}/api2/json/nodes/pve/qemu/120/config")
    assert status == 200 and json.loads(body)["data"]["name"] == "from-curl"


def test_curl_sees_pves_error_format(sim_server):
    status, body = curl(sim_server, "-H", f"Authorization: PVEAPIToken={sim_server.api_token}",
                        "-X", "POST", "--data", "vmid=50",
                        f"{sim_server.endpoint}/api2/json/nodes/pve/qemu")
    assert status == 400
    answer = json.loads(body)
    assert answer["message"] == "Parameter verification failed.\n"
    assert "invalid format" in answer["errors"]["vmid"]
