"""The GET fast path (``phoenix.pve.direct``): kept-alive connections, bounded, replaced when the server
closed them, answers read as the session path reads them — against a real HTTPS server on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import SecretStr

from phoenix.errors import PhoenixError
from phoenix.pve.client import PVEClient
from phoenix.pve.direct import DirectCalls
from phoenix.pve.retry import RetryPolicy, never_connected
from phoenix.pve.settings import ConnectionSettings

from hostile_server import HostileServer, Request, _head, json_answer, raw_answer

ONE_TRY = RetryPolicy(attempts=1)
TOKEN = "PVEAPIToken=root@pam!phoenix=0a1b2c3d-direct"


@pytest.fixture
def server(tmp_path):
    with HostileServer(tmp_path / "tls") as srv:
        yield srv


def settings_for(server, port: int | None = None) -> ConnectionSettings:
    return ConnectionSettings(host="127.0.0.1", port=port or server.port, ca_file=server.ca_file, timeout=5,
                              token_user="root@pam", token_name="phoenix", token_secret=SecretStr("0a1b2c3d-direct"))


def client_for(server, pool_size: int = 16) -> PVEClient:
    return PVEClient.connect(settings_for(server), policy=ONE_TRY, pool_size=pool_size)


def connections(server) -> int:
    return len(server._threads)            # the server starts one thread per accepted connection


def test_sequential_gets_share_one_connection_and_send_only_the_token_header(server):
    server.behaviours["/version"] = json_answer({"data": {"version": "9.1"}})
    with client_for(server) as client:
        for _ in range(5):
            assert client.get_dict("/version") == {"version": "9.1"}
    assert connections(server) == 1
    headers = server.requests[0].headers
    assert headers["authorization"].startswith("PVEAPIToken=root@pam!phoenix=")
    assert headers["accept-encoding"] == "identity" and headers["host"] == f"127.0.0.1:{server.port}"


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_retry(server):
    closed = threading.Event()

    def answer_then_close(conn, request: Request) -> None:
        json_answer({"data": {"version": "9.1"}})(conn, request)
        conn.shutdown(socket.SHUT_RDWR)          # like pveproxy ending an idle keep-alive connection
        closed.set()

    server.behaviours["/version"] = answer_then_close
    with client_for(server) as client:          # one try: a stale connection would fail the second GET
        assert client.get("/version") == {"version": "9.1"}
        assert closed.wait(5)
        time.sleep(0.05)
        assert client.get("/version") == {"version": "9.1"}
        assert client.request_count == 2
    assert connections(server) == 2


def test_idle_connections_are_kept_up_to_the_pool_size(server):
    def slow(conn, request: Request) -> None:
        time.sleep(0.3)                           # the 8 requests overlap: 8 connections
        json_answer({"data": []})(conn, request)

    server.behaviours["/cluster/resources"] = slow
    with client_for(server, pool_size=2) as client, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: client.get_list("/cluster/resources"), range(8)))
        assert connections(server) == 8
        list(pool.map(lambda _: client.get_list("/cluster/resources"), range(8)))
        assert connections(server) == 8 + 6     # 2 kept, 6 new


def test_a_chunked_answer_is_read_whole(server):
    body = json.dumps({"data": [{"vmid": i} for i in range(500)]}).encode()

    def chunked(conn, request: Request) -> None:
        parts = [body[i:i + 700] for i in range(0, len(body), 700)]
        conn.sendall(_head(200, "OK", {"Transfer-Encoding": "chunked"})
                     + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n")

    server.behaviours["/cluster/resources"] = chunked
    with client_for(server) as client:
        assert [e["vmid"] for e in client.get_list("/cluster/resources")] == list(range(500))
        assert [e["vmid"] for e in client.get_list("/cluster/resources")] == list(range(500))
    assert connections(server) == 1


def test_an_answer_in_an_encoding_phoenix_did_not_ask_for_is_named(server):
    server.behaviours["/version"] = raw_answer(gzip.compress(b'{"data": {}}'), **{"Content-Encoding": "gzip"})
    with client_for(server) as client, pytest.raises(PhoenixError) as info:
        client.get("/version")
    assert str(info.value) == "GET /version: the answer is 'gzip'-encoded, though phoenix asked for no encoding"


def test_a_refused_connection_is_a_connection_error_naming_the_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]             # bound, never listening: connections are refused
        direct = DirectCalls("127.0.0.1", port, TOKEN, False, 2.0, 4)
        with pytest.raises(requests.exceptions.ConnectionError) as info:
            direct.call("GET", "/version", {})
    assert never_connected(info.value)       # nothing was sent: even a write may be tried again


def test_a_write_is_retried_only_when_it_never_reached_the_server(server):
    """Refused: tried again per policy, as on the session path.  Sent and then the connection
    dropped: tried once (PVE may have done it; phoenix settles such a write by reading back)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with PVEClient.connect(settings_for(server, port), policy=RetryPolicy(attempts=3).fast()) as client:
            with pytest.raises(PhoenixError, match=r"cannot reach POST /nodes/pve/qemu/100/status/start .*\(3 attempts"):
                client.post("/nodes/pve/qemu/100/status/start")

    def drop(conn, request: Request) -> None:
        conn.shutdown(socket.SHUT_RDWR)

    server.behaviours["/nodes/pve/qemu/100/status/start"] = drop
    with PVEClient.connect(settings_for(server), policy=RetryPolicy(attempts=3).fast()) as client:
        with pytest.raises(PhoenixError, match="cannot reach POST /nodes/pve/qemu/100/status/start"):
            client.post("/nodes/pve/qemu/100/status/start")
    assert len(server.requests) == 1


_VALUE = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12), st.integers(-10**6, 10**9),
                   st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=6), max_size=3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["POST", "PUT", "DELETE", "GET"]),
       params=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), _VALUE, max_size=5))
def test_a_call_carries_its_parameters_as_requests_would(server, method, params):
    """Body (POST, PUT: form-encoded, with its Content-Type) or query (GET, DELETE), byte for byte
    what requests prepares for proxmoxer's session — lists as repeated keys, text as UTF-8."""
    server.behaviours["/nodes/pve/qemu/100/config"] = json_answer({"data": None})
    server.requests.clear()
    with client_for(server) as client:
        client.request(method, "/nodes/pve/qemu/100/config", **params)
    (sent,) = server.requests
    url = "https://127.0.0.1/api2/json/nodes/pve/qemu/100/config"
    payload = {"data": params} if method in ("POST", "PUT") else {"params": params}
    expected = requests.Request(method, url, **payload).prepare()
    assert sent.method == method
    assert sent.path == expected.path_url
    assert sent.body == (expected.body.encode() if isinstance(expected.body, str) else expected.body or b"")
    assert sent.headers.get("content-type") == expected.headers.get("Content-Type")
