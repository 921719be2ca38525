"""Pausing Python's cyclic garbage collector around steps that only build long-lived data.

Loading a large desired file or state creates hundreds of thousands of objects that all stay alive;
every 700 of them start a collection that walks the young ones, and the growing heap triggers full
walks of it too: ~0.7 s of a 10,000-VM load_desired went there.  These steps make (almost) no
reference cycles, so nothing is lost by leaving them to the collector's next run after the block.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (reference counting still frees everything else)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
