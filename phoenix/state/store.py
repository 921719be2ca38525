"""Reading and writing the state file so that a crash at any moment leaves a usable state.

A write goes to a temporary file in the same directory, is fsynced, and renamed over the state
(rename is atomic); the previous state is first hard-linked to ``<path>.backup``, so the state
file itself never goes missing.  Files are created 0600: the state names hosts and users.

During a run, :meth:`StateStore.record` appends only the changed records to the journal
(:mod:`phoenix.state.journal`, O(1) per step); :meth:`read` replays it, and the journal is folded
into the state file when the lock is released and whenever it outgrows the state file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from phoenix.errors import PhoenixError
from phoenix.state.journal import StateJournal
from phoenix.state.lock import LockInfo, StateLock, force_unlock, read_lock_info
from phoenix.state.model import FORMAT_VERSION, State, first_error

__all__ = ["StateStore"]

# The journal is folded into the state file once it is larger than this or than the state file
# (whichever is more): amortised, each step still costs O(its own record) in bytes written.
JOURNAL_MIN_FOLD_BYTES = 256 * 1024

log = logging.getLogger(__name__)


class StateStore:
    """The state file at ``path`` with its ``.backup`` and ``.lock`` siblings."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.journal = StateJournal(self.path.with_name(self.path.name + ".journal"))
        self._file_size = 0      # bytes of the state file at the last read/write (the fold bound)
        self.bytes_written = 0   # state + journal bytes this store wrote (bench/apply_thousand.py)
        self.journal_bytes = 0   # of which journal appends
        # (file signature, lineage, serial) of the version this store last read or wrote: a write
        # need not re-parse a file that nobody else touched since (an apply writes after every step).
        self._known: tuple[tuple[int, int, int], str, int] | None = None

    def read(self) -> State:
        """The stored state with its journal replayed; a missing file is an empty state with a new lineage."""
        for _ in range(5):
            before = self._signature()
            state = self._read_file()
            self._remember(state)
            self.journal.replay(state, state_file_exists=before is not None)
            if self._signature() == before:   # no fold replaced the file while we read the journal
                return state
        return state

    def _read_file(self) -> State:
        text = self._read_text(self.path)
        if text is None:
            return State()
        self._file_size = len(text)
        return self._parse(text, self.path)

    def record(self, state: State, vmids: Iterable[int]) -> State:
        """Persist the records of ``vmids`` (removed ones included) as ``serial`` + 1, in O(their size).

        The first record of a store whose journal already has lines (a crashed run's) folds the
        whole state instead, so a torn last line is never followed by new ones.
        """
        if not self._journal_open() and self.journal.exists():
            return self.write(state)
        state.serial += 1
        try:
            appended = self.journal.append(state, vmids)
        except BaseException:
            state.serial -= 1
            raise
        self.bytes_written += appended
        self.journal_bytes += appended
        if self.journal.size > max(JOURNAL_MIN_FOLD_BYTES, self._file_size):
            self.fold(state)
        return state

    def _journal_open(self) -> bool:
        return self.journal._fd is not None  # noqa: SLF001 - same package

    def fold(self, state: State | None = None) -> None:
        """Write the state (``state``, else the file with its journal replayed) at its serial and empty
        the journal.  A crash in between leaves lines the state file already has: they are skipped."""
        if state is None:
            if not self.journal.exists():
                return
            state = self.read()
        self._write_full(state, state.serial)
        self.journal.reset()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _remember(self, state: State) -> None:
        signature = self._signature()
        self._known = (signature, state.lineage, state.serial) if signature else None

    @staticmethod
    def _read_text(path: Path) -> str | None:
        """The file's text (None if missing); anything but UTF-8 JSON text is a one-line error."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PhoenixError(f"cannot read state {path}: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            hint = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
            raise PhoenixError(f"state {path} is not UTF-8 text{hint} (byte {exc.start}); phoenix writes "
                               "UTF-8 JSON — restore it from its .backup or re-save it as UTF-8") from None
        if "\x00" in text:
            raise PhoenixError(f"state {path} is not a text file (it holds NUL bytes); restore it from its .backup")
        return text

    def _parse(self, text: str, where: Path) -> State:
        try:
            state = State.model_validate_json(text)
        except ValidationError as exc:
            loc, message = first_error(exc)
            hint = f"; the previous state is in {self.backup_path}" if self.backup_path.exists() else ""
            raise PhoenixError(f"state {where} is invalid at {loc or '(top level)'}: {message}{hint}") from None
        if state.format_version > FORMAT_VERSION:
            raise PhoenixError(f"state {where} has format_version {state.format_version}; this phoenix "
                               f"understands up to {FORMAT_VERSION} (upgrade phoenix)")
        if state.format_version < 1:
            raise PhoenixError(f"state {where} has format_version {state.format_version}, which no phoenix "
                               f"wrote; this phoenix reads 1..{FORMAT_VERSION}")
        return state

    def write(self, state: State) -> State:
        """Persist ``state`` with ``serial`` + 1 (updated in place and returned), journal folded in.

        Refuses to overwrite a state of another lineage or a newer serial: that means a
        different state file, or a concurrent writer that bypassed the lock.
        """
        self._write_full(state, state.serial + 1)
        self.journal.reset()
        return state

    def _write_full(self, state: State, serial: int) -> None:
        try:
            checked = State.model_validate(state.model_dump())
        except ValidationError as exc:
            loc, message = first_error(exc)
            raise PhoenixError(f"refusing to write state: {loc}: {message}") from None
        current = self._current_version()
        if current is not None:
            if current.lineage != state.lineage:
                raise PhoenixError(f"state {self.path} belongs to lineage {current.lineage}, not {state.lineage}; "
                                   "refusing to overwrite a different state")
            if current.serial > state.serial:
                raise PhoenixError(f"state {self.path} was written meanwhile (serial {current.serial} > "
                                   f"{state.serial}); re-read it and plan again")
        checked.serial = serial
        payload = checked.to_json().encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if current is not None:
            self._keep_backup()
        self._atomic_write(payload)
        self.bytes_written += len(payload)
        self._file_size = len(payload)
        state.serial = serial
        self._remember(state)

    def _current_version(self) -> State | None:
        """What is on disk now (lineage and serial matter): re-parsed only if it changed since we saw it."""
        signature = self._signature()
        if signature is None:
            return None
        if self._known is not None and self._known[0] == signature:
            return State(lineage=self._known[1], serial=self._known[2])
        text = self._read_text(self.path)
        return None if text is None else self._parse(text, self.path)

    def _keep_backup(self) -> None:
        """Point ``.backup`` at the current state's inode (atomic: link to a temp name, rename)."""
        tmp = self.path.with_name(f".{self.path.name}.backup.{os.getpid()}.tmp")
        try:
            tmp.unlink(missing_ok=True)
            os.link(self.path, tmp)
        except OSError:  # file systems without hard links: copy instead
            data = self.path.read_bytes()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, self.backup_path)

    def _target(self) -> Path:
        """Where the bytes go: the file itself, or — for a state that is a symbolic link — the file the
        link points to (written through, so the link stays a link; a dangling link is refused)."""
        if not self.path.is_symlink():
            return self.path
        target = Path(os.path.realpath(self.path))
        if not target.is_file():
            raise PhoenixError(f"state {self.path} is a symbolic link to {target}, which is not a regular file")
        return target

    def _atomic_write(self, payload: bytes) -> None:
        target = self._target()
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    @contextmanager
    def lock(self, operation: str) -> Iterator[LockInfo]:
        """Hold the state lock for ``operation``; fails at once, naming the holder, if held."""
        state_lock = StateLock(self.lock_path, operation)
        info = state_lock.acquire()
        if state_lock.stale is not None:
            log.warning("took over a stale state lock left by %s", state_lock.stale.describe())
        self.remove_temp_files()
        try:
            yield info
            self.fold()
        finally:
            self.journal.close()
            state_lock.release()

    def remove_temp_files(self) -> list[Path]:
        """Temp files an interrupted write left (``.<name>.<random>.tmp``, ``.<name>.backup.<pid>.tmp``).

        Called with the state lock held: every writer of this state holds it, so none is in flight."""
        removed = []
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
        return removed

    def lock_holder(self) -> LockInfo | None:
        """The note of the current (or stale) lock, for status output."""
        return read_lock_info(self.lock_path)

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove a lock whose holder hangs; ``lock_id`` must match the holder's id."""
        return force_unlock(self.lock_path, lock_id)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
