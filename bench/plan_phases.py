#!/usr/bin/env python3
"""Where a ``phoenix plan`` over a converged fleet spends its time: wall and CPU per phase.

Runs the real plan (the plan_scale seed of N VMs, a simulator at the given latency) as a child
process with each phase wrapped in timers — imports, state read, load_desired, read_inventory
(which also computes each VM's part of the plan as its config arrives), build_plan, render_plan —
and prints them with the whole process's wall, peak RSS and the simulator's CPU.  Not a test.

    python bench/plan_phases.py 1000 10 3      # N VMs, latency ms, runs
    python bench/plan_phases.py 10000 10 1     # seeds 10,000 VMs first if needed (18 min)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plan_scale  # noqa: E402
from _common import Workspace, run_measured, start_server  # noqa: E402

WRAPPED = r'''
import sys, time
t0, c0 = time.perf_counter(), time.process_time()
import importlib
import phoenix.cli
T = {}
def wrap(module, name):
    m = importlib.import_module(module); f = getattr(m, name)
    def timed(*a, **k):
        s, c = time.perf_counter(), time.process_time()
        try:
            return f(*a, **k)
        finally:
            w, u = T.get(name, (0.0, 0.0)); T[name] = (w + time.perf_counter() - s, u + time.process_time() - c)
    setattr(m, name, timed)
for module, name in [("phoenix.commands.plan", "build_plan"), ("phoenix.commands.plan", "render_plan"),
                     ("phoenix.desired.loader", "load_desired"), ("phoenix.desired", "load_desired"),
                     ("phoenix.pve.inventory", "read_inventory")]:
    wrap(module, name)
import phoenix.commands.context as context, phoenix.desired.loader as loader, phoenix.state.store as store
context.load_desired = loader.load_desired
read = store.StateStore.read
def timed_read(self, *a, **k):
    s, c = time.perf_counter(), time.process_time()
    try:
        return read(self, *a, **k)
    finally:
        T["state read"] = (time.perf_counter() - s, time.process_time() - c)
store.StateStore.read = timed_read
T["imports"] = (time.perf_counter() - t0, time.process_time() - c0)
try:
    phoenix.cli.main()
finally:
    T["whole (after start-up)"] = (time.perf_counter() - t0, time.process_time() - c0)
    for name, (wall, cpu) in T.items():
        print(f"PHASE {name}: wall {wall:.2f} s, cpu {cpu:.2f} s", file=sys.stderr)
'''


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 1000
    latency = float(argv[1]) if len(argv) > 1 else 10.0
    runs = int(argv[2]) if len(argv) > 2 else 1
    source = plan_scale.seed(count)
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-phases-") as tmp:
        work = Path(tmp) / "w"
        shutil.copytree(source, work)
        server = start_server(work / "sim", plan_scale.NODES, latency_ms=latency, task_scale=0.0)
        try:
            ws = Workspace(work, server)
            for run in range(1, runs + 1):
                sim_cpu = time.process_time()      # the simulator runs in this process
                result = run_measured([sys.executable, "-c", WRAPPED, "--config", str(ws.config),
                                       "--state", str(ws.state), "plan"], env=ws.env(), cwd=ws.dir, timeout=3600)
                sim_cpu = time.process_time() - sim_cpu
                print(f"run {run}: {count} VMs @ {latency:g} ms: wall {result.seconds:.2f} s, peak RSS "
                      f"{result.max_rss_mb:.0f} MB, simulator CPU {sim_cpu:.2f} s, "
                      f"{'no changes' if 'No changes.' in result.stdout else 'CHANGES (not converged?)'}")
                for line in result.stderr.splitlines():
                    if line.startswith("PHASE "):
                        print("   ", line[6:])
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
