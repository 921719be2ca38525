"""A small HTTPS server of the tests' own on 127.0.0.1 that answers like a hostile or broken PVE.

Each path gets a behaviour — a function ``(conn, request) -> None`` writing whatever it likes to
the TLS socket: a slow trickle, an endless body, a huge Content-Length, wrong JSON, a redirect.
Handler threads stop when the client goes away or the server stops, so nothing outlives a test.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from phoenix.sim.certs import ensure_tls


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Behaviour = Callable[[ssl.SSLSocket, Request], None]


@dataclass
class HostileServer:
    tls_dir: Path
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    wrong_name: bool = False            # serve a certificate (from the same CA) for another host name

    def __post_init__(self) -> None:
        files = ensure_tls(self.tls_dir)
        self.ca_file = files.ca_file
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if self.wrong_name:
            cert, key = _cert_for_another_name(files.ca_file.parent)
            self._context.load_cert_chain(cert, key)
        else:
            self._context.load_cert_chain(files.cert_file, files.key_file)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while not self.stopped.is_set():
            try:
                raw, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            with self._context.wrap_socket(raw, server_side=True) as conn:
                while not self.stopped.is_set():
                    request = _read_request(conn)
                    if request is None:
                        return
                    self.requests.append(request)
                    behaviour = self.behaviours.get(request.path.split("?")[0].removeprefix("/api2/json"))
                    (behaviour or json_answer({"errors": {"path": "unknown"}}, 501))(conn, request)
        except (OSError, ssl.SSLError, ValueError):
            return

    def stop(self) -> None:
        self.stopped.set()
        self._listener.close()
        for thread in [self._accept, *self._threads]:
            thread.join(timeout=10)

    def __enter__(self) -> "HostileServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cert_for_another_name(tls_dir: Path) -> tuple[Path, Path]:
    """A server certificate signed by the test CA, valid only for ``not-this-host.example``."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key = serialization.load_pem_private_key((tls_dir / "ca-key.pem").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((tls_dir / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-this-host.example")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("not-this-host.example")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tls_dir / "wrong-name.pem", tls_dir / "wrong-name-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _read_request(conn: ssl.SSLSocket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return Request(method, path, headers, rest[:length])


def _head(status: int, reason: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw_answer(body: bytes, status: int = 200, reason: str = "OK", **headers: str) -> Behaviour:
    def behave(conn: ssl.SSLSocket, request: Request) -> None:
        conn.sendall(_head(status, reason, {"Content-Type": "application/json;charset=UTF-8",
                                            "Content-Length": str(len(body)), **headers}) + body)
    return behave


def json_answer(document: object, status: int = 200, reason: str = "OK") -> Behaviour:
    return raw_answer(json.dumps(document).encode(), status, reason)


def trickle(every: float = 0.2, *, in_headers: bool = False) -> Behaviour:
    """One byte at a time, forever: each read is quick, the answer never completes (slow-loris)."""
    def behave(conn: ssl.SSLSocket, request: Request) -> None:
        if in_headers:
            stream = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 10_000_000
        else:
            conn.sendall(_head(200, "OK", {"Content-Length": "1000000"}))
            stream = b'{"data": [' + b" " * 999_990
        for byte in stream:
            conn.sendall(bytes([byte]))
            time.sleep(every)
    return behave


def endless(chunk: int = 1 << 20) -> Behaviour:
    """A chunked body that never ends."""
    def behave(conn: ssl.SSLSocket, request: Request) -> None:
        conn.sendall(_head(200, "OK", {"Transfer-Encoding": "chunked"}) + b"%x\r\n{\"data\": [\r\n" % 10)
        block = b"%x\r\n" % chunk + b"1," * (chunk // 2) + b"\r\n"
        while True:
            conn.sendall(block)
    return behave


def huge_length(size: int = 400 * 1024 * 1024) -> Behaviour:
    """Announces a 400 MB body (and would send it)."""
    def behave(conn: ssl.SSLSocket, request: Request) -> None:
        conn.sendall(_head(200, "OK", {"Content-Length": str(size)}))
        block = b" " * (1 << 20)
        for _ in range(size // len(block)):
            conn.sendall(block)
    return behave


def silent() -> Behaviour:
    """Reads the request and never answers."""
    def behave(conn: ssl.SSLSocket, request: Request) -> None:
        while conn.recv(1):
            pass
    return behave


def redirect(location: str, status: int = 307) -> Behaviour:
    return raw_answer(b"", status, "Moved", Location=location)
