"""Many GETs from one thread (``PVEClient.read_each`` over ``phoenix.pve.multiplex``): each path's
outcome is what ``client.get`` gives for it — the data, or the same one-line error after the same
retries — whatever the server does, against a real HTTPS server on 127.0.0.1 and the simulator."""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading

import pytest
from pydantic import SecretStr

from phoenix.errors import PhoenixError
from phoenix.pve.client import PVEClient
from phoenix.pve.retry import RetryPolicy
from phoenix.pve.settings import ConnectionSettings

from hostile_server import (HostileServer, Request, _head, huge_length, json_answer, raw_answer, redirect, silent,
                            trickle)

POLICY = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.01, jitter=0.0, max_seconds=5)
SECRET = "0a1b2c3d-multiplex"


@pytest.fixture
def server(tmp_path):
    with HostileServer(tmp_path / "tls") as srv:
        yield srv


def client_for(port: int, ca_file, *, timeout: float = 1.0, token: bool = True) -> PVEClient:
    auth = ({"token_user": "root@pam", "token_name": "phoenix", "token_secret": SecretStr(SECRET)} if token
            else {"username": "root@pam", "password": SecretStr("correct-horse")})
    settings = ConnectionSettings(host="127.0.0.1", port=port, ca_file=ca_file, timeout=timeout, **auth)
    return PVEClient.connect(settings, policy=POLICY)


def outcome_of_get(client: PVEClient, path: str) -> object:
    try:
        return client.get(path)
    except PhoenixError as exc:
        return f"{type(exc).__name__}: {exc}"


def outcome_of_read_each(client: PVEClient, paths: list[str], width: int = 4) -> list[object]:
    found: dict[int, object] = {}
    for index, outcome in client.read_each(paths, width):
        assert index not in found, "each path is answered once"
        found[index] = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, PhoenixError) else outcome
    assert sorted(found) == list(range(len(paths)))
    return [found[index] for index in range(len(paths))]


def untimed(outcome: object) -> object:
    return re.sub(r"attempts in \d+ s\)", "attempts in _ s)", outcome) if isinstance(outcome, str) else outcome


def chunked(conn, request: Request) -> None:
    body = json.dumps({"data": [{"vmid": i} for i in range(300)]}).encode()
    parts = [body[i:i + 500] for i in range(0, len(body), 500)]
    conn.sendall(_head(200, "OK", {"Transfer-Encoding": "chunked"})
                 + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n")


def until_close(conn, request: Request) -> None:
    """HTTP/1.0 style: no length, the body ends when the server closes the connection."""
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + b'{"data": {"old": "server"}}')
    conn.shutdown(socket.SHUT_RDWR)


def closes_without_answer(conn, request: Request) -> None:
    conn.shutdown(socket.SHUT_RDWR)


def answer_and_another(conn, request: Request) -> None:
    """Two whole answers in one write: the second is no answer to anything and must not leak into the first."""
    first = json.dumps({"data": {"version": "9.1"}}).encode()
    second = b'{"data": "not yours"}'
    conn.sendall(_head(200, "OK", {"Content-Length": str(len(first))}) + first
                 + _head(302, "Found", {"Location": "https://elsewhere.example/", "Content-Encoding": "gzip",
                                        "Content-Length": str(len(second))}) + second)


def garbage(conn, request: Request) -> None:
    conn.sendall(b"SMTP ready\r\n\r\n")


BEHAVIOURS = {
    "json": json_answer({"data": {"version": "9.1"}}),
    "listing": json_answer({"data": [{"vmid": 100}, {"vmid": 101}]}),
    "chunked": chunked,
    "until-close": until_close,
    "gzip-unasked": raw_answer(gzip.compress(b'{"data": {}}'), **{"Content-Encoding": "gzip"}),
    "redirect": redirect("https://elsewhere.example/api2/json/version"),
    "pve-error": json_answer({"data": None, "message": "VM 100 does not exist"}, 500, "VM 100 does not exist"),
    "param-error": json_answer({"data": None, "errors": {"vmid": "invalid"}}, 400, "Parameter verification failed."),
    "not-json": raw_answer(b"<html>proxy login</html>"),
    "no-data": raw_answer(b"{}"),
    "huge-length": huge_length(),
    "trickled-body": trickle(0.05),
    "trickled-headers": trickle(0.05, in_headers=True),
    "silent": silent(),
    "closes": closes_without_answer,
    "garbage": garbage,
    "answer-and-another": answer_and_another,
}


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_each_answer_is_what_get_gives(server, name):
    server.behaviours[f"/{name}"] = BEHAVIOURS[name]
    with client_for(server.port, server.ca_file) as client:
        expected = outcome_of_get(client, f"/{name}")
        assert outcome_of_read_each(client, [f"/{name}"]) == [expected]
    if isinstance(expected, str):
        assert "\n" not in expected and SECRET not in expected


def test_a_mix_of_answers_over_few_connections(server):
    """Good and bad answers interleaved: every path once, each as get gives it, the good ones kept alive."""
    names = ["json", "listing", "chunked", "pve-error", "not-json", "silent", "until-close", "closes"]
    for name in names:
        server.behaviours[f"/{name}"] = BEHAVIOURS[name]
    paths = [f"/{names[i % len(names)]}" for i in range(40)]
    with client_for(server.port, server.ca_file) as client:
        expected = {path: outcome_of_get(client, path) for path in set(paths)}
        # a failed first try is retried after the other paths were read: its wall time differs
        assert ([untimed(o) for o in outcome_of_read_each(client, paths, width=3)]
                == [untimed(expected[path]) for path in paths])


def test_same_request_bytes_as_get_and_connections_are_kept_for_later_gets(server):
    server.behaviours["/json"] = BEHAVIOURS["json"]
    with client_for(server.port, server.ca_file) as client:
        client.get("/json")
        assert outcome_of_read_each(client, ["/json"] * 30, width=4) == [{"version": "9.1"}] * 30
        opened = len(server._threads)
        for _ in range(4):
            client.get("/json")
        assert len(server._threads) == opened, "read_each's connections are reused by get"
        assert client.request_count == 35
    first, *rest = server.requests
    assert all(request.headers == first.headers and request.method == "GET" for request in rest)
    assert opened <= 4


def test_a_refused_connection_is_the_same_error_as_get_gives():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]             # bound, never listening: connections are refused
        with client_for(port, None) as client:
            expected = outcome_of_get(client, "/version")
            assert outcome_of_read_each(client, ["/version", "/nodes"]) == [
                expected, expected.replace("GET /version", "GET /nodes")]
    assert expected.startswith("PVEConnectionError: cannot reach GET /version at https://127.0.0.1:")


def test_a_ticket_session_reads_through_threads_with_the_same_outcomes(server):
    server.behaviours["/access/ticket"] = json_answer({"data": {"ticket": "PVE:t", "CSRFPreventionToken": "c"}})
    for name in ("json", "pve-error", "chunked"):
        server.behaviours[f"/{name}"] = BEHAVIOURS[name]
    with client_for(server.port, server.ca_file, token=False) as client:
        paths = ["/json", "/pve-error", "/chunked"] * 3
        expected = [outcome_of_get(client, path) for path in paths]
        assert outcome_of_read_each(client, paths) == expected


def test_configs_from_the_simulator_equal_get(client, create_vm):
    for vmid in range(300, 340):
        create_vm(client, vmid)
    paths = [f"/nodes/pve/qemu/{vmid}/pending" for vmid in range(300, 345)]     # the last five do not exist
    expected = [outcome_of_get(client, path) for path in paths]
    assert outcome_of_read_each(client, paths, width=8) == expected
    assert all(isinstance(e, list) for e in expected[:40]) and all("does not exist" in str(e) for e in expected[40:])


def test_the_consumer_may_stop_early_and_nothing_is_left_open(server):
    gate = threading.Event()

    def slow(conn, request: Request) -> None:
        gate.wait(5)
        json_answer({"data": 1})(conn, request)

    server.behaviours["/json"] = BEHAVIOURS["json"]
    server.behaviours["/slow"] = slow
    with client_for(server.port, server.ca_file, timeout=10) as client:
        reads = client.read_each(["/json", "/slow", "/slow"], 3)
        assert next(reads) == (0, {"version": "9.1"})
        reads.close()                             # the two slow reads are abandoned, their connections closed
        gate.set()
        assert client.get("/json") == {"version": "9.1"}
