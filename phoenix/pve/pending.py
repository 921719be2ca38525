"""A VM's config as ``GET /pending`` reports it: the current value and the pending value of every key.

``GET /config`` merges pending values in, so a memory change someone made on a running VM
(pending until its next boot) looks applied.  ``GET /pending`` costs the same one call and keeps
both apart (plus the digest), which is what phoenix needs to tell three cases apart:

* desired = current, a pending value differs → revert the pending value (no reboot);
* desired = pending ≠ current → the change is written, it waits for a reboot;
* desired ≠ both → write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["PendingConfig", "parse_pending"]


@dataclass(frozen=True)
class PendingConfig:
    """``current``: the main section (what runs now); ``pending``: key → value written but not applied;
    ``deletes``: keys whose removal is pending."""

    current: Mapping[str, Any]
    pending: Mapping[str, Any] = field(default_factory=dict)
    deletes: frozenset[str] = frozenset()
    digest: str | None = None

    def merged(self) -> dict[str, Any]:
        """What ``GET /config`` would answer (pending values merged in, pending deletions gone)."""
        merged = {k: v for k, v in self.current.items() if k not in self.deletes}
        merged.update(self.pending)
        if self.digest is not None:
            merged["digest"] = self.digest
        return merged

    def current_config(self) -> dict[str, Any]:
        """The main section, with the digest (what writes pass back)."""
        config = dict(self.current)
        if self.digest is not None:
            config["digest"] = self.digest
        return config

    @property
    def has_pending(self) -> bool:
        return bool(self.pending or self.deletes)

    def pending_keys(self) -> list[str]:
        return sorted(set(self.pending) | set(self.deletes))


def parse_pending(items: Any) -> PendingConfig:
    """``[{key, value?, pending?, delete?}, …]`` → :class:`PendingConfig` (unknown shapes ignored)."""
    current: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    deletes: set[str] = set()
    digest = None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        key = item["key"]
        if key == "digest":
            digest = str(item.get("value")) if item.get("value") is not None else None
            continue
        if "value" in item:
            current[key] = item["value"]
        if "pending" in item:
            pending[key] = item["pending"]
        if item.get("delete"):
            deletes.add(key)
    return PendingConfig(current=current, pending=pending, deletes=frozenset(deletes), digest=digest)
