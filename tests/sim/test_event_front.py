"""The event front answers exactly what a thread per connection answers.

Two simulators on copies of one data dir — one with the event front, one with the reference front
(``event_front=False``, ThreadingHTTPServer) — get the same raw byte streams over TLS; what comes
back must be the same bytes (the ``Date`` header aside).  The streams cover what the front answers
in its own thread (reads, pipelined, HTTP/1.0, errors, 401s), what it hands over (writes, bodies,
HTTP/0.9, malformed heads, /_sim) and a connection that switches in the middle.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import ssl
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenix.sim import request as sim_request_module
from phoenix.sim.event_front import HAND_OVER, READS, WAIT, classify
from phoenix.sim.model import Cluster
from phoenix.sim.model.vm import VM
from phoenix.sim.persist import ModelStore
from tests.conftest import _fresh_data_dir, start_sim_server

CONF = {"name": "web-1", "memory": "2048", "cores": "2", "scsi0": "local:100/vm-100-disk-0.qcow2,size=8G",
        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "ostype": "l26", "description": "a: b\nc",
        "ide2": "local:100/vm-100-cloudinit.qcow2,media=cdrom", "cipassword": "$5$x$y", "agent": "1"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory, _sim_seed_dir):
    """(event front, reference front) on identical data: two VMs, one with pending changes."""
    seed = _fresh_data_dir(_sim_seed_dir, tmp_path_factory.mktemp("front-seed") / "sim")
    cluster = Cluster.create(["pve"], seed)
    cluster.vms[100] = VM(vmid=100, node="pve", conf=dict(CONF))
    cluster.vms[101] = VM(vmid=101, node="pve", conf={**CONF, "name": "web-2"},
                          pending={"memory": "4096", "delete": "agent,!ostype"})
    ModelStore(seed).save(cluster)
    started = []
    for event_front in (True, False):
        copy = tmp_path_factory.mktemp("front") / "sim"
        shutil.copytree(seed, copy)
        started.append(start_sim_server(copy, event_front=event_front))
    yield started
    for server in started:
        server.stop()


def _exchange(server, data: bytes, timeout: float = 20) -> bytes:
    """Send ``data`` on one TLS connection and read until the server closes it.

    Streams that leave the connection open end with a ``Connection: close`` request (a TCP
    half-close under TLS gets an alert instead of answers, from either front)."""
    context = ssl.create_default_context(cafile=server.ca_file)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    chunks = []
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(data)
        try:
            while chunk := tls.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(b"(still open)")
    return re.sub(rb"Date: [^\r\n]*", b"Date: -", b"".join(chunks))


CLOSE = b"GET /api2/json/version HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n"


def _get(path: str, token: str | None, version: str = "HTTP/1.1", extra: str = "") -> bytes:
    auth = f"Authorization: PVEAPIToken={token}\r\n" if token else ""
    return f"GET /api2/json{path} {version}\r\nHost: sim\r\n{auth}{extra}\r\n".encode()


def _cases(token: str) -> dict[str, bytes]:
    put = (f"PUT /api2/json/nodes/pve/qemu/100/config HTTP/1.1\r\nHost: sim\r\nAuthorization: PVEAPIToken={token}\r\n"
           "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\n\r\ndescription=hi").encode()
    return {     # each stream ends with a request after which the server closes the connection
        "pending": _get("/nodes/pve/qemu/100/pending", token) + CLOSE,
        "pending with changes": _get("/nodes/pve/qemu/101/pending", token) + CLOSE,
        "pipelined reads": b"".join(_get(p, token) for p in ("/nodes/pve/qemu/100/config", "/version", "/nodes",
                                                            "/cluster/resources", "/nodes/pve/qemu",
                                                            "/nodes/pve/qemu/101/status/current",
                                                            "/nodes/pve/qemu/101/config?current=1&_dc=5")) + CLOSE,
        "missing vm": _get("/nodes/pve/qemu/999/pending", token) + CLOSE,
        "bad vmid": _get("/nodes/pve/qemu/abc/config", token) + CLOSE,
        "unknown node": _get("/nodes/nope/qemu/100/config", token) + CLOSE,
        "bad upid": _get("/nodes/pve/tasks/UPID:x/status", token) + CLOSE,
        "no auth": _get("/nodes/pve/qemu/100/pending", None) + _get("/version", token) + CLOSE,
        "bad token": _get("/version", "root@pam!x=00000000-0000-0000-0000-000000000000") + CLOSE,
        "http/1.0": _get("/version", token, "HTTP/1.0"),
        "http/1.0 keep-alive": _get("/version", token, "HTTP/1.0", "Connection: keep-alive\r\n") + CLOSE,
        "connection close": _get("/version", token, extra="Connection: close\r\n"),
        "http/0.9": b"GET /api2/json/version\r\n\r\n",          # (the stdlib reads headers after it too)
        "bare newlines": _get("/version", token).replace(b"\r\n", b"\n") + CLOSE,
        "garbage": b"GARBAGE\r\n\r\n",
        "http/2": b"GET /api2/json/version HTTP/2.0\r\n\r\n",
        "header without colon": _get("/version", token, extra="nonsense\r\n") + CLOSE,
        "get with empty body": _get("/version", token, extra="Content-Length: 0\r\n") + CLOSE,
        "get with body": _get("/version", token, extra="Content-Length: 3\r\n") + b"abc" + CLOSE,
        "not the api": b"GET /elsewhere HTTP/1.1\r\nHost: sim\r\n\r\n" + CLOSE,
        "a request line in the head (no close)": _get("/nodes/pve/qemu/100/config", token)[:-2] + CLOSE,
        "connection close last": _get("/nodes/pve/qemu/100/config", token)[:-2] + b"Connection: close\r\n\r\n",
        "read, write, read": _get("/nodes/pve/qemu/100/pending", token) + put
        + _get("/nodes/pve/qemu/100/pending", token) + CLOSE,
        "sim stats": b"GET /_sim/stats HTTP/1.1\r\nHost: sim\r\n\r\n" + CLOSE,
    }


def test_both_fronts_answer_the_same_bytes(servers):
    front, reference = servers
    for name, data in _cases(front.api_token).items():
        timeout = 1 if "(no close)" in name else 20
        assert _exchange(front, data, timeout) == _exchange(reference, data, timeout), name


def test_both_fronts_answer_the_same_bytes_in_pieces(servers):
    """The same stream arriving a few bytes at a time: the front waits for whole heads."""
    data = b"".join(_get(p, servers[0].api_token) for p in ("/nodes/pve/qemu/100/pending", "/version")) + CLOSE
    answers = []
    for server in servers:
        context = ssl.create_default_context(cafile=server.ca_file)
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            for start in range(0, len(data), 7):
                tls.sendall(data[start:start + 7])
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        answers.append(re.sub(rb"Date: [^\r\n]*", b"Date: -", answer))
    assert answers[0] == answers[1]
    assert answers[0].count(b"HTTP/1.1 200 OK") == 2 and answers[0].count(b"HTTP/1.1 401 ") == 1


# --- classify: what the front answers itself is one whole request the stdlib parses the same way --------

_lines = st.sampled_from([
    "GET /api2/json/version HTTP/1.1\r\n", "GET /api2/json/nodes/pve/qemu/100/pending HTTP/1.0\r\n",
    "GET /api2/json/nodes/pve/qemu/100/config?current=1 HTTP/1.1\r\n", "POST /api2/json/version HTTP/1.1\r\n",
    "GET /api2/json/nodes/pve/qemu/100/agent/ping HTTP/1.1\r\n", "GET /api2/json/version\r\n",
    "GET /_sim/stats HTTP/1.1\r\n", "GET /api2/json/cluster/resources HTTP/1.1\n", "GET  /api2/json/version HTTP/1.1\r\n",
])
_headers = st.lists(st.sampled_from([
    "Host: sim\r\n", "Authorization: PVEAPIToken=a!b=c\r\n", "Connection: close\r\n", "Content-Length: 0\r\n",
    "content-length: 5\r\n", "Transfer-Encoding: chunked\r\n", "Expect: 100-continue\r\n", "X: y\n", "nocolon\r\n",
    " folded\r\n", "Accept: */*\r\n",
]), max_size=6)


def _is_read(rel: str) -> bool:
    return sim_request_module.is_read(rel)


@given(_lines, _headers, st.sampled_from(["\r\n", "\n", ""]), st.binary(max_size=20))
@settings(max_examples=300)
def test_classify_takes_exactly_what_the_stdlib_reads_as_one_request(line, headers, end, rest):
    data = (line + "".join(headers) + end).encode() + rest
    length = classify(data, _is_read)
    if length > 0:
        handler = _Parsed(data)
        assert handler.parse_request()
        assert handler.command == "GET" and handler.rfile.tell() == length
        assert handler.headers.get("Content-Length") is None and handler.headers.get("Transfer-Encoding") is None
        assert _is_read(handler.path.split("?")[0][len("/api2/json"):])
        for cut in range(length):                        # a part of it is never taken for a request
            assert classify(data[:cut], _is_read) == WAIT
    else:
        assert length in (WAIT, HAND_OVER)


def test_the_reads_are_get_templates_of_the_router():
    templates = {template for _regex, template, methods in sim_request_module._ROUTER._routes if "GET" in methods}
    assert READS <= templates


class _Parsed(sim_request_module.RequestHandler):
    def __init__(self, data: bytes):
        self.rfile = io.BytesIO(data)
        self.wfile = io.BytesIO()
        self.client_address = ("127.0.0.1", 0)
        self.close_connection = True

    def parse_request(self) -> bool:
        self.raw_requestline = self.rfile.readline(65537)
        return super().parse_request()


def test_a_handed_over_connection_keeps_the_bytes_read_before(servers, tmp_path: Path):
    """A write after reads on one keep-alive connection: the thread that takes over reads the rest."""
    front, _reference = servers
    token = front.api_token
    upload_less = _get("/version", token) + (
        f"POST /api2/json/nodes/pve/qemu/101/config HTTP/1.1\r\nHost: sim\r\nAuthorization: PVEAPIToken={token}\r\n"
        "Content-Length: 0\r\n\r\n").encode() + _get("/version", token) + CLOSE
    answer = _exchange(front, upload_less)
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and b"no options specified" in answer


def test_a_401_delay_holds_only_its_own_connection(_sim_seed_dir, tmp_path):
    """PVE delays a failed login's answer; the front delays that answer, not the loop: a read on
    another connection sent after it is answered first."""
    server = start_sim_server(_fresh_data_dir(_sim_seed_dir, tmp_path / "sim"), auth_fail_delay=3.0)
    try:
        context = ssl.create_default_context(cafile=server.ca_file)
        connections = [context.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=20),
                                           server_hostname="127.0.0.1") for _ in range(2)]
        refused, answered = connections
        refused.sendall(_get("/version", None))
        answered.sendall(_get("/version", server.api_token))
        first = answered.recv(65536)
        assert refused.pending() == 0
        refused.settimeout(0.0)
        with pytest.raises(ssl.SSLWantReadError):
            refused.recv(65536)                   # the 401 is still being delayed
        refused.settimeout(20)
        assert first.startswith(b"HTTP/1.1 200 OK")
        assert refused.recv(65536).startswith(b"HTTP/1.1 401 No ticket")
        for connection in connections:
            connection.close()
    finally:
        server.stop()
