"""The state lock: one phoenix run changes a state file at a time.

The lock is an OS ``flock`` on ``<state>.lock`` plus a JSON note in that file saying who holds it
(id, operation, user@host, pid, created).  ``flock`` is released by the kernel when its holder
dies, so a crashed run never blocks the next one: a note left behind without a live ``flock`` is
recognised as stale and taken over.  A second live holder fails at once, naming the holder.
``force_unlock`` exists for a holder that hangs: it removes the lock file (the hung process keeps
a lock on an unlinked file, which no longer blocks anyone), but only when the id matches.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from phoenix.errors import PhoenixError
from phoenix.state.model import utc_now

__all__ = ["LockInfo", "StateLock", "read_lock_info", "force_unlock"]


@dataclass(frozen=True)
class LockInfo:
    id: str
    operation: str
    who: str
    pid: int
    created: str

    def describe(self) -> str:
        return f"{self.who} (pid {self.pid}, operation '{self.operation}', since {self.created}, lock id {self.id})"


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def read_lock_info(lock_path: Path) -> LockInfo | None:
    """The note in the lock file, or ``None`` when there is no (readable) note."""
    try:
        raw = json.loads(lock_path.read_text(encoding="utf-8"))
        return LockInfo(id=str(raw["id"]), operation=str(raw["operation"]), who=str(raw["who"]),
                        pid=int(raw["pid"]), created=str(raw["created"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class StateLock:
    """Context manager holding the lock; ``info`` says who we are, ``stale`` a crashed predecessor."""

    def __init__(self, lock_path: Path, operation: str):
        self.path = lock_path
        self.operation = operation
        self.info: LockInfo | None = None
        self.stale: LockInfo | None = None
        self._fd: int | None = None

    def acquire(self) -> LockInfo:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PhoenixError(f"cannot create the state directory {self.path.parent}: {exc.strerror or exc}") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                kind = ("is a directory" if exc.errno == errno.EISDIR else
                        "is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or str(exc))
                raise PhoenixError(f"cannot take the state lock {self.path}: it {kind}" if exc.errno in
                                   (errno.EISDIR, errno.ELOOP) else
                                   f"cannot take the state lock {self.path}: {kind}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = read_lock_info(self.path)
                who = holder.describe() if holder else "another process (no lock note yet)"
                raise PhoenixError(f"state is locked by {who}; if that run hung, "
                                   f"`phoenix force-unlock {holder.id if holder else '<id>'}` releases it") from None
            if self._same_file(fd):
                break
            os.close(fd)  # the file was removed/replaced while we waited: lock the current one
        self.stale = read_lock_info(self.path)
        self.info = LockInfo(id=str(uuid.uuid4()), operation=self.operation, who=_who(), pid=os.getpid(),
                             created=utc_now())
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(self.info), indent=2) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        self._fd = fd
        return self.info

    def _same_file(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file while still holding the flock (so no one sees our note as stale)."""
        if self._fd is None:
            return
        try:
            if self._same_file(self._fd):
                os.unlink(self.path)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> LockInfo:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def force_unlock(lock_path: Path, lock_id: str) -> LockInfo:
    """Remove the lock file if its note carries ``lock_id``; return the note that was removed."""
    holder = read_lock_info(lock_path)
    if holder is None:
        raise PhoenixError(f"no lock to remove at {lock_path}")
    if holder.id != lock_id:
        raise PhoenixError(f"lock id does not match: the state is locked by {holder.describe()}")
    os.unlink(lock_path)
    return holder
