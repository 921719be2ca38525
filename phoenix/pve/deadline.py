"""A deadline for a whole API answer — connect, headers and body — not for each socket read.

A socket timeout only bounds one ``recv``: a server that sends one byte every two seconds (or
dribbles its TLS handshake) keeps every read short and the answer endless.  Here each request
runs inside :func:`whole_answer_within`; the connection classes below register their socket
with one watchdog thread, which shuts the socket down when the deadline passes, so whatever is
blocked on it returns at once.  The caller then sees :attr:`Scope.expired` and reports the real
limit.  Registering costs a dict insert (no thread or timer per request), so the plan's fast path
keeps its speed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection

__all__ = ["AnswerDeadline", "Scope", "whole_answer_within", "current_scope", "socket_identity", "watch_socket", "DeadlineHTTPSConnectionPool", "DeadlineAdapter"]


class _Armed:
    """One socket watched for one scope; ``fd`` + inode identify it even if the fd is reused."""

    __slots__ = ("fd", "inode", "scope")

    def __init__(self, fd: int, inode: int, scope: "Scope"):
        self.fd, self.inode, self.scope = fd, inode, scope

    def fire(self) -> None:
        self.scope.expired = True
        try:
            # A dup of the fd, checked to be the same socket, so a closed and reused fd is never touched.
            dup = socket.fromfd(self.fd, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            return
        try:
            if os.fstat(dup.fileno()).st_ino == self.inode:
                dup.shutdown(socket.SHUT_RDWR)   # affects the socket, not just this descriptor
        except OSError:
            pass
        finally:
            dup.close()


class _Watchdog:
    """One daemon thread that looks at the armed sockets every ``TICK`` seconds while any is armed.

    Arming and disarming are a dict insert and pop under one lock (a request must stay cheap: a
    plan sends a thousand); whichever of the watchdog and the request's end pops an entry first
    decides whether it fires.  Deadlines are therefore kept to within ``TICK``.
    """

    TICK = 0.1

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: dict[int, _Armed] = {}
        self._thread: threading.Thread | None = None

    def arm(self, entry: _Armed) -> None:
        with self._cond:
            self._active[id(entry)] = entry
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="phoenix-deadline", daemon=True)
                self._thread.start()
            if len(self._active) == 1:
                self._cond.notify()

    def disarm(self, entry: _Armed) -> None:
        with self._cond:
            self._active.pop(id(entry), None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._active:
                    self._cond.wait()
                now = time.monotonic()
                due = [key for key, entry in self._active.items() if entry.scope.deadline <= now]
                expired = [self._active.pop(key) for key in due]
            for entry in expired:
                entry.fire()
            time.sleep(self.TICK)


_WATCHDOG = _Watchdog()


class AnswerDeadline(requests.exceptions.ReadTimeout):
    """The whole answer did not arrive within the deadline (the connection was cut off)."""

_local = threading.local()


class Scope:
    """The deadline of one request; ``expired`` turns true when the watchdog cut it off.

    Used as a context manager (:func:`whole_answer_within`): while entered it is the thread's
    current scope, which the connection classes below consult.
    """

    __slots__ = ("seconds", "deadline", "expired", "_armed", "_outer")

    def __init__(self, seconds: float | None):
        self.seconds = seconds                 # None: no deadline (an upload, bounded per read)
        self.deadline = time.monotonic() + seconds if seconds is not None else float("inf")
        self.expired = False
        self._armed: dict[int, _Armed] = {}
        self._outer: Scope | None = None

    def watch(self, fd: int, inode: int) -> None:
        """Cut the socket ``fd`` (with ``inode``) off at the deadline (once per socket and scope)."""
        if fd < 0 or fd in self._armed or self.seconds is None:
            return
        entry = _Armed(fd, inode, self)
        self._armed[fd] = entry
        _WATCHDOG.arm(entry)

    def __enter__(self) -> "Scope":
        self._outer = getattr(_local, "scope", None)
        _local.scope = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.scope = self._outer
        for entry in self._armed.values():
            _WATCHDOG.disarm(entry)
        self._armed.clear()


def current_scope() -> Scope | None:
    return getattr(_local, "scope", None)


def whole_answer_within(seconds: float | None) -> Scope:
    """``with whole_answer_within(s) as scope:`` — one request (send + whole answer) within ``s`` seconds."""
    return Scope(seconds)


def socket_identity(sock: Any) -> tuple[int, int] | None:
    """(fd, inode) of a socket: the inode tells a reused fd from the socket that was registered."""
    try:
        fd = sock.fileno()
        return fd, os.fstat(fd).st_ino
    except (OSError, ValueError, AttributeError):
        return None


def watch_socket(identity: tuple[int, int] | None) -> None:
    """Cut the socket ``identity`` off at the current scope's deadline (no scope, or no socket: nothing)."""
    scope = current_scope()
    if scope is not None and identity is not None:
        scope.watch(*identity)


class _DeadlineHTTPSConnection(HTTPSConnection):
    """Registers the TCP socket before the TLS handshake, so a dribbled handshake is cut off too;
    remembers its identity, so a kept-alive connection is registered without a system call."""

    phoenix_identity: tuple[int, int] | None = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self.phoenix_identity = socket_identity(sock)
        watch_socket(self.phoenix_identity)
        return sock


class DeadlineHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    """An HTTPS pool whose every request (new or kept-alive connection) obeys the current scope."""

    ConnectionCls = _DeadlineHTTPSConnection

    def _validate_conn(self, conn: Any) -> None:
        super()._validate_conn(conn)
        if current_scope() is not None and conn.sock is not None:
            watch_socket(getattr(conn, "phoenix_identity", None) or socket_identity(conn.sock))


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter with :class:`DeadlineHTTPSConnectionPool` for https (the session path)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {**self.poolmanager.pool_classes_by_scheme,
                                                   "https": DeadlineHTTPSConnectionPool}
