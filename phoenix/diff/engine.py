"""Three-way comparison of one resource: desired (the file), recorded (state) and actual (PVE).

* ``changes`` — what apply must do: the current value (actual for what PVE shows, the state's
  record for what it cannot show, such as the user-data fingerprint) against the desired one.
* ``drift`` — what changed outside phoenix: the state's record against PVE, like Terraform's
  "objects have changed outside of Terraform".

Only keys present in the desired view are ever compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from phoenix.diff.attributes import STATE_TRACKED


@dataclass(frozen=True)
class AttributeChange:
    """One attribute going from ``before`` to ``after`` (None = absent)."""

    attribute: str
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ResourceDiff:
    changes: list[AttributeChange] = field(default_factory=list)
    drift: list[AttributeChange] = field(default_factory=list)

    @property
    def changed_attributes(self) -> set[str]:
        return {c.attribute for c in self.changes}


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[AttributeChange]:
    """Attribute-level differences between two flat views, in a stable (sorted) order."""
    if _identical(before, after):
        return []        # the common case (a converged VM): no DeepDiff, whose import pulls in numpy
    from deepdiff import DeepDiff

    # threshold_to_diff_deeper=0: never collapse a very different dict into one root-level change.
    diff = DeepDiff(before, after, ignore_order=False, ignore_numeric_type_changes=True, threshold_to_diff_deeper=0)
    keys = sorted(str(k) for k in diff.affected_root_keys)
    return [AttributeChange(k, before.get(k), after.get(k)) for k in keys]


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _identical(a: Any, b: Any) -> bool:
    """Equal with exactly the same types all the way down (so DeepDiff could find nothing either).

    Scalars are compared inline rather than by a call each: a plan compares two views of ~30
    attributes per VM, most of them strings and numbers."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind in _SCALARS:
        return bool(a == b)
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return False
        for key, value in a.items():
            other = b[key]
            if type(value) is not type(other):
                return False
            if not (value == other if type(value) in _SCALARS else _identical(value, other)):
                return False
        return True
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    return bool(a == b)


def diff_resource(desired: dict[str, Any], actual: dict[str, Any] | None,
                  recorded: dict[str, Any] | None) -> ResourceDiff:
    """Compare one VM's three views, restricted to the keys phoenix declares."""
    recorded = recorded or {}
    observable = [k for k in desired if k not in STATE_TRACKED]
    if actual is None:
        return ResourceDiff(changes=compare({}, desired))
    current = {k: actual.get(k) for k in observable}      # absent in PVE = None (a removed option)
    for key in STATE_TRACKED:
        if key in desired and key in recorded:
            current[key] = recorded[key]
        elif key in desired:
            # Not recorded (e.g. an imported VM): assume it matches rather than force a rewrite.
            current[key] = desired[key]
    changes = compare(current, desired)
    seen = [k for k in observable if k in recorded]
    drift = compare({k: recorded[k] for k in seen}, {k: actual.get(k) for k in seen})
    return ResourceDiff(changes=changes, drift=drift)
