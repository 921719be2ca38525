"""A VM's config lock and the task behind it: waiting for a live one, naming a dead one at once.

PVE writes ``lock: <kind>`` into a VM's config while a task works on it (``create``, ``clone``,
``destroyed``…) and removes it when the task ends.  If the task's worker dies (node rebooted,
daemon killed) the lock stays forever: waiting for it is pointless.  So when phoenix meets a lock
it asks the node which tasks run (``GET /nodes/{node}/tasks?source=active``); when none of the
kind that takes that lock is running, the lock is stale, and the error says which lock, which
task (the newest finished one of that kind, e.g. ``unexpected status`` for a dead worker) and how
to clear it.

Clearing through the API (what ``phoenix apply --unlock-stale`` does) is
``PUT /nodes/{node}/qemu/{vmid}/config`` with ``delete=lock`` and ``skiplock=1``: qemu-server's
``update_vm_api`` allows both only for ``root@pam`` itself — an API token (``root@pam!name``)
gets 400 ``skiplock: Only root may use this option.`` and ``only root can set 'lock' config``
(docs/pve-locks.md).  Otherwise ``qm unlock VMID`` on the node is the way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from phoenix.errors import PhoenixError

__all__ = ["LOCK_TASK_TYPES", "LockHolder", "StaleLockError", "lock_holder", "wait_unlocked", "clear_stale_lock",
           "stale_lock_message"]

# lock kind -> task types (PVE's worker types) that take it; the task id is the VMID except for a
# clone, whose task id is the *source* VMID.  ``suspended`` is a state, not a task: never stale.
LOCK_TASK_TYPES: dict[str, tuple[str, ...]] = {
    "create": ("qmcreate",), "import": ("qmcreate",), "clone": ("qmclone",), "destroyed": ("qmdestroy",),
    "migrate": ("qmigrate", "qmremotemigrate"), "backup": ("vzdump",), "snapshot": ("qmsnapshot",),
    "snapshot-delete": ("qmdelsnapshot",), "rollback": ("qmrollback",), "suspending": ("qmsuspend",),
    "restore": ("qmrestore",),
}
RECHECK_S = 5.0          # while waiting for a live lock, ask again whether its task still runs


@dataclass(frozen=True)
class LockHolder:
    """What holds (held) ``lock`` on ``vmid``: ``running`` False means the lock is stale."""

    vmid: int
    node: str
    lock: str
    running: bool
    upid: str | None = None
    exitstatus: str | None = None
    task_type: str | None = None

    @property
    def stale(self) -> bool:
        return not self.running


class StaleLockError(PhoenixError):
    """A VM is locked by a task that no longer runs."""

    def __init__(self, holder: LockHolder):
        super().__init__(stale_lock_message(holder))
        self.holder = holder


def stale_lock_message(holder: LockHolder) -> str:
    if holder.upid:
        task = f"task {holder.upid}" + (f" ended ({holder.exitstatus})" if holder.exitstatus else " is not running")
    else:
        task = f"no {'/'.join(LOCK_TASK_TYPES.get(holder.lock, ('matching',)))} task runs on node '{holder.node}'"
    return (f"VM {holder.vmid} is locked ({holder.lock}) but the task that took the lock is gone: {task}. "
            f"Clear it with `qm unlock {holder.vmid}` on node '{holder.node}', or run `phoenix apply --unlock-stale` "
            f"(phoenix's own VMs only; PVE lets only root@pam with a password clear locks through the API), "
            f"then apply again")


def _task_matches(task: dict[str, Any], types: tuple[str, ...], ids: set[str] | None) -> bool:
    return task.get("type") in types and (ids is None or str(task.get("id", "")) in ids)


def lock_holder(client: Any, node: str, vmid: int, lock: str, source_vmid: int | None = None) -> LockHolder:
    """Is a task that takes ``lock`` running for ``vmid`` on ``node``?  Two GETs at most.

    For a ``clone`` lock the task's id is the source; without ``source_vmid`` any running clone on
    the node counts as the holder (never call a lock stale that may be live)."""
    types = LOCK_TASK_TYPES.get(lock)
    if types is None:
        return LockHolder(vmid, node, lock, running=True)      # not a task's lock: nothing to judge
    if lock == "clone":
        ids = {str(source_vmid)} if source_vmid is not None else None
    else:
        ids = {str(vmid)}
    active = client.get(f"/nodes/{node}/tasks", source="active", limit=1000) or []
    for task in active:
        if _task_matches(task, types, ids):
            return LockHolder(vmid, node, lock, True, task.get("upid"), None, task.get("type"))
    if ids is None:
        return LockHolder(vmid, node, lock, False, task_type=types[0])
    newest: dict[str, Any] | None = None
    for task_type in types:
        for task in client.get(f"/nodes/{node}/tasks", typefilter=task_type, vmid=next(iter(ids)), limit=1) or []:
            if newest is None or int(task.get("starttime", 0)) > int(newest.get("starttime", 0)):
                newest = task
    if newest is None:
        return LockHolder(vmid, node, lock, False, task_type=types[0])
    return LockHolder(vmid, node, lock, False, newest.get("upid"), str(newest.get("status") or "") or None,
                      newest.get("type"))


def wait_unlocked(client: Any, node: str, vmid: int, *, timeout: float, source_vmid: int | None = None,
                  on_wait: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Poll the config until it has no lock; raise :class:`StaleLockError` as soon as the lock's
    task is found not running (checked at the first sight of the lock, then every RECHECK_S)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    next_check = 0.0
    path = f"/nodes/{node}/qemu/{vmid}/config"
    while True:
        config: dict[str, Any] = client.get(path)
        lock = config.get("lock")
        if not lock:
            return config
        now = time.monotonic()
        if now >= next_check:
            holder = lock_holder(client, node, vmid, str(lock), source_vmid)
            if holder.stale:
                # The task may have ended between our two reads and removed the lock: look once more.
                if not client.get(path).get("lock"):
                    continue
                raise StaleLockError(holder)
            if next_check and on_wait is not None:
                on_wait(f"waiting for {holder.task_type or 'the task'} to release lock '{lock}'")
            next_check = now + RECHECK_S
        if now > deadline:
            raise PhoenixError(f"VM {vmid} is still locked ({lock}) after {timeout:.0f}s; its task is still running")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def clear_stale_lock(client: Any, holder: LockHolder) -> None:
    """Remove a stale lock through the API (root@pam only; see the module doc)."""
    from phoenix.pve.client import PVEApiError

    if not holder.stale:
        raise PhoenixError(f"VM {holder.vmid}: lock '{holder.lock}' is held by a running task; not clearing it")
    try:
        client.put(f"/nodes/{holder.node}/qemu/{holder.vmid}/config", delete="lock", skiplock=1)
    except PVEApiError as exc:
        if exc.status in (400, 403, 500) and ("skiplock" in exc.errors or "only root" in exc.message.lower()):
            raise PhoenixError(f"VM {holder.vmid}: PVE clears a lock through the API only for root@pam logged in with "
                               f"a password (not an API token: {exc.message}); run `qm unlock {holder.vmid}` on node "
                               f"'{holder.node}'") from None
        raise
