"""The client's fast path: API calls over kept-alive ``http.client`` connections, for API-token sessions.

A plan reads one config per VM: 10,000 GETs for a 10,000-VM fleet; an apply writes a handful per
VM and polls.  Through proxmoxer and requests each call costs about 1.8 ms of client CPU (session
merging, hooks, adapters, response wrapping, runtime Protocol checks on every parameter dict),
through urllib3 alone about 0.85 ms; over a plain ``http.client`` connection with
:mod:`phoenix.httpheaders`' header parser about a quarter of that.  At a few hundred calls the
difference is noise; at thousands the client, not PVE, was the limit.

It sends and reads like the session path: parameters of POST and PUT form-encoded in the body, of
GET and DELETE in the query (lists as repeated keys, as requests encodes them); the caller's
deadline scope (:mod:`phoenix.pve.deadline`) covers connect, TLS handshake, headers and body; the
body is read with the size cap; redirects are not followed (``http.client`` never does); TLS is
verified against the system store or the given CA file with the host name checked; errors come out
as requests' exception types for the retry policy (a connection never made as ``NotConnected``, so a
write is retried only then, as on the session path).  Idle connections are kept (at most
``pool_size``); one the server has closed meanwhile is noticed before reuse and replaced.  Uploads,
ticket sessions and proxies stay on the session path.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlencode

import requests
from urllib3.util.wait import wait_for_read

from phoenix.httpheaders import with_fast_headers
from phoenix.pve.answer import PVEAnswerError, read_capped
from phoenix.pve.deadline import socket_identity, watch_socket
from phoenix.pve.multiplex import Answer, as_requests_error, read_many

__all__ = ["DirectCalls", "API_PREFIX"]

API_PREFIX = "/api2/json"
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]|[^\x00-\x7f]")


class _Response(http.client.HTTPResponse):
    begin = with_fast_headers(http.client.HTTPResponse.begin)


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection whose TCP socket obeys the current deadline scope from before the handshake."""

    response_class = _Response
    identity: tuple[int, int] | None = None

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self._create_connection = self._watched_connection

    def _watched_connection(self, address: tuple[str, int], timeout: Any, source_address: Any) -> socket.socket:
        sock = socket.create_connection(address, timeout, source_address)
        self.identity = socket_identity(sock)
        watch_socket(self.identity)
        return sock

    def dropped(self) -> bool:
        """True when an idle kept-alive connection is unusable: closed by the server, or data waiting
        (urllib3's own check, by poll: no limit on the descriptor's number, unlike select)."""
        if self.sock is None:
            return True
        try:
            return wait_for_read(self.sock, timeout=0.0)
        except OSError:
            return True


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """What ``requests``' ``verify`` means: the system store (True), a CA file (str), or no check (False)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    context.set_alpn_protocols(["http/1.1"])
    return context


class DirectCalls:
    """Sends token-authenticated API calls over its own kept-alive connections (same host, TLS and timeout)."""

    def __init__(self, host: str, port: int, authorization: str, verify: bool | str, timeout: float,
                 pool_size: int):
        self._host = host.strip("[]")         # http.client brackets an IPv6 address itself
        self._port = port
        self._timeout = timeout
        self._context = tls_context(verify)
        self._headers = {"Authorization": authorization, "Accept": "application/json"}
        self._form_headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        self._idle: list[_Connection] = []
        self._pool_size = max(1, pool_size)
        self._lock = threading.Lock()
        self._request_head = _request_head(self._host, port, self._headers)
        self._address: tuple[Any, ...] | None = None

    def _take(self) -> _Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return _Connection(self._host, self._port, self._timeout, self._context)
            if not conn.dropped():
                watch_socket(conn.identity)
                return conn
            conn.close()

    def _give_back(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def call(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, str, str, bytes]:
        """``(status, reason, location, body)``, the body read whole (capped).  Raises requests' exceptions."""
        url = API_PREFIX + "/" + path.strip("/")
        body: bytes | None = None
        headers = self._headers
        if params:
            encoded = urlencode(params, doseq=True)
            if method in ("POST", "PUT"):
                body, headers = encoded.encode("ascii"), self._form_headers
            elif encoded:                    # {"key": []} sends no key at all, as requests does
                url += "?" + encoded
        where = f"{method} {path}"
        conn = self._take()
        try:
            if conn.sock is None:
                _connect(conn)
            conn.request(method, url, body=body, headers=headers)
            response = conn.getresponse()
            encoding = response.getheader("content-encoding", "identity").strip().lower()
            if encoding != "identity":
                raise PVEAnswerError(f"{where}: the answer is {encoding[:40]!r}-encoded, though phoenix asked "
                                     "for no encoding")
            body = read_capped(response.read, response.getheader("content-length"), where)
        except BaseException as exc:
            conn.close()                     # never keep a half-read connection
            mapped = as_requests_error(exc)  # the connect phase's are requests' already
            if mapped is exc:
                raise
            raise mapped from None
        if response.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return response.status, response.reason or "", response.getheader("location", ""), body

    # --- for read_many (phoenix.pve.multiplex): the same connections, driven without blocking ---

    def read_many(self, paths: Sequence[str], width: int) -> Iterator[tuple[int, Answer | Exception, float]]:
        """GET ``paths`` from this thread over up to ``width`` connections; ``(index, answer or error,
        when asked)`` as each ends."""
        return read_many(self, paths, width, self._timeout)

    def request_bytes(self, path: str) -> bytes:
        """The GET of ``path`` as :meth:`get` sends it (http.client's headers, in its order)."""
        url = API_PREFIX + "/" + path.strip("/")
        if _UNSENDABLE.search(url):          # what http.client refuses (InvalidURL), refused alike
            raise requests.exceptions.ConnectionError(f"URL can't contain control characters or spaces: {url!r}")
        return b"GET " + url.encode("ascii") + self._request_head

    def take_idle(self) -> ssl.SSLSocket | None:
        """A kept-alive connection's socket, non-blocking, or None (the connection object is discarded)."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return None
            if not conn.dropped():
                sock, conn.sock = conn.sock, None
                sock.setblocking(False)
                return sock
            conn.close()

    def start_connect(self) -> socket.socket:
        """A non-blocking TCP socket whose connect has begun (name resolved once, first address)."""
        if self._address is None:
            self._address = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)[0]
        family, kind, proto, _, address = self._address
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # as http.client does
            sock.setblocking(False)
            error = sock.connect_ex(address)
            if error not in (0, errno.EINPROGRESS):
                raise ConnectionRefusedError(error, os.strerror(error))
        except BaseException:
            sock.close()
            raise
        return sock

    def wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        """TLS over a connected non-blocking socket, the handshake left to the caller (same context and name check)."""
        return self._context.wrap_socket(sock, server_hostname=self._host, do_handshake_on_connect=False)

    def give_back_socket(self, sock: ssl.SSLSocket) -> None:
        """Keep a connection read_many is done with, for the next :meth:`get`."""
        sock.settimeout(self._timeout)
        conn = _Connection(self._host, self._port, self._timeout, self._context)
        conn.sock = sock
        conn.identity = socket_identity(sock)
        self._give_back(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _request_head(host: str, port: int, headers: dict[str, str]) -> bytes:
    """What http.client sends after the request target: Host (bracketed IPv6, port unless 443),
    Accept-Encoding identity, then ``headers``."""
    shown = f"[{host}]" if ":" in host else host
    lines = [f"Host: {shown}" if port == 443 else f"Host: {shown}:{port}", "Accept-Encoding: identity"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return (" HTTP/1.1\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n").encode("latin-1")


def _connect(conn: _Connection) -> None:
    """TCP connect and TLS handshake; failures as requests' connect-phase exceptions."""
    try:
        conn.connect()
    except OSError as exc:               # refused, no route, name not resolved, TLS verification or handshake
        raise as_requests_error(exc, connecting=True) from None
