"""The one wrapper around proxmoxer that the rest of phoenix uses to talk to PVE.

Why a wrapper: path-based calls (``client.get("/cluster/resources", type="vm")``) are easier to
log, count and retry than proxmoxer's attribute chains; PVE's errors become one-line
:class:`PVEApiError`\\ s; tasks are awaited with a short, growing poll interval; and every call
goes through the single retry policy of :mod:`phoenix.pve.retry`.  The client is shared by the
threads of an apply, so the connection pool is sized for that and the request counter is locked.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException
from proxmoxer.tools import Tasks
from requests.adapters import HTTPAdapter

from phoenix.errors import PhoenixError
from phoenix.pve.direct import DirectGet
from phoenix.pve.polling import FIRST, MAX_INTERVAL, DurationLearner
from phoenix.pve.retry import DEFAULT_POLICY, RetryPolicy, is_transient_exception, is_transient_message
from phoenix.pve.settings import ConnectionSettings, warn_insecure_once

__all__ = ["PVEClient", "PVEApiError", "PVEConnectionError", "TaskFailed", "TaskTimeout", "join_path"]

LOG_TAIL_LINES = 10


class PVEApiError(PhoenixError):
    """PVE answered with an error status.  ``message`` is PVE's text, ``errors`` its per-parameter map."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None,
                 method: str = "", path: str = ""):
        pve_message = _one_line(message) or f"HTTP {status}"
        clean_errors = {str(k): _one_line(str(v)) for k, v in (errors or {}).items()}
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
        return self.text


class PVEConnectionError(PhoenixError):
    """PVE could not be reached (refused, timed out, TLS failure) even after retrying."""


class TaskFailed(PhoenixError):
    """A PVE task ended with an error; ``log_tail`` holds its last log lines for diagnosis."""

    def __init__(self, upid: str, exitstatus: str, log_tail: list[str] | None = None):
        self.upid = upid
        self.exitstatus = exitstatus
        self.log_tail = list(log_tail or [])
        super().__init__(f"task {_describe_upid(upid)} failed: {_one_line(exitstatus) or 'unknown error'}")


class TaskTimeout(TaskFailed):
    """The task did not stop within the wait's timeout (it may still be running on PVE)."""


def join_path(*segments: object) -> str:
    """Build an API path, percent-encoding each segment (a volid's ``/`` must not split the path)."""
    return "/" + "/".join(quote(str(seg), safe=":@!=,") for seg in segments)


class PVEClient:
    """Path-based PVE API calls over proxmoxer's https backend; create with :meth:`connect`."""

    def __init__(self, api: ProxmoxAPI, settings: ConnectionSettings, *,
                 policy: RetryPolicy = DEFAULT_POLICY, pool_size: int = 16):
        self.api = api
        self.settings = settings
        self.policy = policy
        self._count_lock = threading.Lock()
        self.durations = DurationLearner()     # how long each task type took so far (poll timing)
        self._count = 0
        session: requests.Session = api._store["session"]  # proxmoxer exposes no accessor for it
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size))
        session.mount("https://", adapter)
        session.hooks["response"].append(self._on_response)
        # requests re-reads proxy/CA/netrc settings from the environment on every request (a third of
        # the client's CPU per call when a plan reads 1,000 configs); read the proxies once instead.
        # TLS verification is always passed explicitly (settings.verify), never taken from the env.
        session.proxies.update(requests.utils.get_environ_proxies(f"https://{settings.host}:{settings.port}"))
        session.trust_env = False
        self._direct: DirectGet | None = None
        if settings.uses_token and not session.proxies:
            assert settings.token_secret is not None
            token = f"{settings.token_user}!{settings.token_name}={settings.token_secret.get_secret_value()}"
            self._direct = DirectGet(settings.host, settings.port, f"PVEAPIToken={token}",
                                     _verify(settings),
                                     settings.timeout, pool_size)
        self._session = session

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def connect(cls, settings: ConnectionSettings, *, policy: RetryPolicy | None = None,
                pool_size: int = 16) -> "PVEClient":
        """Open a session with token or ticket auth (a ticket login happens here, retried if transient)."""
        warn_insecure_once(settings)
        policy = policy or DEFAULT_POLICY
        common: dict[str, Any] = {"verify_ssl": _verify(settings), "timeout": settings.timeout, "service": "PVE"}
        host = f"{settings.host}:{settings.port}"
        if settings.uses_token:
            assert settings.token_secret is not None
            auth = {"user": settings.token_user, "token_name": settings.token_name,
                    "token_value": settings.token_secret.get_secret_value()}
        else:
            assert settings.password is not None
            auth = {"user": settings.username, "password": settings.password.get_secret_value()}

        def login() -> ProxmoxAPI:
            return ProxmoxAPI(host, backend="https", **auth, **common)

        try:
            api = policy.call(login, retry_if=lambda exc: is_transient_exception(exc, "GET"))
        except AuthenticationError:
            raise PhoenixError(f"authentication failed for {settings.username} at {settings.endpoint}") from None
        except requests.RequestException as exc:
            raise _connection_error(settings, exc) from None
        return cls(api, settings, policy=policy, pool_size=pool_size)

    def close(self) -> None:
        self._session.close()
        if self._direct is not None:
            self._direct.close()

    def __enter__(self) -> "PVEClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests -------------------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """HTTP requests sent through the session so far (retries and task polls included)."""
        with self._count_lock:
            return self._count

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with self._count_lock:
            self._count += 1

    def request(self, method: str, path: str, **params: Any) -> Any:
        """Send one API call (retried per policy) and return its ``data``.

        Booleans become ``1``/``0`` (PVE rejects ``True``) and ``None`` values are dropped.
        """
        method = method.upper()
        clean = _clean_params(params)
        resource = self.api(path.strip("/"))
        direct = self._direct if method == "GET" else None

        def once() -> Any:
            if direct is not None:
                status, reason, body = direct.get(path, clean)
                with self._count_lock:
                    self._count += 1
                if status == 200 and isinstance(body, dict):
                    return body.get("data")
                errors = body.get("errors") if isinstance(body, dict) else None
                raise PVEApiError(status, reason, _errors_dict(errors), method, path)
            try:
                if method in ("POST", "PUT"):
                    return resource._request(method, data=dict(clean))
                return resource._request(method, params=dict(clean))
            except ResourceException as exc:
                raise PVEApiError(exc.status_code, str(exc.content or ""), _errors_dict(exc.errors),
                                  method, path) from None

        try:
            return self.policy.call(once, retry_if=lambda exc: is_transient_exception(exc, method))
        except requests.RequestException as exc:
            raise _connection_error(self.settings, exc, method, path) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, **params)

    def post(self, path: str, **params: Any) -> Any:
        return self.request("POST", path, **params)

    def put(self, path: str, **params: Any) -> Any:
        return self.request("PUT", path, **params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, **params)

    # --- tasks ----------------------------------------------------------------------------------

    def wait_task(self, upid: str, timeout: float = 600, on_progress: Callable[[dict], None] | None = None,
                  *, first_interval: float = FIRST, max_interval: float = MAX_INTERVAL) -> dict:
        """Poll the task until it stops; return its final status, or raise :class:`TaskFailed`.

        Not ``proxmoxer.tools.Tasks.blocking_status``: it polls at one fixed interval and sleeps
        once more after the task stopped, so short tasks would cost a whole interval each and long
        ones many requests.  Here the intervals come from :attr:`durations`, which learns how long
        each task type takes in this run (see :mod:`phoenix.pve.polling`).  ``on_progress``
        receives every status dict polled.
        """
        try:
            decoded = Tasks.decode_upid(upid)
        except (AssertionError, AttributeError):
            raise PhoenixError(f"not a PVE task id (UPID): {upid!r}") from None
        node, kind = decoded["node"], decoded["type"]
        status_path = f"/nodes/{node}/tasks/{upid}/status"
        started = time.monotonic()
        deadline = started + timeout
        intervals = self.durations.intervals(kind, first=first_interval, max_interval=max_interval)
        last_running = started
        while True:
            status = self.get(status_path)
            if on_progress is not None:
                on_progress(status)
            if status.get("status") == "stopped":
                # The task ended between the last two polls: remember the midpoint.
                self.durations.record(kind, (last_running + time.monotonic()) / 2 - started)
                break
            last_running = time.monotonic()
            remaining = deadline - last_running
            if remaining <= 0:
                raise TaskTimeout(upid, f"still running after {timeout:g} s", self._log_tail(node, upid))
            time.sleep(min(next(intervals), remaining))
        exitstatus = str(status.get("exitstatus", ""))
        if exitstatus == "OK" or exitstatus.startswith("WARNINGS"):
            return status
        raise TaskFailed(upid, exitstatus, self._log_tail(node, upid))

    def _log_tail(self, node: str, upid: str, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last ``lines`` log lines; one call for short logs, two when the log is long."""
        path = f"/nodes/{node}/tasks/{upid}/log"
        try:
            entries = self.get(path, start=0, limit=500) or []
            numbers = [int(e.get("n", 0)) for e in entries]
            if len(entries) == 500:
                entries = self.get(path, start=max(0, max(numbers) - lines), limit=lines + 500) or entries
        except PhoenixError:
            return []
        texts = [str(e.get("t", "")) for e in sorted(entries, key=lambda e: int(e.get("n", 0)))]
        return texts[-lines:]

    def run_task(self, method: str, path: str, *, task_timeout: float = 600,
                 on_progress: Callable[[dict], None] | None = None, **params: Any) -> dict:
        """Request + wait.  A task that failed on a transient cause (a lock timeout inside the
        worker) is started again per policy; the request itself retries only when it failed."""

        def attempt() -> dict:
            upid = self.request(method, path, **params)
            if upid is None:  # e.g. PUT /config or POST with background_delay: done synchronously
                return {"status": "stopped", "exitstatus": "OK", "upid": None}
            if not isinstance(upid, str) or not upid.startswith("UPID:"):
                raise PhoenixError(f"{method.upper()} {path} did not start a task (answered {upid!r})")
            return self.wait_task(upid, task_timeout, on_progress)

        def task_is_transient(exc: BaseException) -> bool:
            return (isinstance(exc, TaskFailed) and not isinstance(exc, TaskTimeout)
                    and is_transient_message(exc.exitstatus))

        return self.policy.call(attempt, retry_if=task_is_transient)


def _clean_params(params: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = 1 if value else 0
        clean[key] = value
    return clean


def _verify(settings: ConnectionSettings) -> bool | str:
    """The CA file, or the system store / the bundle the environment names (as requests would)."""
    verify = settings.verify
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify


def _errors_dict(errors: Any) -> dict[str, str]:
    if isinstance(errors, dict) and all(isinstance(v, str) for v in errors.values()):
        return {str(k): v for k, v in errors.items()}
    return {}


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _describe_upid(upid: str) -> str:
    try:
        info = Tasks.decode_upid(upid)
    except AssertionError:
        return upid
    target = f" {info['id']}" if info["id"] else ""
    return f"{info['type']}{target} on {info['node']}"


def _connection_error(settings: ConnectionSettings, exc: requests.RequestException,
                      method: str = "", path: str = "") -> PVEConnectionError:
    where = f"{method} {path} at {settings.endpoint}" if method else settings.endpoint
    if isinstance(exc, requests.exceptions.SSLError):
        return PVEConnectionError(f"TLS verification failed for {settings.endpoint}: set PROXMOX_VE_CA_FILE "
                                  "to the CA that signed PVE's certificate")
    if isinstance(exc, requests.exceptions.Timeout):
        return PVEConnectionError(f"{where}: timed out after {settings.timeout:g} s")
    reason = type(exc).__name__
    root = exc.__context__ or (exc.args[0] if exc.args else None)
    if root is not None and not isinstance(root, str):
        reason = f"{reason} ({type(root).__name__})"
    return PVEConnectionError(f"cannot reach {where}: {reason}")
