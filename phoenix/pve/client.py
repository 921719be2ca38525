"""The one wrapper around proxmoxer that the rest of phoenix uses to talk to PVE.

Why a wrapper: path-based calls (``client.get("/cluster/resources", type="vm")``) are easier to
log, count and retry than proxmoxer's attribute chains; PVE's errors become one-line
:class:`PVEApiError`\\ s; tasks are awaited with a short, growing poll interval; and every call
goes through the single retry policy of :mod:`phoenix.pve.retry`.  Every answer is read as
untrusted input (:mod:`phoenix.pve.answer`): within one deadline for the whole answer
(:mod:`phoenix.pve.deadline`), at most 64 MiB, without following redirects, and with the
``data`` envelope checked — :meth:`PVEClient.get_list` / :meth:`PVEClient.get_dict` also check its type.  The client is shared by the
threads of an apply, so the connection pool is sized for that and the request counter is locked.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.tools import Tasks

from phoenix.errors import PhoenixError
from phoenix.pve.answer import (PVEAnswerError, expect_dict, expect_list, int_field, interpret_answer,
                                read_response)
from phoenix.pve.deadline import AnswerDeadline, DeadlineAdapter, whole_answer_within
from phoenix.pve.direct import DirectCalls
from phoenix.pve.errors import PVEApiError, PVEConnectionError, TaskFailed, TaskTimeout, connection_error
from phoenix.pve.multiplex import Answer
from phoenix.pve.polling import FIRST, MAX_INTERVAL, DurationLearner, LearnedWait
from phoenix.pve.retry import DEFAULT_POLICY, RetryPolicy, is_transient_exception, is_transient_message
from phoenix.pve.settings import ConnectionSettings, warn_insecure_once
from phoenix.pve.ticket import TicketAuth

__all__ = ["PVEClient", "PVEApiError", "PVEAnswerError", "PVEConnectionError", "TaskFailed", "TaskTimeout",
           "join_path"]

LOG_TAIL_LINES = 10
# Connections kept for reuse: as many as phoenix ever uses at once (64 plan readers, --parallelism ≤ 64);
# a smaller pool closes the surplus after each call and pays a TLS handshake for the next one.
POOL_SIZE = 64
READ_WIDTH = 16          # concurrent reads of read_each unless told


def join_path(*segments: object) -> str:
    """Build an API path, percent-encoding each segment (a volid's ``/`` must not split the path)."""
    return "/" + "/".join(quote(str(seg), safe=":@!=,") for seg in segments)


class PVEClient:
    """Path-based PVE API calls over proxmoxer's https backend; create with :meth:`connect`."""

    def __init__(self, api: ProxmoxAPI, settings: ConnectionSettings, *,
                 policy: RetryPolicy = DEFAULT_POLICY, pool_size: int = POOL_SIZE):
        self.api = api
        self.settings = settings
        self.policy = policy
        self._count_lock = threading.Lock()
        self.durations = DurationLearner()     # how long each task type took so far (poll timing)
        self._count = 0
        session: requests.Session = api._store["session"]  # proxmoxer exposes no accessor for it
        adapter = DeadlineAdapter(pool_connections=4, pool_maxsize=max(1, pool_size))
        session.mount("https://", adapter)
        session.hooks["response"].append(self._on_response)
        # requests re-reads proxy/CA/netrc settings from the environment on every request (a third of
        # the client's CPU per call when a plan reads 1,000 configs); read the proxies once instead.
        # TLS verification is always passed explicitly (settings.verify), never taken from the env.
        session.proxies.update(requests.utils.get_environ_proxies(f"https://{settings.host}:{settings.port}"))
        session.trust_env = False
        self._direct: DirectCalls | None = None
        if settings.uses_token and not session.proxies:
            assert settings.token_secret is not None
            token = f"{settings.token_user}!{settings.token_name}={settings.token_secret.get_secret_value()}"
            self._direct = DirectCalls(settings.host, settings.port, f"PVEAPIToken={token}", _verify(settings),
                                       settings.timeout, pool_size)
        self._session = session

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def connect(cls, settings: ConnectionSettings, *, policy: RetryPolicy | None = None,
                pool_size: int = POOL_SIZE) -> "PVEClient":
        """Open a session with token or ticket auth (a ticket login happens here, retried if transient)."""
        warn_insecure_once(settings)
        policy = policy or DEFAULT_POLICY
        common: dict[str, Any] = {"verify_ssl": _verify(settings), "timeout": settings.timeout, "service": "PVE"}
        host = f"{settings.host}:{settings.port}"
        if settings.uses_token:
            assert settings.token_secret is not None
            auth = {"user": settings.token_user, "token_name": settings.token_name,
                    "token_value": settings.token_secret.get_secret_value()}
            api = ProxmoxAPI(host, backend="https", **auth, **common)
        else:
            # The ticket login is phoenix's own (bounded, no redirects, answer checked); proxmoxer's
            # follows redirects — re-sending the password to wherever a server points — and reads
            # any answer whole.  proxmoxer then signs requests with the ticket as usual.
            def login() -> TicketAuth:
                return TicketAuth(settings, _verify(settings))

            try:
                ticket_auth = policy.call(login, retry_if=lambda exc: is_transient_exception(exc, "GET"))
            except requests.RequestException as exc:
                raise connection_error(settings, exc, "POST", "/access/ticket") from None
            api = ProxmoxAPI(host, backend="https", user=settings.username, token_name="ticket",
                             token_value="unused", **common)
            api._backend.auth = ticket_auth           # proxmoxer has no setter for a ready ticket
            api._store["session"].auth = ticket_auth
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

        Booleans become ``1``/``0`` (PVE rejects ``True``) and ``None`` values are dropped.  The
        whole answer must arrive within ``settings.timeout`` seconds and be at most 64 MiB; a file
        upload (a file object among the parameters) is bounded per read instead, as its body may
        take long to send.
        """
        return self._call(method.upper(), path, _clean_params(params))

    def _call(self, method: str, path: str, clean: dict[str, Any], first: Answer | Exception | None = None,
              started: float | None = None) -> Any:
        """One call through the retry policy; ``first``: its first try's outcome, already had (read_each),
        begun at ``started``."""
        uploading = any(hasattr(value, "read") for value in clean.values())
        direct = None if uploading else self._direct
        started = time.monotonic() if started is None else started
        attempts = 0

        def once() -> Any:
            nonlocal attempts, first
            attempts += 1
            if first is not None:
                had, first = first, None
                if isinstance(had, Exception):
                    raise had
                return interpret_answer(*had, method, path)
            with whole_answer_within(None if uploading else self.settings.timeout) as scope:
                try:
                    if direct is not None:
                        status, reason, location, body = direct.call(method, path, clean)
                        with self._count_lock:
                            self._count += 1
                    else:
                        status, reason, location, body = self._send(method, path, clean)
                except requests.RequestException as exc:
                    if scope.expired:
                        raise AnswerDeadline(str(exc)) from None
                    raise
            if scope.expired:   # cut off mid-headers, http.client may have taken the EOF for their end
                raise AnswerDeadline("the answer was cut off at the deadline")
            return interpret_answer(status, reason, location, body, method, path)

        try:
            return self.policy.call(once, retry_if=lambda exc: is_transient_exception(exc, method))
        except requests.RequestException as exc:
            raise connection_error(self.settings, exc, method, path,
                                    attempts=attempts, elapsed=time.monotonic() - started) from None

    def read_each(self, paths: Sequence[str], width: int = READ_WIDTH) -> Iterator[tuple[int, Any | PhoenixError]]:
        """GET each path (no parameters) and yield ``(index, data)`` as answers arrive, in any order;
        a path that failed (after the retry policy) yields ``(index, error)`` instead.

        With an API token (and no proxy) one thread reads over up to ``width`` connections
        (:mod:`phoenix.pve.multiplex`); a failed first try is retried per policy after the others
        arrived.  Otherwise ``width`` threads call :meth:`get`.  Each answer is checked as
        :meth:`get` checks it.
        """
        if self._direct is None:
            yield from self._read_each_threaded(paths, width)
            return
        def settled(index: int, first: Answer | Exception, asked: float) -> tuple[int, Any | PhoenixError]:
            try:
                return index, self._call("GET", paths[index], {}, first=first, started=asked)
            except PhoenixError as exc:
                return index, exc

        retry: list[tuple[int, Exception, float]] = []
        for index, outcome, asked in self._direct.read_many(paths, width):
            if isinstance(outcome, Exception):
                retry.append((index, outcome, asked))
                continue
            with self._count_lock:
                self._count += 1
            yield settled(index, outcome, asked)
        for index, failure, asked in retry:
            yield settled(index, failure, asked)

    def _read_each_threaded(self, paths: Sequence[str], width: int) -> Iterator[tuple[int, Any | PhoenixError]]:
        def read(index: int) -> tuple[int, Any | PhoenixError]:
            try:
                return index, self.get(paths[index])
            except PhoenixError as exc:
                return index, exc

        with ThreadPoolExecutor(max_workers=max(1, min(width, len(paths)))) as pool:
            yield from pool.map(read, range(len(paths)))

    def _send(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, str, str, bytes]:
        """One request through the proxmoxer session (auth, CSRF, uploads), the answer read whole (capped)."""
        url = self.api(path.strip("/"))._store["base_url"]
        payload: dict[str, Any] = {"data": dict(params)} if method in ("POST", "PUT") else {"params": dict(params)}
        response = self._session.request(method, url, stream=True, allow_redirects=False, **payload)
        body = read_response(response, f"{method} {path}")
        return response.status_code, response.reason or "", response.headers.get("location", ""), body

    def get_list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """GET whose ``data`` must be an array of objects (a listing); an error names the endpoint if not."""
        return expect_list(self.get(path, **params), f"GET {path}")

    def get_dict(self, path: str, **params: Any) -> dict[str, Any]:
        """GET whose ``data`` must be an object (a config, a status); an error names the endpoint if not."""
        return expect_dict(self.get(path, **params), f"GET {path}")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, **params)

    def post(self, path: str, **params: Any) -> Any:
        return self.request("POST", path, **params)

    def put(self, path: str, **params: Any) -> Any:
        return self.request("PUT", path, **params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, **params)

    # --- tasks ----------------------------------------------------------------------------------

    def wait_task(self, upid: str, timeout: float = 600, on_progress: Callable[[dict[str, Any]], None] | None = None,
                  *, first_interval: float = FIRST, max_interval: float = MAX_INTERVAL) -> dict[str, Any]:
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
        wait = LearnedWait(self.durations, kind, first=first_interval, max_interval=max_interval)
        deadline = wait.started + timeout
        while True:
            status = self.get_dict(status_path)
            if on_progress is not None:
                on_progress(status)
            if status.get("status") == "stopped":
                wait.hit()
                break
            sleep = wait.missed()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TaskTimeout(upid, f"still running after {timeout:g} s", self._log_tail(node, upid))
            time.sleep(min(sleep, remaining))
        exitstatus = str(status.get("exitstatus", ""))
        if exitstatus == "OK" or exitstatus.startswith("WARNINGS"):
            return dict(status)
        raise TaskFailed(upid, exitstatus, self._log_tail(node, upid))

    def _log_tail(self, node: str, upid: str, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last ``lines`` log lines; one call for short logs, two when the log is long."""
        path = f"/nodes/{node}/tasks/{upid}/log"
        where = f"GET {path}"
        try:
            entries = self.get_list(path, start=0, limit=500)
            if len(entries) == 500:
                numbers = [int_field(e, "n", where, f"data[{i}]") for i, e in enumerate(entries)]
                entries = self.get_list(path, start=max(0, max(numbers) - lines), limit=lines + 500) or entries
            numbered = sorted((int_field(e, "n", where, f"data[{i}]"), str(e.get("t", "")))
                              for i, e in enumerate(entries))
        except PhoenixError:
            return []
        return [text for _, text in numbered][-lines:]

    def run_task(self, method: str, path: str, *, task_timeout: float = 600,
                 on_progress: Callable[[dict[str, Any]], None] | None = None, **params: Any) -> dict[str, Any]:
        """Request + wait.  A task that failed on a transient cause (a lock timeout inside the
        worker) is started again per policy; the request itself retries only when it failed."""

        def attempt() -> dict[str, Any]:
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
