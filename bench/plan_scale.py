#!/usr/bin/env python3
"""How ``phoenix plan`` grows with the fleet: N converged VMs, 0 and 10 ms per-request latency.

For each N a converged fleet is made by one real ``phoenix apply`` (task_scale 0, parallelism 64)
against an in-process simulator; the resulting simulator data dir + state file are cached under
bench/results/seed/ (keyed by N and the generated desired file), because that apply takes a while
(linear since the state journal and the simulator's change log: see bench/apply_thousand.py; the
10,000-VM seed is one ~10-minute apply on 2 cores).  Each measurement then copies the seed,
resets the simulator's stats, and runs ``phoenix plan`` as a separate process: API requests (from
``GET /_sim/stats``), wall time and that process's peak RSS.  ``plan`` must print "No changes.".

    python bench/plan_scale.py                 # N = 10, 100, 1000; latency 0 and 10 ms; 3 runs each
    python bench/plan_scale.py --quick         # N = 10, 100; 1 run each (< 60 s once seeded)
    python bench/plan_scale.py --sizes 1000 --latency 10 --runs 5
    python bench/plan_scale.py --sizes 10000 --latency 10 --runs 1   # seeds 10,000 VMs first
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, Workspace, desired_fleet, median, node_names, print_table, start_server, write_results  # noqa: E402

SEEDS = RESULTS / "seed"
SEED_FORMAT = 2                # 2: user-data fingerprinted as its canonical document, not its YAML text
NODES = node_names(1)
TARGET_REQUESTS_EXTRA = 3      # plan at N VMs: ≤ N + 3 requests
TARGET_SECONDS_AT_10MS = {1000: 1.5, 10000: 8.0}    # wall at 10 ms latency


def target_rss(count: int) -> float:
    """Peak RSS target of a plan: ≤ 150 MB up to 1,000 VMs, ≤ 400 MB at 10,000."""
    return 150.0 if count <= 1000 else 400.0


def seed(count: int, *, rebuild: bool = False, log=print) -> Path:
    """A directory holding a converged fleet of ``count`` VMs (sim/, state/, desired/), made by phoenix."""
    doc = desired_fleet(count, NODES)
    # SEED_FORMAT: bump when what phoenix records changes (e.g. how user-data is fingerprinted).
    key = hashlib.sha256(json.dumps([SEED_FORMAT, doc], sort_keys=True).encode()).hexdigest()[:12]
    path = SEEDS / f"plan-{count}-{key}"
    if (path / "ok").exists() and not rebuild:
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    started = time.perf_counter()
    server = start_server(path / "sim", NODES, task_scale=0.0)
    try:
        ws = Workspace(path, server)
        ws.write_desired(doc)
        log(f"  seeding {count} VMs with one real 'phoenix apply' (cached in {path.relative_to(RESULTS.parent.parent)})…")
        converge(ws, count, log)
    finally:
        server.stop()
    (path / "ok").write_text(f"{time.perf_counter() - started:.1f}\n")
    log(f"  seeded {count} VMs in {time.perf_counter() - started:.1f} s")
    return path


def converge(ws: Workspace, count: int, log=print, attempts: int = 3) -> None:
    """``phoenix apply`` until ``phoenix plan`` says "No changes." (a 1,000-VM apply on a loaded
    2-core machine may leave a few chains failed, e.g. a lock wait timing out; re-running apply is
    what a user does)."""
    for attempt in range(1, attempts + 1):
        run = ws.phoenix("apply", "--auto-approve", "--parallelism", "64", timeout=7200)
        if run.returncode != 0:
            failed = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("error:")]
            log(f"  apply {attempt}: {len(failed)} chains failed, first: {failed[:1]}")
        plan = ws.phoenix("plan").check()
        if "No changes." in plan.stdout:
            return
    raise RuntimeError(f"the seeded fleet of {count} is not converged:\n{plan.stdout[-2000:]}")


def measure(count: int, latency_ms: float, runs: int) -> dict:
    source = seed(count)
    samples = []
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-plan-") as tmp:
        work = Path(tmp) / "w"
        shutil.copytree(source, work)
        server = start_server(work / "sim", NODES, latency_ms=latency_ms, task_scale=0.0)
        try:
            ws = Workspace(work, server)
            for _ in range(runs):
                ws.reset_stats()
                run = ws.phoenix("plan").check()
                if "No changes." not in run.stdout:
                    raise RuntimeError(f"plan of the converged fleet shows changes:\n{run.stdout[-2000:]}")
                stats = ws.stats()
                samples.append({"seconds": run.seconds, "max_rss_mb": run.max_rss_mb, "requests": stats["total"],
                                "by_endpoint": stats["by_endpoint"]})
        finally:
            server.stop()
    best = min(samples, key=lambda s: s["seconds"])
    return {
        "vms": count, "latency_ms": latency_ms, "runs": runs,
        "requests": max(s["requests"] for s in samples), "requests_limit": count + TARGET_REQUESTS_EXTRA,
        "seconds_min": best["seconds"], "seconds_median": median([s["seconds"] for s in samples]),
        "max_rss_mb": max(s["max_rss_mb"] for s in samples), "by_endpoint": best["by_endpoint"],
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="fleet sizes (default 10 100 1000)")
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 10.0],
                        help="per-request latencies in ms (default 0 10)")
    parser.add_argument("--runs", type=int, default=None, help="plans per case; min and median reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="sizes 10 100, one run each")
    parser.add_argument("--reseed", action="store_true", help="rebuild the cached converged fleets")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([10, 100] if args.quick else [10, 100, 1000])
    runs = args.runs or (1 if args.quick else 3)
    if min(sizes) < 1 or runs < 1 or min(args.latency) < 0:
        parser.error("sizes and --runs must be ≥ 1, latencies ≥ 0")
    if args.reseed:
        for count in sizes:
            seed(count, rebuild=True)
    rows = [measure(count, latency, runs) for count in sizes for latency in args.latency]
    for row in rows:
        limit_s = TARGET_SECONDS_AT_10MS.get(row["vms"]) if row["latency_ms"] >= 10 else None
        row["ok"] = row["requests"] <= row["requests_limit"] and row["max_rss_mb"] <= target_rss(row["vms"]) and (
            limit_s is None or row["seconds_min"] <= limit_s)
    path = write_results("plan_scale", {"rows": rows})
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
    else:
        print_table(["VMs", "latency ms", "requests", "limit N+3", "wall s (min)", "wall s (median)", "peak RSS MB", "ok"],
                    [[r["vms"], r["latency_ms"], r["requests"], r["requests_limit"], r["seconds_min"],
                      r["seconds_median"], r["max_rss_mb"], "yes" if r["ok"] else "NO"] for r in rows])
        print(f"\nresults: {path}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
