"""The feature runner's contract: where it lives in the guest, what it writes, and how to read it.

The runner is a bash script (``runner.sh`` next to this module) that cloud-init starts once from
``runcmd`` as ``RUNNER_PATH feature1 feature2 …``.  It writes ``STATUS_PATH``, a small JSON file::

    {"format": 1, "instance_id": "…", "state": "running"|"done", "started": "…Z", "finished": "…Z"|null,
     "exit_code": 0|1|null, "features": [{"name": "docker", "state": "pending"|"running"|"done",
     "started": "…Z", "log": "/var/log/phoenix/feature-docker.log", "exit_code": 6, "duration_s": 165,
     "log_tail": ["…last ~20 lines…"]}]}

Everything read from a guest is untrusted: :func:`parse_status` checks every type, bounds every
string and list, and raises :class:`StatusError` with one line when the file is not that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["RUNNER_PATH", "FEATURE_DIR", "LOG_DIR", "STATUS_PATH", "CLOUD_INIT_RESULT", "INSTANCE_ID_PATH",
           "TAIL_LINES", "runner_script", "feature_script_path", "feature_log_path", "FeatureResult",
           "RunnerStatus", "StatusError", "parse_status", "parse_cloud_init_result"]

RUNNER_PATH = "/usr/local/sbin/phoenix-features"
FEATURE_DIR = "/var/lib/phoenix/features"
LOG_DIR = "/var/log/phoenix"
STATUS_PATH = "/var/lib/phoenix/status.json"
CLOUD_INIT_RESULT = "/run/cloud-init/result.json"      # written when cloud-init's final stage ends (tmpfs)
INSTANCE_ID_PATH = "/var/lib/cloud/data/instance-id"   # the instance-id cloud-init runs under now
TAIL_LINES = 20
MAX_STATUS_BYTES = 1 << 20
_MAX_TEXT = 2000
_MAX_FEATURES = 200


@cache
def runner_script() -> str:
    return resources.files("phoenix.guest").joinpath("runner.sh").read_text(encoding="utf-8")


def feature_script_path(name: str) -> str:
    return f"{FEATURE_DIR}/{name}.sh"


def feature_log_path(name: str) -> str:
    return f"{LOG_DIR}/feature-{name}.log"


class StatusError(ValueError):
    """The status file (or cloud-init's result) is not what the runner writes; one-line message."""


@dataclass(frozen=True)
class FeatureResult:
    name: str
    state: str                      # pending | running | done
    exit_code: int | None = None
    started: str | None = None
    duration_s: int | None = None
    log_tail: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.state == "done" and self.exit_code != 0

    @property
    def last_line(self) -> str:
        return next((line.strip() for line in reversed(self.log_tail) if line.strip()), "")


@dataclass(frozen=True)
class RunnerStatus:
    instance_id: str
    state: str                      # running | done
    started: str | None
    finished: str | None
    exit_code: int | None
    features: tuple[FeatureResult, ...]

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def failed(self) -> tuple[FeatureResult, ...]:
        return tuple(f for f in self.features if f.failed)

    def to_json(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "state": self.state, "started": self.started,
                "finished": self.finished, "exit_code": self.exit_code,
                "features": [{"name": f.name, "state": f.state, "exit_code": f.exit_code, "started": f.started,
                              "duration_s": f.duration_s, "log_tail": list(f.log_tail)} for f in self.features]}


def _text(value: Any, where: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise StatusError(f"status file: {where} must be a string")
    return value[:_MAX_TEXT]


def _int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StatusError(f"status file: {where} must be an integer")
    return value


def _feature(item: Any, index: int) -> FeatureResult:
    where = f"features[{index}]"
    if not isinstance(item, dict):
        raise StatusError(f"status file: {where} must be an object")
    state = item.get("state")
    if state not in ("pending", "running", "done"):
        raise StatusError(f"status file: {where}.state must be pending, running or done")
    tail = item.get("log_tail", [])
    if not isinstance(tail, list):
        raise StatusError(f"status file: {where}.log_tail must be a list")
    return FeatureResult(
        name=_text(item.get("name"), f"{where}.name") or "", state=state,
        exit_code=_int(item.get("exit_code"), f"{where}.exit_code"),
        started=_text(item.get("started"), f"{where}.started", optional=True),
        duration_s=_int(item.get("duration_s"), f"{where}.duration_s"),
        log_tail=tuple(_text(line, f"{where}.log_tail[{n}]") or "" for n, line in enumerate(tail[-TAIL_LINES:])))


def _load(text: str | bytes, what: str) -> Any:
    if len(text) > MAX_STATUS_BYTES:
        raise StatusError(f"{what}: larger than {MAX_STATUS_BYTES} bytes")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatusError(f"{what}: not JSON ({str(exc).splitlines()[0][:120]})") from None


def parse_status(text: str | bytes) -> RunnerStatus:
    data = _load(text, "status file")
    if not isinstance(data, dict) or data.get("format") != 1:
        raise StatusError("status file: not a phoenix runner status (format 1)")
    if data.get("state") not in ("running", "done"):
        raise StatusError("status file: state must be running or done")
    features = data.get("features")
    if not isinstance(features, list) or len(features) > _MAX_FEATURES:
        raise StatusError("status file: features must be a list")
    return RunnerStatus(
        instance_id=_text(data.get("instance_id"), "instance_id") or "", state=data["state"],
        started=_text(data.get("started"), "started", optional=True),
        finished=_text(data.get("finished"), "finished", optional=True),
        exit_code=_int(data.get("exit_code"), "exit_code"),
        features=tuple(_feature(item, n) for n, item in enumerate(features)))


def parse_cloud_init_result(text: str | bytes) -> list[str]:
    """The errors cloud-init recorded in ``result.json`` (``{"v1": {"datasource": …, "errors": […]}}``)."""
    data = _load(text, "cloud-init result.json")
    v1 = data.get("v1") if isinstance(data, dict) else None
    if not isinstance(v1, dict) or not isinstance(v1.get("errors", []), list):
        raise StatusError("cloud-init result.json: no v1.errors list")
    return [str(e)[:_MAX_TEXT] for e in v1.get("errors", [])[:50]]
