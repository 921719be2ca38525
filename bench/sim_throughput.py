#!/usr/bin/env python3
"""Throughput of the simulator: concurrent API-token clients hammering read endpoints over HTTPS.

Starts a SimServer in a temporary data dir, creates a few VMs, then N client threads (each with its
own keep-alive session) issue GETs for a few seconds.  Prints requests/s, errors and latency
percentiles; ``--json`` prints one JSON object instead.  Not a test: run it by hand or in CI.

    python bench/sim_throughput.py --clients 8 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phoenix.sim.server import SimServer  # noqa: E402

PATHS = ["/cluster/resources?type=vm", "/nodes/pve/qemu/100/config", "/nodes/pve/qemu/101/status/current",
         "/version", "/nodes/pve/tasks?limit=5"]


def _client(server: SimServer, deadline: float, latencies: list[float], errors: list[str], lock: threading.Lock) -> None:
    session = requests.Session()
    headers = {"Authorization": f"PVEAPIToken={server.api_token}"}
    mine: list[float] = []
    my_errors: list[str] = []
    i = 0
    while time.monotonic() < deadline:
        path = PATHS[i % len(PATHS)]
        i += 1
        started = time.perf_counter()
        try:
            response = session.get(f"{server.endpoint}/api2/json{path}", headers=headers,
                                   verify=server.ca_file, timeout=10)
            if response.status_code != 200:
                my_errors.append(f"{path}: HTTP {response.status_code} {response.reason}")
        except requests.RequestException as exc:
            my_errors.append(f"{path}: {exc.__class__.__name__}")
        mine.append(time.perf_counter() - started)
    session.close()
    with lock:
        latencies.extend(mine)
        errors.extend(my_errors)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def run(clients: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-") as tmp, \
            SimServer(Path(tmp) / "sim", task_scale=0.0, auth_fail_delay=0.0) as server:
        setup = requests.Session()
        for vmid in (100, 101):
            response = setup.post(f"{server.endpoint}/api2/json/nodes/pve/qemu", data={"vmid": vmid, "memory": 512},
                                  headers={"Authorization": f"PVEAPIToken={server.api_token}"},
                                  verify=server.ca_file, timeout=30)
            response.raise_for_status()
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        started = time.monotonic()
        deadline = started + seconds
        threads = [threading.Thread(target=_client, args=(server, deadline, latencies, errors, lock))
                   for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "clients": clients, "seconds": round(elapsed, 3), "requests": len(ordered),
        "rate_per_s": round(len(ordered) / elapsed, 1) if elapsed else 0.0, "errors": len(errors),
        "error_samples": errors[:5],
        "latency_ms": {"p50": round(_percentile(ordered, 0.50) * 1000, 2), "p90": round(_percentile(ordered, 0.90) * 1000, 2),
                       "p99": round(_percentile(ordered, 0.99) * 1000, 2), "max": round((ordered[-1] if ordered else 0) * 1000, 2),
                       "mean": round(statistics.fmean(ordered) * 1000, 2) if ordered else 0.0},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (default 8)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to drive load (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--min-rate", type=float, default=0.0, help="exit 1 if the rate is below this")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be ≥ 1 and --seconds > 0")
    result = run(args.clients, args.seconds)
    if args.json:
        print(json.dumps(result))
    else:
        lat = result["latency_ms"]
        print(f"{result['requests']} requests in {result['seconds']} s with {result['clients']} clients: "
              f"{result['rate_per_s']} req/s, {result['errors']} errors")
        print(f"latency ms: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}  mean {lat['mean']}")
        for sample in result["error_samples"]:
            print(f"  error: {sample}")
    return 1 if result["errors"] or result["rate_per_s"] < args.min_rate else 0


if __name__ == "__main__":
    sys.exit(main())
