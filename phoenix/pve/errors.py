"""What talking to PVE can end in, as one-line errors: an error status, no connection, a failed task.

PVE's own words are kept (``message``, per-parameter ``errors``, a task's exit status and log tail),
made printable and one line long; a connection failure says what was tried, for how long, and — for
TLS — which setting to fix.
"""

from __future__ import annotations

import requests
from proxmoxer.tools import Tasks

from phoenix.errors import PhoenixError
from phoenix.pve.settings import ConnectionSettings
from phoenix.text import printable

__all__ = ["PVEApiError", "PVEConnectionError", "TaskFailed", "TaskTimeout", "connection_error"]


class PVEApiError(PhoenixError):
    """PVE answered with an error status.  ``message`` is PVE's text, ``errors`` its per-parameter map."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None,
                 method: str = "", path: str = ""):
        pve_message = printable(_one_line(message)) or f"HTTP {status}"
        clean_errors = {printable(k): printable(_one_line(str(v))) for k, v in (errors or {}).items()}
        detail = "; ".join(f"{key}: {value}" for key, value in sorted(clean_errors.items()))
        text = f"{method} {path}: {pve_message} (HTTP {status})"
        super().__init__(f"{text} [{detail}]" if detail else text)
        self.text = self.args[0]
        self.status = status
        self.message = pve_message  # PVE's own words (PhoenixError's message would be the whole line)
        self.errors = dict(errors or {})
        self.method = method
        self.path = path

    def __str__(self) -> str:
        return str(self.text)


class PVEConnectionError(PhoenixError):
    """PVE could not be reached (refused, timed out, TLS failure) even after retrying."""


class TaskFailed(PhoenixError):
    """A PVE task ended with an error; ``log_tail`` holds its last log lines for diagnosis."""

    def __init__(self, upid: str, exitstatus: str, log_tail: list[str] | None = None):
        self.upid = upid
        self.exitstatus = exitstatus
        self.log_tail = [printable(line) for line in log_tail or []]
        super().__init__(f"task {printable(_describe_upid(upid))} failed: "
                         f"{printable(_one_line(exitstatus)) or 'unknown error'}")


class TaskTimeout(TaskFailed):
    """The task did not stop within the wait's timeout (it may still be running on PVE)."""


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _describe_upid(upid: str) -> str:
    try:
        info = Tasks.decode_upid(upid)
    except AssertionError:
        return upid
    target = f" {info['id']}" if info["id"] else ""
    return f"{info['type']}{target} on {info['node']}"


def connection_error(settings: ConnectionSettings, exc: requests.RequestException,
                      method: str = "", path: str = "", *, attempts: int = 1, elapsed: float = 0.0) -> PVEConnectionError:
    where = f"{method} {path} at {settings.endpoint}" if method else settings.endpoint
    tries = f" ({attempts} attempts in {elapsed:.0f} s)" if attempts > 1 else ""
    if isinstance(exc, requests.exceptions.SSLError):
        text = str(exc)
        if "match" in text or "mismatch" in text or "hostname" in text.lower():
            return PVEConnectionError(f"TLS verification failed for {settings.endpoint}: the certificate is not "
                                      f"valid for {settings.host}; PROXMOX_VE_ENDPOINT must name a host the "
                                      "certificate lists")
        return PVEConnectionError(f"TLS verification failed for {settings.endpoint}: set PROXMOX_VE_CA_FILE "
                                  "to the CA that signed PVE's certificate")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return PVEConnectionError(f"{where}: no connection within {settings.timeout:g} s{tries}")
    if isinstance(exc, requests.exceptions.Timeout):   # a read timeout or the whole-answer deadline
        return PVEConnectionError(f"{where}: no complete answer within {settings.timeout:g} s{tries}")
    reason = type(exc).__name__
    root = exc.__context__ or (exc.args[0] if exc.args else None)
    if root is not None and not isinstance(root, str):
        reason = f"{reason} ({type(root).__name__})"
    return PVEConnectionError(f"cannot reach {where}: {reason}{tries}")
