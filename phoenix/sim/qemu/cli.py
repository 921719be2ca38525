"""``phoenix sim build-guest-image``: build or reuse the cached guest image and say where it is."""

from __future__ import annotations

import sys
from pathlib import Path

from phoenix.sim.qemu.image import build_guest_image

__all__ = ["build_image_command"]


def build_image_command(cache_dir: Path | None, *, force: bool = False) -> None:
    """Progress goes to stderr; stdout gets only the image path, so scripts can capture it."""
    result = build_guest_image(cache_dir, log=lambda line: print(line, file=sys.stderr, flush=True), force=force)
    how = "reused" if result.reused else "built"
    print(f"{how} {result.path.name} ({result.size_bytes / 2**20:.0f} MiB, key {result.key}) "
          f"in {result.seconds:.0f} s", file=sys.stderr, flush=True)
    print(result.path, flush=True)
