"""JSON-over-unix-socket clients for a QEMU process: QMP (the monitor) and QGA (the guest agent).

Both speak one JSON object per line.  QGA has no greeting and may hold stale answers from an
earlier, timed-out caller (the virtio-serial port buffers them), so every call starts with
``guest-sync`` and a fresh id and skips lines until that id comes back — what PVE's
``QMPClient`` does too.  The chardev accepts one client at a time, so calls are serialised.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["ChannelError", "AgentError", "QMPClient", "QGAClient"]


class ChannelError(Exception):
    """The socket could not be used or the answer did not come in time (agent not running)."""


class AgentError(Exception):
    """QGA (or QMP) answered with an error object; ``desc`` is its text."""

    def __init__(self, desc: str, klass: str = "GenericError"):
        super().__init__(desc)
        self.desc = desc
        self.klass = klass


class _LineSocket:
    def __init__(self, path: Path, timeout: float):
        self.deadline = time.monotonic() + timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.buffer = b""
        try:
            self.sock.settimeout(max(0.05, timeout))
            self.sock.connect(str(path))
        except OSError as exc:
            self.sock.close()
            raise ChannelError(f"cannot connect to {path.name}: {exc.strerror or exc}") from None

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError as exc:
            raise ChannelError(f"write failed: {exc.strerror or exc}") from None

    def read(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ChannelError("timeout")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                raise ChannelError("timeout") from None
            except OSError as exc:
                raise ChannelError(f"read failed: {exc.strerror or exc}") from None
            if not chunk:
                raise ChannelError("connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        line = line.strip(b"\xff \r\t")
        if not line:
            return self.read()
        try:
            value = json.loads(line)
        except ValueError:
            return self.read()        # a half line from a previous, aborted answer
        return value if isinstance(value, dict) else self.read()

    def close(self) -> None:
        self.sock.close()


def _result(answer: dict[str, Any]) -> Any:
    if "error" in answer:
        error = answer["error"] or {}
        raise AgentError(str(error.get("desc", "unknown error")), str(error.get("class", "GenericError")))
    return answer.get("return")


class QMPClient:
    """One short connection per command (QEMU allows several monitor clients; no state kept)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def execute(self, command: str, arguments: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
        conn = _LineSocket(self.path, timeout)
        try:
            conn.read()                                   # greeting
            conn.send({"execute": "qmp_capabilities"})
            _skip_events(conn)
            message: dict[str, Any] = {"execute": command}
            if arguments:
                message["arguments"] = arguments
            conn.send(message)
            return _result(_skip_events(conn))
        finally:
            conn.close()


def _skip_events(conn: _LineSocket) -> dict[str, Any]:
    while True:
        answer = conn.read()
        if "event" not in answer:
            return answer


class QGAClient:
    """Commands to the guest agent through its virtio-serial chardev socket."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def execute(self, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
        """Run one QGA command; :class:`ChannelError` when the agent does not answer within ``timeout``."""
        if not self._lock.acquire(timeout=timeout):
            raise ChannelError("agent busy")
        try:
            conn = _LineSocket(self.path, timeout)
            try:
                ident = random.randint(1, 2**31 - 1)
                conn.send({"execute": "guest-sync", "arguments": {"id": ident}})
                while conn.read().get("return") != ident:
                    pass
                message: dict[str, Any] = {"execute": command}
                if arguments:
                    message["arguments"] = arguments
                conn.send(message)
                if command in ("guest-shutdown",):      # answers nothing: the guest goes down
                    return None
                return _result(conn.read())
            finally:
                conn.close()
        finally:
            self._lock.release()

    def ping(self, timeout: float = 3.0) -> bool:
        try:
            self.execute("guest-ping", timeout=timeout)
            return True
        except (ChannelError, AgentError):
            return False
