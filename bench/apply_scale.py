#!/usr/bin/env python3
"""How ``phoenix apply`` creating N VMs from one template compares with its lower bound.

The simulator runs with realistic task durations scaled by ``--task-scale`` (base: clone 2 s,
resize 0.5 s, start 1 s, guest agent up 3 s after start; PUT /config is synchronous).  The
template lives on the simulator's shared storage (``shared-nfs``) and the VMs are full clones onto
it, spread round-robin over the nodes (``vm.node``), so clones to any node are allowed as in PVE.
The template is provisioned first (``phoenix apply --target <template>``, not measured); then one
``phoenix apply --auto-approve --parallelism P`` creating all N VMs is timed as a separate process.

Lower bound = waves × chain, waves = ceil(N / min(P, nodes × per-node limit)), chain = the sum of
one VM's modelled durations (7.5 s × task_scale, guest included).  phoenix's per-node limit is its parallelism (the
executor's default), so the bound is ceil(N / P) × chain.  Reported: wall time of the whole
process, apply time as phoenix reports it ("Apply complete! [...]"), and both ratios.

    python bench/apply_scale.py                     # N 10 50 × nodes 1 3, parallelism 10, realistic durations
    python bench/apply_scale.py --task-scale 0.25   # the same, 4× faster tasks (fixed costs weigh 4× more)
    python bench/apply_scale.py --quick             # N 10 × nodes 1 3, task_scale 0.1
    python bench/apply_scale.py --sizes 50 --nodes 3 --parallelism 25
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TEMPLATE_VMID, Workspace, desired_fleet, node_names, print_table, start_server, write_results  # noqa: E402

# Base durations of one VM's chain in the simulator (phoenix/sim/handlers: clone, resize, start; the
# simulated guest: its agent answers 3 s after start, cloud-init reaches runcmd 1 s later, and the
# fleet declares no features, so the runner is done then — apply waits for that since issue 12).
CHAIN_BASE_SECONDS = {"clone": 2.0, "resize": 0.5, "start": 1.0, "agent": 3.0, "cloud-init": 1.0}
TARGET_RATIO = 1.2
APPLY_SECONDS = re.compile(r"Apply complete!.*\[(\d+(?:\.\d+)?)s\]")


def lower_bound(count: int, nodes: int, parallelism: int, per_node: int, task_scale: float) -> tuple[int, float]:
    waves = math.ceil(count / min(parallelism, nodes * per_node))
    return waves, waves * sum(CHAIN_BASE_SECONDS.values()) * task_scale


def measure(count: int, node_count: int, parallelism: int, task_scale: float) -> dict:
    nodes = node_names(node_count)
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-apply-") as tmp:
        server = start_server(Path(tmp) / "sim", nodes, task_scale=task_scale)
        try:
            ws = Workspace(Path(tmp), server)
            ws.write_desired(desired_fleet(count, nodes))
            ws.phoenix("apply", "--auto-approve", "--target", str(TEMPLATE_VMID)).check()
            ws.reset_stats()
            run = ws.phoenix("apply", "--auto-approve", "--parallelism", str(parallelism)).check()
            stats = ws.stats()
            if f"Resources: {count} added" not in run.stdout:
                raise RuntimeError(f"apply did not add {count} VMs:\n{run.stdout[-2000:]}")
            check = ws.phoenix("plan").check()
            if "No changes." not in check.stdout:
                raise RuntimeError(f"not converged after apply:\n{check.stdout[-2000:]}")
        finally:
            server.stop()
    match = APPLY_SECONDS.search(run.stdout)
    apply_seconds = float(match.group(1)) if match else run.seconds
    waves, bound = lower_bound(count, node_count, parallelism, parallelism, task_scale)
    return {
        "vms": count, "nodes": node_count, "parallelism": parallelism, "per_node_limit": parallelism,
        "task_scale": task_scale, "waves": waves, "lower_bound_s": round(bound, 3),
        "wall_s": round(run.seconds, 3), "apply_s": apply_seconds,
        "ratio_wall": round(run.seconds / bound, 3), "ratio_apply": round(apply_seconds / bound, 3),
        "requests": stats["total"], "requests_per_vm": round(stats["total"] / count, 1),
        "max_rss_mb": round(run.max_rss_mb, 1), "by_endpoint": stats["by_endpoint"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="VMs to create (default 10 50)")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 3], help="cluster sizes (default 1 3)")
    parser.add_argument("--parallelism", type=int, default=10, help="phoenix apply --parallelism (default 10)")
    parser.add_argument("--task-scale", type=float, default=None,
                        help="simulator task duration multiplier (default 1: the issue's realistic durations; --quick 0.1)")
    parser.add_argument("--quick", action="store_true", help="10 VMs only, task_scale 0.1")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([10] if args.quick else [10, 50])
    scale = args.task_scale if args.task_scale is not None else (0.1 if args.quick else 1.0)
    if min(sizes) < 1 or min(args.nodes) < 1 or not 1 <= args.parallelism <= 64 or scale <= 0:
        parser.error("sizes and nodes ≥ 1, 1 ≤ parallelism ≤ 64, task_scale > 0")
    rows = [measure(count, nodes, args.parallelism, scale) for count in sizes for nodes in args.nodes]
    for row in rows:
        row["ok"] = row["ratio_wall"] <= TARGET_RATIO or row["vms"] < 50 or row["nodes"] < 3
    path = write_results("apply_scale", {"rows": rows})
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
    else:
        print_table(["VMs", "nodes", "parallelism", "task_scale", "waves", "bound s", "wall s", "apply s",
                     "wall/bound", "apply/bound", "req/VM", "ok"],
                    [[r["vms"], r["nodes"], r["parallelism"], r["task_scale"], r["waves"], r["lower_bound_s"],
                      r["wall_s"], r["apply_s"], f"{r['ratio_wall']:.2f}x", f"{r['ratio_apply']:.2f}x",
                      r["requests_per_vm"], "yes" if r["ok"] else "NO"] for r in rows])
        print(f"\nresults: {path}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
