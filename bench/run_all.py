#!/usr/bin/env python3
"""Run every bench and print one summary table against the targets; JSON in bench/results/summary.json.

Each bench also writes its own bench/results/<name>.json.  ``--quick`` (< 60 s once the plan fleets
are seeded; the first run seeds 10 and 100 VMs, ~35 s) runs the small cases only.

    python bench/run_all.py            # full: plan 10/100/1,000 (first run seeds 1,000 VMs: ~20 min),
                                       # apply 10/50 × 1/3 nodes, cold start, simulator throughput
    python bench/run_all.py --quick
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apply_scale  # noqa: E402
import cold_start  # noqa: E402
import plan_scale  # noqa: E402
import sim_throughput  # noqa: E402
from _common import RESULTS, print_table, write_results  # noqa: E402


def _quiet(fn, argv: list[str]) -> int:
    """Run a bench's main() with its own table captured (the summary replaces it)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = fn(argv)
    sys.stderr.write(out.getvalue())
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases only (< 60 s once seeded)")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    started = time.perf_counter()
    import json

    _quiet(plan_scale.main, quick)
    _quiet(apply_scale.main, quick)
    _quiet(cold_start.main, quick)
    sim = sim_throughput.run(8, 2.0 if args.quick else 5.0)
    plan = json.loads((RESULTS / "plan_scale.json").read_text())["rows"]
    apply = json.loads((RESULTS / "apply_scale.json").read_text())["rows"]
    cold = json.loads((RESULTS / "cold_start.json").read_text())["rows"]

    rows: list[list] = []
    for r in plan:
        limit_s = plan_scale.TARGET_SECONDS_AT_10MS.get(r["vms"]) if r["latency_ms"] >= 10 else None
        target = f"≤ {r['requests_limit']} req" + (f", ≤ {limit_s:g} s" if limit_s else "") \
            + f", ≤ {plan_scale.target_rss(r['vms']):.0f} MB"
        rows.append([f"plan {r['vms']} VMs @ {r['latency_ms']:g} ms",
                     f"{r['requests']} req, {r['seconds_min']:.2f} s, {r['max_rss_mb']:.0f} MB", target,
                     "yes" if r["ok"] else "NO"])
    for r in apply:
        target = "≤ 1.2x bound" if r["vms"] >= 50 and r["nodes"] >= 3 else "(no target)"
        rows.append([f"apply {r['vms']} VMs, {r['nodes']} node(s), P={r['parallelism']}, scale {r['task_scale']:g}",
                     f"{r['wall_s']:.1f} s wall / {r['apply_s']:.1f} s apply vs bound {r['lower_bound_s']:.2f} s "
                     f"= {r['ratio_wall']:.2f}x / {r['ratio_apply']:.2f}x", target, "yes" if r["ok"] else "NO"])
    for r in cold:
        ok = r.get("ok")
        rows.append([f"cold start: {r['command']}", f"min {r['min_s']:.3f} s, median {r['median_s']:.3f} s",
                     "≤ 0.3 s" if "target_s" in r else "", "" if ok is None else ("yes" if ok else "NO")])
    rows.append(["simulator throughput (8 clients)", f"{sim['rate_per_s']} req/s, p50 {sim['latency_ms']['p50']} ms, "
                 f"{sim['errors']} errors", "", ""])
    path = write_results("summary", {"quick": args.quick, "rows": rows, "sim_throughput": sim,
                                     "seconds": round(time.perf_counter() - started, 1)})
    print_table(["measure", "result", "target", "met"], rows)
    print(f"\n{time.perf_counter() - started:.0f} s; results in {path.parent}")
    return 0 if all(row[3] != "NO" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
