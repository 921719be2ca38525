"""Per-VM locks emulating PVE's ``flock`` on ``/var/lock/qemu-server/lock-<vmid>.conf``.

PVE serialises config changes with a file lock (shared for clones of a stopped source, exclusive
otherwise) and gives up after a timeout with a well-known message that clients retry on.  The
simulator reproduces the semantics in-process: shared/exclusive, re-entrant per thread (PVE keeps
one handle per process and file), and the exact timeout text.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from phoenix.sim.core import PVEError

__all__ = ["VMLocks", "lock_path", "lock_timeout_error"]


def lock_path(vmid: int) -> str:
    return f"/var/lock/qemu-server/lock-{int(vmid)}.conf"


def lock_timeout_error(vmid: int) -> PVEError:
    """``lock_file_full`` prefixes the file, ``run_with_timeout`` dies ``got timeout``."""
    return PVEError(f"can't lock file '{lock_path(vmid)}' - got timeout\n")


class _LockState:
    __slots__ = ("exclusive_owner", "exclusive_depth", "shared")

    def __init__(self) -> None:
        self.exclusive_owner: int | None = None
        self.exclusive_depth = 0
        self.shared: dict[int, int] = {}     # thread id -> depth

    def idle(self) -> bool:
        return self.exclusive_owner is None and not self.shared


class VMLocks:
    """All VM flocks of one simulator; ``vm()`` is the only entry point handlers need."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._locks: dict[int, _LockState] = {}

    @contextmanager
    def vm(self, vmid: int, shared: bool = False, timeout: float = 10) -> Iterator[None]:
        """Hold the VM's lock for the ``with`` block; raise PVE's timeout error if it is not free in time."""
        vmid = int(vmid)
        me = threading.get_ident()
        deadline = time.monotonic() + max(0.0, float(timeout))
        with self._cond:
            state = self._locks.setdefault(vmid, _LockState())
            while not self._can_take(state, me, shared):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if state.idle():
                        self._locks.pop(vmid, None)
                    raise lock_timeout_error(vmid)
                self._cond.wait(remaining)
                state = self._locks.setdefault(vmid, _LockState())
            if shared and state.exclusive_owner != me:
                state.shared[me] = state.shared.get(me, 0) + 1
                mode = "shared"
            else:
                state.exclusive_owner = me
                state.exclusive_depth += 1
                mode = "exclusive"
        try:
            yield
        finally:
            with self._cond:
                state = self._locks[vmid]
                if mode == "shared":
                    state.shared[me] -= 1
                    if not state.shared[me]:
                        del state.shared[me]
                else:
                    state.exclusive_depth -= 1
                    if not state.exclusive_depth:
                        state.exclusive_owner = None
                if state.idle():
                    del self._locks[vmid]
                self._cond.notify_all()

    @staticmethod
    def _can_take(state: _LockState, me: int, shared: bool) -> bool:
        if state.exclusive_owner == me:
            return True                      # re-entrant: the holder may nest either kind
        if state.exclusive_owner is not None:
            return False
        if shared:
            return True
        # exclusive: only if nobody else holds it shared (upgrading our own shared hold is allowed)
        return all(owner == me for owner in state.shared)

    def held(self, vmid: int) -> str | None:
        """``"exclusive"``, ``"shared"`` or None — for tests and diagnostics."""
        with self._cond:
            state = self._locks.get(int(vmid))
            if state is None:
                return None
            return "exclusive" if state.exclusive_owner is not None else "shared"
