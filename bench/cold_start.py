#!/usr/bin/env python3
"""Cold start of the ``phoenix`` command: ``phoenix --help`` and ``phoenix plan`` (3 converged VMs).

Uses hyperfine when it is installed (``apt-get install -y hyperfine``), else repeated subprocess
timing; reports min and median.  The measured command is the installed console script when it is
on PATH's Python (resolved past pyenv-style shims, which add their own start-up), else
``python -c 'from phoenix.cli import main; main()'``.  ``plan`` runs against an in-process
simulator with a converged fleet of 3 VMs, so it counts start-up, connect, one read and render.

    python bench/cold_start.py             # 20 runs each
    python bench/cold_start.py --quick     # 5 runs each
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PHOENIX, Workspace, desired_fleet, median, node_names, print_table, start_server, write_results  # noqa: E402

TARGET_HELP_S = 0.3


def phoenix_command() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "phoenix"
    return [str(script)] if script.exists() else list(PHOENIX)


def time_runs(argv: list[str], runs: int, env: dict[str, str], cwd: Path) -> dict:
    """min/median/mean seconds of ``argv``: hyperfine when available, else our own loop."""
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        with tempfile.NamedTemporaryFile(suffix=".json") as export:
            subprocess.run([hyperfine, "-N", "--warmup", "2", "--runs", str(runs), "--export-json", export.name,
                            "--style", "none", subprocess.list2cmdline(argv)],
                           env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times = json.loads(Path(export.name).read_text())["results"][0]["times"]
        tool = "hyperfine"
    else:
        times = []
        for i in range(runs + 2):
            started = time.perf_counter()
            subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if i >= 2:                      # two warm-up runs, as with hyperfine
                times.append(time.perf_counter() - started)
        tool = "subprocess"
    return {"tool": tool, "runs": len(times), "min_s": min(times), "median_s": median(times),
            "max_s": max(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="timed runs per command (default 20; --quick 5)")
    parser.add_argument("--quick", action="store_true", help="5 runs each")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 20)
    if runs < 1:
        parser.error("--runs must be ≥ 1")
    command = phoenix_command()
    rows = []
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-cold-") as tmp:
        base = dict(os.environ, NO_COLOR="1", COLUMNS="160")
        rows.append({"command": "phoenix --help", **time_runs([*command, "--help"], runs, base, Path(tmp))})
        rows.append({"command": "python -c pass", **time_runs([sys.executable, "-c", "pass"], runs, base, Path(tmp))})
        nodes = node_names(1)
        server = start_server(Path(tmp) / "sim", nodes, task_scale=0.0)
        try:
            ws = Workspace(Path(tmp), server)
            ws.write_desired(desired_fleet(3, nodes))
            ws.phoenix("apply", "--auto-approve").check()
            plan = [*command, "--config", str(ws.config), "--state", str(ws.state), "plan"]
            rows.append({"command": "phoenix plan (3 VMs)", **time_runs(plan, runs, ws.env(), Path(tmp))})
        finally:
            server.stop()
    rows[0]["target_s"] = TARGET_HELP_S
    rows[0]["ok"] = rows[0]["min_s"] <= TARGET_HELP_S
    path = write_results("cold_start", {"command": command[0] if len(command) == 1 else "python -c", "rows": rows})
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
    else:
        print_table(["command", "tool", "runs", "min s", "median s", "max s"],
                    [[r["command"], r["tool"], r["runs"], r["min_s"], r["median_s"], r["max_s"]] for r in rows])
        print(f"\nresults: {path}")
    return 0 if rows[0]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
