"""How template provisioning talks to the person running it.

Three kinds of line: plain progress (``info``), things that could not really happen and were
simulated (``simulated`` — printed as ``simulated: ...`` so they are never mistaken for the real
thing) and a byte progress bar for downloads.  The plan's executor may pass its own reporter:
any object with ``info``/``simulated`` methods works, or a plain ``callable(line)``.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

__all__ = ["Reporter", "ConsoleReporter", "RecordingReporter", "as_reporter"]

Advance = Callable[[int, "int | None"], None]


class Reporter:
    """Base reporter: sends every line to ``emit``; the download bar is a no-op."""

    def __init__(self, emit: Callable[[str], None] | None = None):
        self._emit = emit or (lambda line: print(line, file=sys.stderr))

    def info(self, message: str) -> None:
        self._emit(message)

    def simulated(self, message: str) -> None:
        self._emit(f"simulated: {message}")

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[Advance]:
        """Plain lines at every quarter (no live bar: other threads may be printing too)."""
        shown = {"quarter": 0}

        def advance(done: int, total: int | None) -> None:
            if total:
                quarter = done * 4 // total
                if quarter > shown["quarter"]:
                    shown["quarter"] = quarter
                    self._emit(f"{description}: {quarter * 25}% of {total / (1 << 20):.1f} MiB")

        yield advance


class ConsoleReporter(Reporter):
    """Rich console output with a transfer bar (bytes, speed, time left) for image downloads."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        super().__init__(lambda line: self.console.print(line, markup=False))

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[Advance]:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(description, total=None)

            def advance(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            yield advance


class RecordingReporter(Reporter):
    """Keeps every line (for tests and for embedding the lines in a plan's result)."""

    def __init__(self):
        self.lines: list[str] = []
        self.progress_updates: list[tuple[int, int | None]] = []
        super().__init__(self.lines.append)

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[Advance]:
        self.lines.append(description)
        yield lambda done, total: self.progress_updates.append((done, total))


def as_reporter(reporter) -> Reporter:
    """Accept None (console), a Reporter, any object with ``info``, or a ``callable(line)``."""
    if reporter is None:
        return ConsoleReporter()
    if isinstance(reporter, Reporter):
        return reporter
    if hasattr(reporter, "note") and not hasattr(reporter, "info"):   # the apply's ConsoleReporter
        from rich.markup import escape

        return Reporter(lambda line: reporter.note(escape(line)))
    if hasattr(reporter, "info"):
        adapted = Reporter(reporter.info)
        if hasattr(reporter, "simulated"):
            adapted.simulated = reporter.simulated  # type: ignore[method-assign]
        return adapted
    if callable(reporter):
        return Reporter(reporter)
    raise TypeError(f"not a reporter: {reporter!r}")
