"""The plan as plain, serialisable data (like Terraform's ``plans`` package).

A plan is computed once (``phoenix/plan/build.py``), rendered separately
(``phoenix/plan/render.py``), saved with ``--out`` and executed by ``phoenix/apply``.  It holds
no secrets: user-data is re-rendered at apply time and checked against the fingerprint the
plan recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phoenix.diff.engine import AttributeChange
from phoenix.errors import PhoenixError
from phoenix.plan.steps import Step, step_from_json
from phoenix.text import printable


class PlanError(PhoenixError):
    """The desired state cannot be reached from here (e.g. shrinking a disk): named per VM."""

# 2.0: typed steps (``deliver_user_data`` carries the template's agent fact); a 1.0 plan is refused.
FORMAT_VERSION = "2.0"

CREATE, UPDATE, DELETE, REPLACE, NOOP = "create", "update", "delete", "replace", "no-op"


@dataclass
class ResourceChange:
    address: str                        # "template.8000" / "vm.8001"
    vmid: int
    kind: str                           # "template" | "vm"
    name: str
    node: str
    action: str                         # create | update | delete | replace | no-op
    changes: list[AttributeChange] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    depends_on: list[int] = field(default_factory=list)
    blocked: str = ""                   # why this change will not be applied (needs a flag)
    notes: list[str] = field(default_factory=list)
    digest: str | None = None           # PVE config digest seen at plan time (staleness check)

    @property
    def actionable(self) -> bool:
        return self.action != NOOP and not self.blocked and bool(self.steps)


@dataclass
class Drift:
    address: str
    vmid: int
    changes: list[AttributeChange]


@dataclass
class Plan:
    resource_changes: list[ResourceChange] = field(default_factory=list)
    resource_drift: list[Drift] = field(default_factory=list)
    state_lineage: str = ""
    state_serial: int = 0
    desired_fingerprint: str = ""
    operation: str = "apply"            # apply | destroy
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Differences inside running guests (plan --guest): {address, vmid, attribute, actual, desired, kind, note}
    guest_drift: list[dict[str, Any]] = field(default_factory=list)
    format_version: str = FORMAT_VERSION

    # --- summaries ---------------------------------------------------------------------------
    def counts(self, only: set[int] | None = None) -> dict[str, int]:
        """Terraform's summary: a replace counts as one add and one destroy.  ``only``: count just
        these VMIDs' changes (after an apply: the chains that succeeded)."""
        counts = {"add": 0, "change": 0, "destroy": 0}
        for rc in self.resource_changes:
            if rc.blocked or rc.action == NOOP or (only is not None and rc.vmid not in only):
                continue
            counts["add"] += rc.action in (CREATE, REPLACE)
            counts["change"] += rc.action == UPDATE
            counts["destroy"] += rc.action in (DELETE, REPLACE)
        return counts

    @property
    def has_changes(self) -> bool:
        return any(rc.action != NOOP for rc in self.resource_changes)

    def change_for(self, vmid: int) -> ResourceChange | None:
        return next((rc for rc in self.resource_changes if rc.vmid == vmid), None)

    # --- serialisation -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The machine-readable plan (``plan --json`` and ``--out`` files)."""
        data = asdict(self)
        for rc, change in zip(data["resource_changes"], self.resource_changes):
            rc["steps"] = [step.to_json() for step in change.steps]
            rc["actions"] = _terraform_actions(rc["action"])
            rc["before"] = {c["attribute"]: c["before"] for c in rc["changes"]}
            rc["after"] = {c["attribute"]: c["after"] for c in rc["changes"]}
        data["summary"] = self.counts()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Plan":
        if data.get("format_version") != FORMAT_VERSION:
            raise PhoenixError(f"plan file format_version {data.get('format_version')!r} is not {FORMAT_VERSION} "
                               f"(made by another phoenix version); run 'phoenix plan' again")
        changes = []
        for rc in data.get("resource_changes", []):
            rc = {k: v for k, v in rc.items() if k not in ("actions", "before", "after")}
            rc["changes"] = [AttributeChange(**c) for c in rc.get("changes", [])]
            rc["steps"] = [step_from_json(s) for s in rc.get("steps", [])]
            changes.append(ResourceChange(**rc))
        drift = [Drift(d["address"], d["vmid"], [AttributeChange(**c) for c in d["changes"]])
                 for d in data.get("resource_drift", [])]
        fields = {k: data[k] for k in ("state_lineage", "state_serial", "desired_fingerprint", "operation",
                                       "options", "warnings", "guest_drift") if k in data}
        return cls(resource_changes=changes, resource_drift=drift, **fields)

    def save(self, path: Path, mac: Callable[[dict[str, Any]], str] | None = None) -> None:
        """Write the plan atomically, mode 0600 from creation; ``mac`` seals it (phoenix/plan/seal.py)."""
        data = self.to_json()
        if mac is not None:
            data["mac"] = mac(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> "Plan":
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise PhoenixError(f"{path}: no such plan file") from None
        except (OSError, ValueError, RecursionError) as exc:
            raise PhoenixError(f"{path}: not a phoenix plan file ({type(exc).__name__})") from None
        return cls.load_data(data, path)

    @classmethod
    def load_data(cls, data: Any, path: Path) -> "Plan":
        """``from_json`` with every malformed field a one-line error naming the file."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            return cls.from_json(data)
        except PhoenixError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PhoenixError(f"{path}: not a phoenix plan file ({printable(exc)})") from None


def _terraform_actions(action: str) -> list[str]:
    return {CREATE: ["create"], UPDATE: ["update"], DELETE: ["delete"], REPLACE: ["delete", "create"],
            NOOP: ["no-op"]}[action]
