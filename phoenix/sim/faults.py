"""Fault injection and request statistics (``/_sim/faults``, ``/_sim/stats``).

Tests of phoenix's retry policy and executor need PVE to misbehave on demand: fail the next N
calls of one endpoint with a PVE-style error, fail the next N tasks of one type with
``TASK ERROR``, make a feature the simulated guest runs fail, answer slowly, or hold every write after the
Nth (crash tests kill the client there).  The stats let tests assert how many calls a plan made
(e.g. that reading the inventory is one ``/cluster/resources`` call).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from phoenix.sim.core import PVEError

__all__ = ["Faults", "Stats", "FaultSpecError"]

_ENDPOINT_KEYS = {"endpoint", "count", "status", "message"}
_TASK_KEYS = {"task_type", "count", "message"}
_FEATURE_KEYS = {"feature", "vmid", "count", "exit_code", "log", "seconds"}


class FaultSpecError(ValueError):
    """A bad ``POST /_sim/faults`` body; the message names the offending field."""


class Faults:
    """Pending injected faults; each ``take_*`` consumes one."""

    def __init__(self, known_endpoints: set[str]):
        self._lock = threading.Lock()
        self._known = known_endpoints
        self._endpoint: dict[str, list[dict[str, Any]]] = {}
        self._task: dict[str, list[dict[str, Any]]] = {}
        self._feature: dict[str, list[dict[str, Any]]] = {}
        self.extra_latency_ms = 0.0
        # hold_after_writes: answer N writes, then hold the next one until the faults are cleared — a
        # client can be killed at a known point ("right after its Nth write"), found by counting, not sleeping.
        self._hold_after: int | None = None
        self._writes_seen = 0
        self._released = threading.Event()
        self.holding = False

    def add(self, spec: Any) -> dict[str, Any]:
        """Register one fault from its JSON description; returns the normalised form."""
        if not isinstance(spec, dict):
            raise FaultSpecError("fault must be a JSON object")
        if set(spec) == {"latency_ms"}:
            latency = _number(spec, "latency_ms", minimum=0)
            with self._lock:
                self.extra_latency_ms = latency
            return {"latency_ms": latency}
        if set(spec) == {"hold_after_writes"}:
            after = int(_number(spec, "hold_after_writes", minimum=0))
            with self._lock:
                self._hold_after, self._writes_seen, self.holding = after, 0, False
                self._released.clear()
            return {"hold_after_writes": after}
        if "endpoint" in spec:
            return self._add_endpoint(spec)
        if "task_type" in spec:
            return self._add_task(spec)
        if "feature" in spec:
            return self._add_feature(spec)
        raise FaultSpecError("fault needs one of 'endpoint', 'task_type', 'feature' or 'latency_ms'")

    def _add_endpoint(self, spec: dict[str, Any]) -> dict[str, Any]:
        _no_unknown(spec, _ENDPOINT_KEYS)
        endpoint = spec["endpoint"]
        if not isinstance(endpoint, str) or endpoint not in self._known:
            raise FaultSpecError(f"endpoint: unknown endpoint {endpoint!r} (expected 'METHOD /schema/template')")
        status = int(_number(spec, "status", minimum=400, maximum=599, default=500))
        message = _message(spec)
        fault = {"endpoint": endpoint, "count": int(_number(spec, "count", minimum=1, default=1)),
                 "status": status, "message": message}
        with self._lock:
            self._endpoint.setdefault(endpoint, []).append(dict(fault))
        return fault

    def _add_task(self, spec: dict[str, Any]) -> dict[str, Any]:
        _no_unknown(spec, _TASK_KEYS)
        task_type = spec["task_type"]
        if not isinstance(task_type, str) or not task_type:
            raise FaultSpecError("task_type: must be a non-empty string such as 'qmclone'")
        fault = {"task_type": task_type, "count": int(_number(spec, "count", minimum=1, default=1)),
                 "message": _message(spec)}
        with self._lock:
            self._task.setdefault(task_type, []).append(dict(fault))
        return fault

    def _add_feature(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The next ``count`` runs of a feature in the simulated guest (of ``vmid``, or any VM) fail."""
        _no_unknown(spec, _FEATURE_KEYS)
        name = spec["feature"]
        if not isinstance(name, str) or not name:
            raise FaultSpecError("feature: must be a feature name such as 'docker'")
        log = spec.get("log", [f"phoenix feature {name}: failed"])
        if isinstance(log, str):
            log = log.splitlines()
        if not isinstance(log, list) or not all(isinstance(line, str) for line in log):
            raise FaultSpecError("log: must be a list of lines")
        fault = {"feature": name, "vmid": int(_number(spec, "vmid", minimum=1)) if "vmid" in spec else None,
                 "count": int(_number(spec, "count", minimum=1, default=1)),
                 "exit_code": int(_number(spec, "exit_code", minimum=1, maximum=255, default=1)),
                 "log": log, "seconds": _number(spec, "seconds", minimum=0, default=2.0)}
        with self._lock:
            self._feature.setdefault(name, []).append(dict(fault))
        return fault

    def take_feature_fault(self, vmid: int, name: str) -> dict[str, Any] | None:
        """The failure for this run of feature ``name`` in VM ``vmid``, consuming one."""
        with self._lock:
            queue = self._feature.get(name, [])
            fault = next((f for f in queue if f["vmid"] in (None, vmid)), None)
            if fault is None:
                return None
            fault["count"] -= 1
            if fault["count"] <= 0:
                queue.remove(fault)
            return dict(fault)

    def clear(self) -> None:
        with self._lock:
            self._endpoint.clear()
            self._task.clear()
            self._feature.clear()
            self.extra_latency_ms = 0.0
            self._hold_after, self.holding = None, False
            self._released.set()

    def hold_if_due(self, method: str) -> PVEError | None:
        """For a write past ``hold_after_writes``: block until the faults are cleared, then fail it (503)."""
        if method not in ("POST", "PUT", "DELETE"):
            return None
        with self._lock:
            if self._hold_after is None:
                return None
            self._writes_seen += 1
            if self._writes_seen <= self._hold_after:
                return None
            self.holding = True
        self._released.wait(600)
        return PVEError("held by the simulator (hold_after_writes) and released unanswered\n", status=503)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snapshot: dict[str, Any] = {"endpoints": [dict(f) for faults in self._endpoint.values() for f in faults],
                                        "tasks": [dict(f) for faults in self._task.values() for f in faults],
                                        "features": [dict(f) for faults in self._feature.values() for f in faults],
                                        "latency_ms": self.extra_latency_ms}
            if self._hold_after is not None:
                snapshot.update(hold_after_writes=self._hold_after, writes_seen=self._writes_seen,
                                holding=self.holding)
            return snapshot

    def take_endpoint_fault(self, key: str) -> PVEError | None:
        """The error to answer for this call of ``METHOD template``, consuming one injected failure."""
        fault = self._take(self._endpoint, key)
        if fault is None:
            return None
        message = fault["message"] if fault["message"].endswith("\n") else fault["message"] + "\n"
        return PVEError(message, status=fault["status"])

    def take_task_fault(self, task_type: str) -> str | None:
        fault = self._take(self._task, task_type)
        return None if fault is None else fault["message"]

    def _take(self, table: dict[str, list[dict[str, Any]]], key: str) -> dict[str, Any] | None:
        with self._lock:
            queue = table.get(key)
            if not queue:
                return None
            fault = queue[0]
            fault["count"] -= 1
            if fault["count"] <= 0:
                queue.pop(0)
                if not queue:
                    del table[key]
            return fault


class Stats:
    """Counts API calls by ``METHOD template``, and the most requests ever in flight at once (so
    tests show a client's concurrency without timing it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._in_flight = 0
        self._peak = 0

    def entered(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)

    def left(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._peak = self._in_flight

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"total": sum(self._counts.values()), "by_endpoint": dict(sorted(self._counts.items())),
                    "peak_in_flight": self._peak}


def _no_unknown(spec: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise FaultSpecError(f"{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})")


def _message(spec: dict[str, Any]) -> str:
    message = spec.get("message", "injected fault")
    if not isinstance(message, str) or not message.strip():
        raise FaultSpecError("message: must be a non-empty string")
    return message


def _number(spec: dict[str, Any], key: str, minimum: float | None = None, maximum: float | None = None,
            default: float | None = None) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultSpecError(f"{key}: must be a number")
    if minimum is not None and value < minimum:
        raise FaultSpecError(f"{key}: must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise FaultSpecError(f"{key}: must be at most {maximum}")
    return float(value)
