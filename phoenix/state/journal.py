"""The state journal: an append-only file beside the state, so recording a step costs O(1).

Rewriting the whole state file after every step makes an apply quadratic in the fleet (1,000
VMs × ~8 steps × the whole file).  Instead each group of changed records is appended to
``<state>.journal`` as one JSON line and fsynced::

    {"format_version": 1, "lineage": "...", "serial": 42, "put": [{...record...}], "remove": [8003]}

Reading the state replays the lines whose ``serial`` is newer than the state file's onto it.  The
store folds the journal into the state file (atomic write, then the journal is emptied) at the
end of a run and whenever the journal outgrows the state, so ``phoenix.state.json`` stays the
one document a user reads and the journal stays small.

Crash safety: a line is complete only with its newline, so a write torn by a crash (the last
line) is ignored; a crash between folding and emptying leaves lines whose serials the new state
file already has, and they are skipped.  A damaged line followed by complete ones is not a torn
write: that is refused with its line number, never silently skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from phoenix.errors import PhoenixError
from phoenix.state.model import FORMAT_VERSION, ResourceState, State, first_error

__all__ = ["StateJournal"]


class StateJournal:
    """``<state>.journal``: append (fsynced), replay onto a state, reset after a fold."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self.size = 0          # bytes in the file as this process knows it (for the fold bound)

    # --- writing -------------------------------------------------------------------------------
    def append(self, state: State, vmids: Iterable[int]) -> int:
        """Write one line with the current records of ``vmids`` (absent ones as removals) at
        ``state.serial``; return the bytes written.  Returns once the line is on disk."""
        put: list[dict[str, Any]] = []
        removed: list[int] = []
        for vmid in sorted(set(vmids)):
            record = state.get(vmid)
            if record is None:
                removed.append(vmid)
            else:
                put.append(record.model_dump(mode="json"))
        line = json.dumps({"format_version": FORMAT_VERSION, "lineage": state.lineage, "serial": state.serial,
                           "put": put, "remove": removed}, separators=(",", ":"), sort_keys=True) + "\n"
        data = line.encode("utf-8")
        fd = self._open()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        self.size += len(data)
        return len(data)

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
            try:
                self._fd = os.open(self.path, flags, 0o600)
            except OSError as exc:
                raise PhoenixError(f"cannot write state journal {self.path}: {exc.strerror}") from None
            os.fchmod(self._fd, 0o600)
            self.size = os.fstat(self._fd).st_size
        return self._fd

    def reset(self) -> None:
        """Empty the journal (after its lines reached the state file)."""
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.size = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    # --- reading -------------------------------------------------------------------------------
    def replay(self, state: State, state_file_exists: bool) -> int:
        """Apply the journal's lines newer than ``state.serial`` to ``state``; how many applied.

        Without a state file (the first run crashed before its first fold) the state takes the
        journal's lineage.  A journal of another lineage or a newer format is refused.
        """
        lines = self._complete_lines()
        applied = 0
        for number, entry in lines:
            version = entry.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise PhoenixError(f"state journal {self.path} line {number}: format_version {version!r} is not "
                                   f"one this phoenix understands (up to {FORMAT_VERSION})")
            lineage = entry.get("lineage")
            if not state_file_exists and applied == 0 and state.serial == 0 and not state.resources:
                state.lineage = str(lineage)
            if lineage != state.lineage:
                raise PhoenixError(f"state journal {self.path} line {number} belongs to lineage {lineage}, not "
                                   f"the state's {state.lineage}; move the journal away if the state was replaced")
            serial = entry.get("serial")
            if not isinstance(serial, int) or serial <= state.serial:
                continue  # already folded into the state file
            self._apply(state, entry, number)
            state.serial = serial
            applied += 1
        return applied

    def _apply(self, state: State, entry: dict[str, Any], number: int) -> None:
        try:
            records = [ResourceState.model_validate(raw) for raw in entry.get("put") or []]
        except ValidationError as exc:
            where, message = first_error(exc)
            raise PhoenixError(f"state journal {self.path} line {number} is invalid at put.{where}: {message}") from None
        removed = entry.get("remove") or []
        if not isinstance(removed, list) or not all(isinstance(v, int) for v in removed):
            raise PhoenixError(f"state journal {self.path} line {number} is invalid at remove: not a list of VMIDs")
        for record in records:
            state.put(record)
        for vmid in removed:
            state.remove(vmid)

    def _complete_lines(self) -> list[tuple[int, dict[str, Any]]]:
        """The parsed lines; a torn last line (no newline, or not JSON) is dropped."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise PhoenixError(f"cannot read state journal {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
        raw_lines = data.split(b"\n")
        tail = raw_lines.pop()          # "" when the file ends with a newline, else a torn write
        parsed: list[tuple[int, dict[str, Any]]] = []
        for index, raw in enumerate(raw_lines):
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            except ValueError:
                if index == len(raw_lines) - 1 and not tail:
                    break  # torn in a way that still ended in a newline: the last line only
                raise PhoenixError(f"state journal {self.path} line {index + 1} is damaged and complete lines "
                                   f"follow it; the state file and its .backup are intact — inspect or remove "
                                   f"the journal") from None
            parsed.append((index + 1, entry))
        return parsed
