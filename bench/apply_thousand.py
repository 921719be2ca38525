#!/usr/bin/env python3
"""A large apply in linear time: ``phoenix apply`` creating N VMs on 3 nodes, task_scale 0, --parallelism 64.

With instant tasks what is left is phoenix's and the simulator's own cost per step, which used to
include rewriting the whole state file (phoenix) and the whole cluster model (simulator) after
every step: quadratic.  Now a step appends its own record to the state journal and the simulator
appends the changed VM to its log.  Reported per N: wall time of the whole ``phoenix apply``
process, requests, and bytes written — phoenix's state + journal (counted by the StateStore
instances of the measured process, folds included) and the simulator's snapshot + log — per VM,
and the CPU seconds of phoenix and of the simulator (the wall time of a loaded machine says little);
"bytes per VM independent of N" is the linearity check.  The template is provisioned first
(``--target``, not measured); ``phoenix plan`` must say "No changes." afterwards.

    python bench/apply_thousand.py                  # N = 100, 1000
    python bench/apply_thousand.py --sizes 1000
    python bench/apply_thousand.py --quick          # N = 50, 200
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TEMPLATE_VMID, Workspace, desired_fleet, node_names, print_table, run_measured, start_server, write_results  # noqa: E402

TARGET_SECONDS_1000 = 90.0
PARALLELISM = 64

# phoenix's CLI, with every StateStore of the process adding its bytes_written to a file at exit.
COUNTING_PHOENIX = """
import atexit, json, os, sys
from phoenix.state import store as store_module
stores = []
original = store_module.StateStore.__init__
def counting_init(self, *args, **kwargs):
    original(self, *args, **kwargs)
    stores.append(self)
store_module.StateStore.__init__ = counting_init
def report():
    with open(os.environ["BENCH_BYTES_FILE"], "w") as out:
        json.dump({"state_bytes": sum(s.bytes_written for s in stores),
                   "journal_bytes": sum(s.journal_bytes for s in stores)}, out)
atexit.register(report)
from phoenix.cli import main
main()
"""


def measure(count: int, nodes: int) -> dict:
    names = node_names(nodes)
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-apply1000-") as tmp:
        server = start_server(Path(tmp) / "sim", names, task_scale=0.0)
        try:
            ws = Workspace(Path(tmp), server)
            ws.write_desired(desired_fleet(count, names))
            ws.phoenix("apply", "--auto-approve", "--target", str(TEMPLATE_VMID)).check()
            ws.reset_stats()
            sim_bytes_before = server.sim._store.bytes_written
            bytes_file = Path(tmp) / "bytes.json"
            env = {**ws.env(), "BENCH_BYTES_FILE": str(bytes_file)}
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            sim_cpu_before = time.process_time()
            run = run_measured([sys.executable, "-c", COUNTING_PHOENIX, "--config", str(ws.config), "--state",
                                str(ws.state), "apply", "--auto-approve", "--parallelism", str(PARALLELISM)],
                               env=env, cwd=ws.dir, timeout=3600)
            failed = sum(1 for line in run.stderr.splitlines() + run.stdout.splitlines() if line.startswith("error: vm."))
            sim_cpu = time.process_time() - sim_cpu_before       # this process: the simulator's threads
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            phoenix_cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
            stats = ws.stats()
            sim_bytes = server.sim._store.bytes_written - sim_bytes_before
            written = json.loads(bytes_file.read_text())
            if run.returncode != 0 and not failed:
                raise RuntimeError(f"apply failed:\n{(run.stdout + run.stderr)[-2000:]}")
            # A saturated machine may time a few requests out (30 s): the row says how many chains
            # failed, and a second apply must converge them (what a user does).
            if failed:
                ws.phoenix("apply", "--auto-approve", "--parallelism", str(PARALLELISM)).check()
            check = ws.phoenix("plan").check()
            if "No changes." not in check.stdout:
                raise RuntimeError(f"not converged after apply:\n{check.stdout[-2000:]}")
            state_file = ws.state.stat().st_size
        finally:
            server.stop()
    return {
        "vms": count, "nodes": nodes, "parallelism": PARALLELISM, "task_scale": 0.0,
        "wall_s": round(run.seconds, 2), "phoenix_cpu_s": round(phoenix_cpu, 1), "sim_cpu_s": round(sim_cpu, 1),
        "requests": stats["total"], "max_rss_mb": round(run.max_rss_mb, 1),
        "state_bytes_per_vm": round(written["state_bytes"] / count), "journal_bytes_per_vm":
        round(written["journal_bytes"] / count), "sim_bytes_per_vm": round(sim_bytes / count),
        "state_file_bytes": state_file, "failed_chains": failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="VMs (default 100 1000; --quick 50 200)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([50, 200] if args.quick else [100, 1000])
    rows = []
    for count in sizes:
        rows.append(measure(count, args.nodes))
        print(f"  {count} VMs: {rows[-1]['wall_s']} s", file=sys.stderr)
    for row in rows:
        row["ok"] = not row["failed_chains"] and (row["vms"] < 1000 or row["wall_s"] <= TARGET_SECONDS_1000)
    path = write_results("apply_thousand", {"rows": rows})
    print_table(["VMs", "nodes", "P", "wall s", "phoenix CPU s", "sim CPU s", "requests", "peak RSS MB", "state+journal B/VM", "journal B/VM",
                 "sim B/VM", "state file B", "failed", "ok"],
                [[r["vms"], r["nodes"], r["parallelism"], r["wall_s"], r["phoenix_cpu_s"], r["sim_cpu_s"], r["requests"], r["max_rss_mb"],
                  r["state_bytes_per_vm"], r["journal_bytes_per_vm"], r["sim_bytes_per_vm"], r["state_file_bytes"],
                  r["failed_chains"], "yes" if r["ok"] else "NO"] for r in rows])
    print(f"\nresults: {path}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
