"""Hostile and broken API answers (issue 14), from a small HTTPS server of the test's own.

Each answer must end in one line naming the endpoint (and the field, or the real limit) within
the client's deadline — never a hang, an unbounded read, a traceback, or "an empty cluster".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from phoenix.errors import PhoenixError
from phoenix.pve.answer import MAX_ANSWER_BYTES
from phoenix.pve.client import PVEClient
from phoenix.pve.inventory import read_inventory
from phoenix.pve.retry import RetryPolicy
from phoenix.pve.settings import ConnectionSettings
from pydantic import SecretStr

from hostile_server import (HostileServer, endless, huge_length, json_answer, raw_answer, redirect, silent,
                            trickle)

TOKEN_SECRET = "0a1b2c3d-hostile-token"
PASSWORD = "correct-horse-hostile"
POLICY = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.01, jitter=0.0, max_seconds=5)


@pytest.fixture
def server(tmp_path):
    with HostileServer(tmp_path / "tls") as srv:
        yield srv


def settings_for(server, *, token: bool = True, timeout: float = 1.0) -> ConnectionSettings:
    auth = ({"token_user": "root@pam", "token_name": "phoenix", "token_secret": SecretStr(TOKEN_SECRET)} if token
            else {"username": "root@pam", "password": SecretStr(PASSWORD)})
    return ConnectionSettings(host="127.0.0.1", port=server.port, ca_file=server.ca_file, timeout=timeout, **auth)


def error_of(server, path: str, *, token: bool = True, method: str = "GET", timeout: float = 1.0) -> str:
    with PVEClient.connect(settings_for(server, token=token, timeout=timeout), policy=POLICY) as client:
        with pytest.raises(PhoenixError) as info:
            client.request(method, path)
    text = str(info.value)
    assert "\n" not in text and TOKEN_SECRET not in text
    return text


@pytest.mark.parametrize("token", [True, False], ids=["direct-get", "session"])
def test_slow_loris_body_hits_the_whole_answer_deadline(server, token):
    server.behaviours["/cluster/resources"] = trickle(0.05)
    if not token:
        server.behaviours["/access/ticket"] = json_answer({"data": {"ticket": "PVE:t", "CSRFPreventionToken": "c"}})
    text = error_of(server, "/cluster/resources", token=token)
    assert text.startswith(f"GET /cluster/resources at {server.endpoint}: no complete answer within 1 s")
    assert "(2 attempts in" in text


def test_slow_loris_headers_hit_the_deadline(server):
    server.behaviours["/version"] = trickle(0.05, in_headers=True)
    assert error_of(server, "/version").startswith(f"GET /version at {server.endpoint}: no complete answer within 1 s")


def test_server_that_never_answers_states_the_real_limit(server):
    server.behaviours["/nodes"] = silent()
    text = error_of(server, "/nodes")
    assert "no complete answer within 1 s (2 attempts in" in text


@pytest.mark.parametrize("token", [True, False], ids=["direct-get", "session"])
def test_endless_body_stops_at_the_size_cap(server, token):
    server.behaviours["/cluster/resources"] = endless()
    if not token:
        server.behaviours["/access/ticket"] = json_answer({"data": {"ticket": "PVE:t", "CSRFPreventionToken": "c"}})
    text = error_of(server, "/cluster/resources", token=token, timeout=60)   # time enough to read 64 MiB
    assert text == f"GET /cluster/resources: the answer is larger than the {MAX_ANSWER_BYTES >> 20} MiB phoenix reads from PVE"


def test_huge_announced_body_is_refused_before_reading(server):
    server.behaviours["/cluster/resources"] = huge_length()
    assert error_of(server, "/cluster/resources") == ("GET /cluster/resources: the answer is 400 MiB, more than "
                                                      "the 64 MiB phoenix reads from PVE")


@pytest.mark.parametrize("body, expected", [
    (b"{}", "GET /cluster/resources: the answer has no 'data' field"),
    (b'{"errors": null}', "GET /cluster/resources: the answer has no 'data' field"),
    (b"[1, 2]", "GET /cluster/resources: the answer is a JSON array, not an object with 'data'"),
    (b'{"data": [1,', "GET /cluster/resources: the answer is not JSON (Expecting value; 12 bytes)"),
    (b"<html>proxy login</html>", "GET /cluster/resources: the answer is not JSON (Expecting value; 24 bytes)"),
    (b"\xff\xfe{\x00}", "GET /cluster/resources: the answer is not JSON (not UTF-8; 5 bytes)"),
    (b'{"data": "pve"}', "GET /cluster/resources: data is a string, not an array"),
    (b'{"data": [{"type": "qemu", "vmid": "abc", "node": "pve"}]}',
     "GET /cluster/resources: data[0].vmid is 'abc', not an integer"),
    (b'{"data": [{"type": "qemu", "vmid": 100, "node": 7}]}',
     "GET /cluster/resources: data[0].node is 7, not a string"),
    (b'{"data": [null]}', "GET /cluster/resources: data[0] is a null, not an object"),
])
def test_wrong_shapes_name_the_endpoint_and_field(server, body, expected):
    server.behaviours["/cluster/resources"] = raw_answer(body)
    with PVEClient.connect(settings_for(server), policy=POLICY) as client:
        with pytest.raises(PhoenixError) as info:
            read_inventory(client)
    assert str(info.value) == expected


def test_wrong_config_shape_names_the_endpoint(server):
    server.behaviours["/cluster/resources"] = json_answer({"data": [{"type": "qemu", "vmid": 100, "node": "pve"}]})
    server.behaviours["/nodes/pve/qemu/100/pending"] = json_answer({"data": {"not": "a list"}})
    with PVEClient.connect(settings_for(server), policy=POLICY) as client:
        with pytest.raises(PhoenixError, match=r"^GET /nodes/pve/qemu/100/pending: data is a object, not an array$"):
            read_inventory(client)


@pytest.mark.parametrize("data, field", [
    (None, "data is a null, not an object"),
    ({"ticket": None, "CSRFPreventionToken": "c"}, "data.ticket is null or missing, not a string"),
    ({"ticket": "PVE:t"}, "data.CSRFPreventionToken is null or missing, not a string"),
    ({"ticket": 5, "CSRFPreventionToken": "c"}, "data.ticket is 5, not a string"),
])
def test_malformed_ticket_answer_is_an_error_naming_the_field(server, data, field):
    server.behaviours["/access/ticket"] = json_answer({"data": data})
    with pytest.raises(PhoenixError) as info:
        PVEClient.connect(settings_for(server, token=False), policy=POLICY)
    assert str(info.value) == f"POST /access/ticket: {field}"
    assert PASSWORD not in str(info.value)


def test_ticket_login_redirect_is_not_followed_and_the_password_stays_home(server, tmp_path):
    with HostileServer(tmp_path / "tls") as elsewhere:
        elsewhere.behaviours["/access/ticket"] = json_answer({"data": {"ticket": "x", "CSRFPreventionToken": "y"}})
        server.behaviours["/access/ticket"] = redirect(f"{elsewhere.endpoint}/api2/json/access/ticket")
        with pytest.raises(PhoenixError) as info:
            PVEClient.connect(settings_for(server, token=False), policy=POLICY)
        assert elsewhere.requests == []
    assert str(info.value).startswith("POST /access/ticket: answered with a redirect (HTTP 307 to https://127.0.0.1:")
    assert "phoenix does not follow it" in str(info.value)


@pytest.mark.parametrize("token", [True, False], ids=["direct-get", "session"])
def test_api_redirects_are_not_followed(server, tmp_path, token):
    server.behaviours["/access/ticket"] = json_answer({"data": {"ticket": "PVE:t", "CSRFPreventionToken": "c"}})
    with HostileServer(tmp_path / "tls") as elsewhere:
        elsewhere.behaviours["/nodes"] = json_answer({"data": []})
        server.behaviours["/nodes"] = redirect(f"{elsewhere.endpoint}/api2/json/nodes", 302)
        text = error_of(server, "/nodes", token=token)
        assert elsewhere.requests == []
    assert "GET /nodes: answered with a redirect (HTTP 302" in text


def test_escapes_and_markup_in_pve_error_text_are_printed_as_text(server):
    server.behaviours["/nodes"] = raw_answer(json.dumps({"data": None, "errors": {"vmid": "\x1b]0;owned\x07bad"}}).encode(),
                                              500, "boom \x1b[2J [bold red]markup[/bold red]")
    text = error_of(server, "/nodes")
    assert "\x1b" not in text and "\x07" not in text
    assert "boom \\x1b[2J [bold red]markup[/bold red]" in text and "\\x1b]0;owned\\x07bad" in text


def test_plan_against_a_hostile_pve_is_one_line_never_an_empty_cluster(server, tmp_path):
    """End to end through the CLI: an answer without 'data' and one with escapes in PVE's words."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PROXMOX_VE_ENDPOINT": server.endpoint, "PROXMOX_VE_CA_FILE": str(server.ca_file),
           "PROXMOX_VE_API_TOKEN": f"root@pam!phoenix={TOKEN_SECRET}"}
    command = [sys.executable, "-c", "from phoenix.cli import main; main()", "--config",
               os.path.join(repo, "desired", "phoenix_vm_configs.json"), "--state", str(tmp_path / "s.json"), "plan"]
    server.behaviours["/cluster/resources"] = raw_answer(b'{"errors": {}}')
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert done.stderr == "error: GET /cluster/resources: the answer has no 'data' field\n"
    assert "to add" not in done.stdout

    server.behaviours["/cluster/resources"] = raw_answer(b"{}", 500, "cfs \x1b]2;pwned\x07 [blink]down[/blink]")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "\x1b" not in done.stderr and "cfs \\x1b]2;pwned\\x07 [blink]down[/blink] (HTTP 500)" in done.stderr


def test_wrong_host_name_names_the_host_not_the_ca_file(tmp_path):
    with HostileServer(tmp_path / "tls", wrong_name=True) as wrong:
        wrong.behaviours["/nodes"] = json_answer({"data": []})
        text = error_of(wrong, "/nodes")
    assert "not valid for 127.0.0.1" in text and "PROXMOX_VE_ENDPOINT" in text
    assert "PROXMOX_VE_CA_FILE" not in text


AGENT = "/nodes/pve/qemu/100/agent"


def _guest_facts(server):
    from phoenix.pve.guest import read_guest
    with PVEClient.connect(settings_for(server), policy=POLICY) as client:
        return read_guest(client, "pve", 100, mac="BC:24:11:00:00:01")


def test_guest_agent_answers_of_the_wrong_shape_are_dropped_or_named(server):
    """A guest is untrusted: garbage addresses and host names are dropped, wrong envelopes named."""
    nic = {"name": "eth0", "hardware-address": "bc:24:11:00:00:01", "ip-addresses": [
        {"ip-address-type": "ipv4", "ip-address": "10.0.0.5", "prefix": 24},
        {"ip-address-type": "ipv4", "ip-address": "\x1b[31mnot-an-ip", "prefix": 24},
        {"ip-address-type": "ipv4", "ip-address": "10.0.0.6", "prefix": "x" * 100},
        "not an object", None]}
    server.behaviours[f"{AGENT}/network-get-interfaces"] = json_answer({"data": {"result": [nic, 7, None]}})
    server.behaviours[f"{AGENT}/get-host-name"] = json_answer({"data": {"result": {"host-name": ["a", "list"]}}})
    server.behaviours[f"{AGENT}/file-read"] = json_answer({"data": {"content": "", "truncated": 0}})
    facts = _guest_facts(server)
    assert facts.ipv4 == ("10.0.0.5/24",) and facts.hostname is None

    server.behaviours[f"{AGENT}/file-read"] = json_answer({"data": {"content": {"nested": 1}}})
    with pytest.raises(PhoenixError, match=r"^GET /nodes/pve/qemu/100/agent/file-read: data.content is "):
        _guest_facts(server)
    server.behaviours[f"{AGENT}/get-host-name"] = json_answer({"data": ["not", "an", "object"]})
    with pytest.raises(PhoenixError, match=r"^GET /nodes/pve/qemu/100/agent/get-host-name: data is a array, not an object$"):
        _guest_facts(server)
