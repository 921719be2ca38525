"""Which VMs are phoenix's: the ownership marker in a VM's ``description``.

phoenix must never delete, clone over, reconfigure or adopt a VM it did not make, and two state
files on one cluster must never claim the same VM.  The state file alone cannot prove either (a
record is written *before* a clone starts, and another client may take the VMID meanwhile), so
the proof lives in PVE: every VM and template phoenix creates carries one line

    phoenix-owner: <lineage of the state that made it> vmid=<its VMID>

in its ``description``, sent in the create/clone request itself, so it exists from the moment the
VM is finished.  The VMID is part of the line because PVE copies a template's description into
every clone: a VM someone else cloned from phoenix's template inherits the template's line, which
names the template's VMID, not the clone's — so it does not count as phoenix's.  ``phoenix import VMID`` writes the line onto an existing VM; nothing else does.

The line is kept apart from whatever else the description says (a template's image facts, a
user's text): :func:`strip_marker` gives the rest, :func:`with_marker` puts the line back, so a
user-declared description can be compared and written without touching ownership.

A VM still being made has no description yet: PVE writes ``lock: create`` (create) or the
``# qmclone temporary file`` stub with ``lock: clone`` (clone) first.  :func:`is_stub` recognises
those; their ownership is unknown until the task that holds the lock ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from phoenix.errors import PhoenixError

__all__ = ["MARKER_KEY", "marker_line", "owner_of", "with_marker", "strip_marker", "owner_tag", "Ownership",
           "ownership", "is_stub", "NotOwnedError", "not_owned_message"]

MARKER_KEY = "phoenix-owner"
_MARKER_RE = re.compile(rf"^[ \t]*{MARKER_KEY}:[ \t]*(\S+)[ \t]+vmid=(\d+)[ \t]*$", re.MULTILINE)
_MARKER_LINE_RE = re.compile(rf"^[ \t]*{MARKER_KEY}:.*(?:\n|$)", re.MULTILINE)
CLONE_STUB_DESCRIPTION = "qmclone temporary file"


def marker_line(lineage: str, vmid: int) -> str:
    """The one line phoenix adds to a description (no newline)."""
    if not lineage or any(ch.isspace() for ch in lineage):
        raise ValueError(f"not a state lineage: {lineage!r}")
    return f"{MARKER_KEY}: {lineage} vmid={int(vmid)}"


def owner_of(description: Any, vmid: int) -> str | None:
    """The lineage named by the marker for ``vmid`` in ``description``, or None when there is none.

    Markers for other VMIDs (inherited from a template by a clone) do not count; two marker lines
    for this VMID that disagree count as no owner (nobody can prove the VM is theirs)."""
    owners = {lineage for lineage, marked in _MARKER_RE.findall(str(description or "")) if int(marked) == int(vmid)}
    return owners.pop() if len(owners) == 1 else None


def strip_marker(description: Any) -> str:
    """``description`` without phoenix's marker line(s): what a user or the template wrote."""
    return _MARKER_LINE_RE.sub("", str(description or "")).rstrip("\n")


def with_marker(description: Any, lineage: str, vmid: int) -> str:
    """``description`` with exactly one marker line (``lineage``, ``vmid``) after the rest; marker
    lines for other VMIDs (a template's, copied by the clone) are dropped."""
    rest = strip_marker(description)
    line = marker_line(lineage, vmid)
    return f"{rest}\n{line}\n" if rest else f"{line}\n"


def owner_tag(lineage: str) -> str:
    """A short, file-name-safe token of the lineage: names of phoenix's temporary files and staging
    images carry it, so a leftover sweep removes only what this state's runs left behind."""
    tag = re.sub(r"[^a-zA-Z0-9]", "", lineage)[:8].lower()
    if not tag:
        raise ValueError(f"not a state lineage: {lineage!r}")
    return f"p{tag}"


def is_stub(config: dict[str, Any]) -> bool:
    """PVE's placeholder while a create or clone task runs (or after it died): no marker possible yet."""
    lock = config.get("lock")
    if lock == "create":
        return True
    return lock == "clone" and str(config.get("description", "")).strip() == CLONE_STUB_DESCRIPTION


@dataclass(frozen=True)
class Ownership:
    """``ours``: marker of this lineage; ``other``: marker of another state; ``none``: no marker;
    ``stub``: a create/clone placeholder (ownership unknown until its task ends)."""

    verdict: Literal["ours", "other", "none", "stub"]
    owner: str | None = None

    @property
    def ours(self) -> bool:
        return self.verdict == "ours"


def ownership(config: dict[str, Any] | None, lineage: str, vmid: int) -> Ownership:
    """Classify VM ``vmid``'s config (as ``GET /config`` returns it) against this state's ``lineage``."""
    config = config or {}
    owner = owner_of(config.get("description"), vmid)
    if owner is None:
        return Ownership("stub" if is_stub(config) else "none")
    return Ownership("ours" if owner == lineage else "other", owner)


def not_owned_message(vmid: int, name: str | None, node: str | None, owned: Ownership, doing: str = "") -> str:
    """The one-line error for a VM phoenix must not touch, naming the VM and the way out."""
    what = f"VM {vmid}" + (f" ('{name}')" if name else "") + (f" on node '{node}'" if node else "")
    if owned.verdict == "other":
        why = (f"belongs to another phoenix state (lineage {owned.owner}); two states never share a VM — "
               f"remove it from one desired file, or `phoenix destroy --force {vmid}` with the state that owns it")
    else:
        why = (f"was not created by this phoenix state (its description has no '{MARKER_KEY}' line); phoenix does "
               f"not delete, clone over, reconfigure or adopt it — adopt it with `phoenix import {vmid}`, "
               f"remove it with `phoenix destroy --force {vmid}`, or pick another vmid")
    return f"{what} {why}" + (f" (while {doing})" if doing else "")


class NotOwnedError(PhoenixError):
    """Raised where phoenix was about to touch a VM without its marker."""

    def __init__(self, vmid: int, name: str | None, node: str | None, owned: Ownership, doing: str = ""):
        super().__init__(not_owned_message(vmid, name, node, owned, doing))
        self.vmid = vmid
        self.ownership = owned
