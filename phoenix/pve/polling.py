"""When to ask PVE again: poll intervals that learn how long things take in this run.

PVE has no way to wait for a task; clients poll.  Polling often wastes requests and loads the
API, polling rarely leaves a finished task unnoticed (a whole chain of steps waits on it).  An
apply runs the same kinds of task over and over (clone from one template, start, the guest
agent coming up), so after the first ones phoenix knows about how long the next will take: it
sleeps until just before that, then polls finely around it.  With nothing learned yet it polls
at a geometrically growing interval.  No sleep is ever longer than the wait's ``max_interval``, so
learning never makes phoenix notice a faster-than-usual task or guest later than not learning would.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import defaultdict, deque
from typing import Iterator

GROWTH = 1.25          # interval growth without (or beyond) an expectation
FIRST = 0.05
MAX_INTERVAL = 1.0
EARLY = 0.85           # first look at 85 % of the expected duration …
FINE = 0.04            # … then every 4 % of it (at least FINE_MIN) until 1.5× the expectation
FINE_MIN = 0.02
MEMORY = 25            # durations remembered per kind
LEARN_FROM = 0.05      # shorter than this, a plain first poll at FIRST is as good as any plan


class DurationLearner:
    """Thread-safe memory of recent durations per kind (``qmclone``, ``resize``, ``agent`` …)."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=MEMORY))
        self._lock = threading.Lock()

    def record(self, kind: str, seconds: float) -> None:
        with self._lock:
            self._seen[kind].append(max(0.0, seconds))

    def expected(self, kind: str) -> float | None:
        with self._lock:
            seen = list(self._seen.get(kind, ()))
        return statistics.median(seen) if len(seen) >= 2 else None

    def intervals(self, kind: str, elapsed: float = 0.0, first: float = FIRST,
                  max_interval: float = MAX_INTERVAL) -> Iterator[float]:
        """Sleeps between polls for something of ``kind`` that started ``elapsed`` seconds ago."""
        expected = self.expected(kind)
        waited = elapsed
        if expected is not None and expected > LEARN_FROM:
            # Never a sleep longer than ``max_interval``: a wait of this kind that ends much sooner
            # than the last ones (a smaller disk to clone, a faster node) is still noticed within it.
            while waited < EARLY * expected:
                sleep = min(EARLY * expected - waited, max_interval)
                yield sleep
                waited += sleep
            step = min(max(FINE_MIN, FINE * expected), max_interval)
            while waited < 1.5 * expected:
                yield step
                waited += step
        interval = first
        while True:
            yield interval
            interval = min(interval * GROWTH, max_interval)


class LearnedWait:
    """One wait for something of ``kind``: sleeps come from ``learner``; when the thing is seen done
    after at least one miss, the midpoint of the last miss and the hit is remembered as its duration.
    (Seen done at the first look says nothing about how long it takes, so nothing is recorded.)"""

    def __init__(self, learner: DurationLearner, kind: str, *, first: float = FIRST,
                 max_interval: float = MAX_INTERVAL) -> None:
        self.learner, self.kind = learner, kind
        self.started = time.monotonic()
        self.last_miss: float | None = None
        self._intervals = learner.intervals(kind, first=first, max_interval=max_interval)

    def missed(self) -> float:
        """Not done yet: how long to sleep before the next look."""
        self.last_miss = time.monotonic()
        return next(self._intervals)

    def hit(self) -> None:
        if self.last_miss is not None:
            self.learner.record(self.kind, (self.last_miss + time.monotonic()) / 2 - self.started)
