#!/usr/bin/env python3
"""The full crash sweep: SIGKILL ``phoenix apply`` after every one of its writes, then re-apply.

CI runs a fixed sample of kill points (tests/e2e/test_crash_sweep.py::test_crash_sweep_sample); this
runs every point (``PHOENIX_CRASH_SWEEP=all``) of the template + 3 VMs on 2 nodes apply, and prints
how many points passed and the wall time.  Each point: a fresh simulated cluster, an apply killed
right after write N (found by counting writes in the simulator, not by sleeping), a re-apply that
must converge with no orphan, duplicate, foreign marker, stale lock, staging image, snippet or
state temp file.

    python bench/crash_sweep.py            # every point (~19), a few minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    env = {**os.environ, "PHOENIX_CRASH_SWEEP": "all"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/e2e/test_crash_sweep.py::test_crash_sweep_every_write", *(argv or [])]
    result = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True)
    seconds = time.monotonic() - started
    tail = [line for line in result.stdout.splitlines() if line.strip()][-3:]
    print("\n".join(tail))
    summary = {"command": " ".join(cmd[1:]), "exit": result.returncode, "seconds": round(seconds, 1)}
    print(f"crash sweep (every write): exit {result.returncode}, {seconds:.0f} s")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "crash_sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
