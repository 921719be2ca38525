"""The apply journal: what every completed step made true is recorded in the state at once.

Each record goes through ``StateStore.record`` (an append of the changed records only: O(1) per
step, see phoenix/state/journal.py), folded into the state file when the run ends.

So an interrupted apply leaves a true record: the next plan compares the file with what PVE
really has and shows only what remains — that is how phoenix resumes (every step is idempotent,
and the plan is computed afresh from the facts; no list of finished steps is needed).  A record is created *before* a VM is cloned, so a
crash between PVE creating the VM and phoenix noting it can never leave an unmanaged VM behind.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from phoenix.state.model import ResourceState, State, utc_now
from phoenix.state.store import StateStore


class Journal:
    """Thread-safe recorder of step results into one State, persisted through a StateStore."""

    def __init__(self, store: StateStore, state: State):
        self.store = store
        self.state = state
        self._lock = threading.RLock()        # guards ``state`` (held while it is written, too)
        self._write_lock = threading.Lock()   # one writer at a time
        self._changes = 0                     # mutations so far
        self._saved = 0                       # mutations contained in the file
        self._dirty: set[int] = set()         # VMIDs changed since the last record

    def begin(self, vmid: int, kind: Literal["template", "vm"], name: str, node: str, template_vmid: int | None = None) -> None:
        """Make sure a record exists before the first change to PVE (no-op if it does)."""
        with self._lock:
            record = self.state.get(vmid)
            if record is not None:
                return
            self.state.put(ResourceState(kind=kind, vmid=vmid, name=name, node=node, template_vmid=template_vmid))
            self._save(vmid)

    def record(self, vmid: int, attributes: dict[str, Any] | None = None,
               fingerprints: dict[str, str] | None = None, **fields: Any) -> None:
        """Record what one completed step made true (attributes, fingerprints, node…)."""
        with self._lock:
            record = self.state.get(vmid)
            if record is None:
                return
            update: dict[str, Any] = dict(fields)
            if attributes:
                update["attributes"] = {**record.attributes, **attributes}
            if fingerprints:
                update["fingerprints"] = {**record.fingerprints, **fingerprints}
            update["updated_at"] = utc_now()
            self.state.put(record.model_copy(update=update))
            self._save(vmid)

    def taint(self, vmid: int, reason: str) -> None:
        """The resource's chain failed: remember why, so the next plan acts on it."""
        self.record(vmid, tainted=reason[:500])

    def untaint(self, vmid: int) -> None:
        """The resource's chain succeeded: it runs as declared."""
        with self._lock:
            record = self.state.get(vmid)
            if record is None or record.tainted is None:
                return
        self.record(vmid, tainted=None)

    def forget(self, vmid: int) -> None:
        with self._lock:
            if self.state.remove(vmid) is not None:
                self._save(vmid)

    def _save(self, vmid: int) -> None:
        """Called with ``_lock`` held right after a mutation; returns once a write containing it
        is on disk.  Group commit: chains finishing steps at once share one journal line (and
        one fsync), instead of queueing one write per step."""
        self._changes += 1
        self._dirty.add(vmid)
        mine = self._changes
        self._lock.release()
        try:
            with self._write_lock:
                if self._saved >= mine:
                    return
                with self._lock:
                    covered = self._changes
                    dirty, self._dirty = self._dirty, set()
                    try:
                        self.store.record(self.state, dirty)
                    except BaseException:
                        self._dirty |= dirty   # the next write must still carry them
                        raise
                self._saved = covered
        finally:
            self._lock.acquire()
