"""The one retry policy for talking to PVE.

What is transient (worth another try): a 502/503/504, AnyEvent's 595-599 (PVE's proxy could not
reach the node), a 5xx whose message says a lock or a connection timed out (``got timeout``,
``VM is locked``), and connection failures.  Everything else — 4xx, ordinary 500s such as
``storage 'x' does not exist`` — is permanent and surfaces at once with PVE's message.

Requests that change things (POST/PUT/DELETE) are retried only when they certainly did not
reach PVE's handler: an HTTP error answer or a connection that was never established.  A read
timeout, or a connection reset after the request was sent, may mean PVE already acted (a create
or clone whose answer was lost): it is never re-sent blindly; the caller sees
:class:`~phoenix.pve.client.PVEConnectionError` and settles it by reading back (see
``phoenix.pve.settle``).  A plain 500 is permanent: PVE uses it for most permanent errors
(``storage 'x' does not exist``, ``VM 100 already exists``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import requests
import tenacity
import urllib3

__all__ = ["RetryPolicy", "DEFAULT_POLICY", "is_transient_message", "is_transient_status", "is_transient_exception",
           "never_connected", "NotConnected"]

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({502, 503, 504, 595, 596, 597, 599})
_TRANSIENT_MESSAGE_RE = re.compile(
    r"got timeout|VM is locked|CT is locked|timeout waiting on systemd|"
    r"connection (?:refused|reset|timed out)|no route to host|temporarily unavailable|"
    r"cfs-lock .* error: got lock request timeout",
    re.IGNORECASE,
)


def is_transient_message(message: str | None) -> bool:
    """True for PVE messages that describe a lock or connection that may free up (see module doc)."""
    return bool(message) and bool(_TRANSIENT_MESSAGE_RE.search(message or ""))


def is_transient_status(status: int, message: str | None) -> bool:
    """An HTTP answer worth retrying: gateway/AnyEvent statuses, or a 5xx with a lock/timeout message."""
    if status in TRANSIENT_STATUSES:
        return True
    return 500 <= status < 600 and is_transient_message(message)


def is_transient_exception(exc: BaseException, method: str = "GET") -> bool:
    """Classify anything the client may raise; ``method`` decides whether timeouts are safe to retry."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return is_transient_status(status, getattr(exc, "message", None))
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not heal by waiting
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return method.upper() == "GET"
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    return method.upper() == "GET" or never_connected(exc)


class NotConnected(requests.exceptions.ConnectionError):
    """The fast path's connection could not be made (refused, unreachable, not resolved): nothing
    was sent, so even a write may be tried again (urllib3 says this with ``NewConnectionError``)."""


def never_connected(exc: BaseException) -> bool:
    """True when the connection was never established (refused, DNS, connect timeout), so the
    request cannot have reached PVE; False for a reset or drop after it was sent."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, NotConnected)):
        return True
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NewConnectionError):
            return True
        if isinstance(current, urllib3.exceptions.MaxRetryError):
            pending.append(current.reason)
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
        pending.append(current.__cause__)
        pending.append(current.__context__)
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; ``attempts`` and ``max_seconds`` both stop it."""

    attempts: int = 6
    max_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 10.0
    jitter: float = 0.5

    def fast(self) -> "RetryPolicy":
        """A policy for tests: same shape, milliseconds instead of seconds."""
        return replace(self, initial_wait=0.001, max_wait=0.01, jitter=0.001, max_seconds=10.0)

    def call(self, fn: Callable[[], T], retry_if: Callable[[BaseException], bool],
             before_sleep: Callable[[BaseException, int, float], None] | None = None) -> T:
        """Run ``fn``; on an exception for which ``retry_if`` holds, wait and run it again (bounded).

        The last exception is re-raised unchanged when attempts or time run out.  The first try
        runs outside tenacity: most calls succeed at once, and a plan makes thousands of them.
        """
        started = time.monotonic()
        try:
            return fn()
        except Exception as exc:
            if self.attempts <= 1 or not retry_if(exc):
                raise
            first_failure: BaseException | None = exc

        def again() -> T:                   # tenacity's attempt 1 is the failure already seen
            nonlocal first_failure
            if first_failure is not None:
                failure, first_failure = first_failure, None
                raise failure
            return fn()

        def _before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            if before_sleep is not None and exc is not None:
                wait = state.next_action.sleep if state.next_action else 0.0
                before_sleep(exc, state.attempt_number, wait)

        retrying = tenacity.Retrying(
            stop=(tenacity.stop_after_attempt(max(1, self.attempts))
                  | tenacity.stop_after_delay(max(0.0, self.max_seconds - (time.monotonic() - started)))),
            wait=(tenacity.wait_exponential(multiplier=self.initial_wait, max=self.max_wait)
                  + tenacity.wait_random(0, self.jitter)),
            retry=tenacity.retry_if_exception(retry_if),
            before_sleep=_before_sleep,
            reraise=True,
        )
        return retrying(again)


DEFAULT_POLICY = RetryPolicy()
