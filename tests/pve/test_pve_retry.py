"""The retry policy: what is transient, and that retries are bounded (unit level, no network)."""

from __future__ import annotations

import time

import pytest
import requests
import urllib3

from phoenix.pve.client import PVEApiError
from phoenix.pve.retry import DEFAULT_POLICY, RetryPolicy, is_transient_exception, is_transient_status

LOCK_TIMEOUT = "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"


@pytest.mark.parametrize("status, message, transient", [
    (500, LOCK_TIMEOUT, True),
    (500, "VM is locked (clone)", True),
    (502, "Bad Gateway", True),
    (503, "Service Unavailable", True),
    (504, "", True),
    (595, "No route to host", True),
    (500, "storage 'x' does not exist", False),
    (500, "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist", False),
    (500, "checksum mismatch (file change by other user?)", False),
    (400, "Parameter verification failed.", False),
    (403, "Permission check failed (/vms/100, VM.Allocate)", False),
    (401, "Authentication failed!", False),
    (404, "VM is locked (clone)", False),
])
def test_status_classification(status, message, transient):
    assert is_transient_status(status, message) is transient
    assert is_transient_exception(PVEApiError(status, message, method="POST", path="/x"), "POST") is transient


def test_connection_errors_are_transient_but_read_timeouts_only_for_get():
    refused = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(
        None, "/", urllib3.exceptions.NewConnectionError(None, "Connection refused")))
    dropped = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError(
        "Connection aborted.", ConnectionResetError(104, "reset")))
    assert is_transient_exception(refused, "POST")              # never reached PVE: safe to send again
    assert not is_transient_exception(dropped, "POST")          # may have created a VM: settle, never re-send
    assert is_transient_exception(dropped, "GET")
    assert is_transient_exception(requests.exceptions.ConnectTimeout("slow"), "POST")
    assert is_transient_exception(requests.exceptions.ReadTimeout("slow"), "GET")
    assert not is_transient_exception(requests.exceptions.ReadTimeout("slow"), "POST")  # may have started a task
    assert not is_transient_exception(requests.exceptions.SSLError("bad cert"), "GET")
    assert not is_transient_exception(ValueError("bug"), "GET")


def test_policy_retries_until_success():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise PVEApiError(500, LOCK_TIMEOUT)
        return "ok"

    slept = []
    result = DEFAULT_POLICY.fast().call(flaky, retry_if=is_transient_exception,
                                        before_sleep=lambda exc, n, wait: slept.append((n, wait)))
    assert result == "ok" and len(calls) == 3 and [n for n, _ in slept] == [1, 2]


def test_policy_is_bounded_by_attempts_and_reraises_the_last_error():
    calls = []

    def always():
        calls.append(1)
        raise PVEApiError(503, f"try {len(calls)}")

    with pytest.raises(PVEApiError, match="try 4"):
        RetryPolicy(attempts=4).fast().call(always, retry_if=is_transient_exception)
    assert len(calls) == 4


def test_policy_is_bounded_by_time():
    calls = []

    def always():
        calls.append(1)
        raise PVEApiError(503, "down")

    policy = RetryPolicy(attempts=1000, max_seconds=0.2, initial_wait=0.05, max_wait=0.05, jitter=0.0)
    with pytest.raises(PVEApiError):
        policy.call(always, retry_if=is_transient_exception)
    # Only the time bound can stop it before 1000 attempts: every wait is at least 0.05 s, so within
    # 0.2 s there is room for at most 5 calls (fewer on a slow machine, never more).
    assert 1 <= len(calls) <= 5


def test_permanent_errors_are_not_retried():
    calls = []

    def permanent():
        calls.append(1)
        raise PVEApiError(500, "storage 'x' does not exist")

    with pytest.raises(PVEApiError, match="storage 'x' does not exist"):
        DEFAULT_POLICY.fast().call(permanent, retry_if=is_transient_exception)
    assert len(calls) == 1


def test_backoff_grows_and_is_capped():
    waits = []

    def always():
        raise PVEApiError(503, "down")

    policy = RetryPolicy(attempts=7, initial_wait=0.001, max_wait=0.004, jitter=0.0, max_seconds=5)
    with pytest.raises(PVEApiError):
        policy.call(always, retry_if=is_transient_exception, before_sleep=lambda e, n, w: waits.append(w))
    assert waits == sorted(waits) and max(waits) <= 0.004 and waits[0] < waits[-1]  # jitter 0: pure exponential
