"""A write whose answer is lost is never sent again by the retry policy (real TLS sockets on 127.0.0.1).

The server here reads one whole HTTP request and then drops the connection without answering — what
a PVE node that died after acting, or a cut network, looks like to phoenix.  A GET is retried; a
POST (a create or clone may already have happened) is not: it surfaces as a connection error that
the caller settles by reading back. 
(That a connection never established is retried for writes too is in test_pve_retry.)
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from phoenix.pve.client import PVEClient, PVEConnectionError
from phoenix.pve.retry import RetryPolicy
from phoenix.pve.settings import ConnectionSettings


class DroppingServer:
    """TLS on 127.0.0.1: counts requests, reads each fully, closes without a response."""

    def __init__(self, tls_dir: Path):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(tls_dir / "server.pem", tls_dir / "server-key.pem")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(5)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(body) < length:
                        body += conn.recv(4096)
                    self.requests.append(head.split(b"\r\n")[0].decode())
            except (OSError, ssl.SSLError, ValueError):
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def dropping(sim_server):
    server = DroppingServer(Path(sim_server.ca_file).parent)
    yield server
    server.close()


def _client(port: int, ca_file) -> PVEClient:
    settings = ConnectionSettings.from_env({
        "PROXMOX_VE_ENDPOINT": f"https://127.0.0.1:{port}",
        "PROXMOX_VE_API_TOKEN": "root@pam!phoenix=00000000-0000-0000-0000-000000000000",
        "PROXMOX_VE_CA_FILE": str(ca_file)})
    return PVEClient.connect(settings, policy=RetryPolicy(attempts=3).fast())


def test_a_create_whose_answer_is_lost_is_sent_exactly_once(dropping, sim_server):
    with _client(dropping.port, sim_server.ca_file) as client:
        with pytest.raises(PVEConnectionError):
            client.post("/nodes/pve/qemu", vmid=8000, name="t")
    assert dropping.requests == ["POST /api2/json/nodes/pve/qemu HTTP/1.1"]


def test_a_read_whose_answer_is_lost_is_retried(dropping, sim_server):
    with _client(dropping.port, sim_server.ca_file) as client:
        with pytest.raises(PVEConnectionError):
            client.get("/nodes/pve/qemu/8000/config")
    assert len(dropping.requests) == 3
