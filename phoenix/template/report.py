"""How template provisioning talks to the person running it.

Three kinds of line: plain progress (``info``), things that could not really happen and were
simulated (``simulated`` — printed as ``simulated: ...`` so they are never mistaken for the real
thing) and byte progress for image downloads and uploads: a rich bar on a terminal, else a line
every ~10 %.  The plan's executor may pass its own reporter:
any object with ``info``/``simulated`` methods works, or a plain ``callable(line)``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

from phoenix.text import markup_safe, printable

__all__ = ["Reporter", "ConsoleReporter", "RecordingReporter", "as_reporter"]

Advance = Callable[[int, "int | None"], None]


class Reporter:
    """Base reporter: sends every line to ``emit``; transfers show a rich bar on a terminal
    ``console`` (size, rate, time left), else a line every ~10 %."""

    def __init__(self, emit: Callable[[str], None] | None = None, console=None):
        self._emit = emit or (lambda line: print(line, file=sys.stderr))
        self.console = console

    def info(self, message: str) -> None:
        self._emit(printable(message))   # URLs, file names and PVE's words come from outside

    def simulated(self, message: str) -> None:
        self._emit(f"simulated: {printable(message)}")

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[Advance]:
        if self.console is not None and self.console.is_terminal:
            with _rich_bar(self.console, description) as advance:
                yield advance
        else:
            yield _TenPercentLines(self._emit, description)


class _TenPercentLines:
    """``advance(done, total)`` printing one line per 10 % (per 100 MiB when the size is unknown)."""

    def __init__(self, emit: Callable[[str], None], description: str):
        self._emit = emit
        self._description = printable(description)
        self._started = time.monotonic()
        self._shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        step = done * 10 // total if total else done // (100 << 20)
        if step <= self._shown:
            return
        self._shown = step
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = done / elapsed
        mib = 1 << 20
        if total:
            left = (total - done) / rate if rate else 0.0
            self._emit(f"{self._description}: {step * 10}% of {total / mib:.1f} MiB, {rate / mib:.1f} MiB/s, "
                       f"{left:.0f} s left")
        else:
            self._emit(f"{self._description}: {done / mib:.0f} MiB, {rate / mib:.1f} MiB/s")


@contextlib.contextmanager
def _rich_bar(console, description: str) -> Iterator[Advance]:
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(markup_safe(description), total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


class ConsoleReporter(Reporter):
    """Rich console output (stderr) with the transfer bar when it is a terminal."""

    def __init__(self, console=None):
        from rich.console import Console

        console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        super().__init__(lambda line: console.print(line, markup=False), console=console)


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
    if hasattr(reporter, "note") and not hasattr(reporter, "info"):   # the apply's ApplyReporter
        return Reporter(lambda line: reporter.note(markup_safe(line)), console=getattr(reporter, "console", None))
    if hasattr(reporter, "info"):
        adapted = Reporter(reporter.info)
        if hasattr(reporter, "simulated"):
            adapted.simulated = reporter.simulated  # type: ignore[method-assign]
        return adapted
    if callable(reporter):
        return Reporter(reporter)
    raise TypeError(f"not a reporter: {reporter!r}")
