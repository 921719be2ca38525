#!/usr/bin/env python3
"""The floor under any Python PVE stand-in: a trivial stdlib HTTPS server answering one fixed JSON body.

The server is ``http.server.ThreadingHTTPServer`` with TLS (what the simulator is built on) and a
handler that only sleeps the latency and writes a ~1.3 KB answer (the size of a VM's ``GET
/pending``); it runs in its own process.  The client is phoenix's GET path (``phoenix/pve/direct.py``)
from N threads over kept-alive connections.  Printed: requests/s and the CPU per request of each
side, so the simulator's own cost per request (``bench/sim_profile.py``) can be read against what the
HTTP + TLS + threads machinery costs by itself.  Not a test.

    python bench/http_floor.py                       # 16 and 64 connections, 0 and 10 ms
    python bench/http_floor.py --conns 64 --latency 10 --requests 8000
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import ssl
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phoenix.pve.direct import DirectCalls  # noqa: E402
from phoenix.sim.certs import ensure_tls  # noqa: E402

BODY = json.dumps({"data": [{"key": f"key{i}", "value": "v" * 24} for i in range(32)]}).encode()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(cert: Path, key: Path, latency_s: float) -> tuple[int, int]:
    """Fork a server process; return (pid, port)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def do_GET(self) -> None:
            if latency_s:
                time.sleep(latency_s)
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n")
            self.wfile.write(head.encode() + BODY)      # one write, as the simulator does

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    pid = os.fork()
    if pid == 0:
        try:
            server.serve_forever()
        finally:
            os._exit(0)
    server.socket.close()
    return pid, server.server_address[1]


def measure(ca: Path, port: int, pid: int, conns: int, count: int) -> dict[str, float]:
    client = DirectCalls("127.0.0.1", port, "PVEAPIToken=bench@pve!floor=x", str(ca), 30.0, conns)
    with ThreadPoolExecutor(conns) as pool:
        list(pool.map(lambda _: client.call("GET", "/floor", {}), range(conns * 2)))      # connections made
        started, mine, theirs = time.perf_counter(), time.process_time(), _cpu_seconds(pid)
        list(pool.map(lambda _: client.call("GET", "/floor", {}), range(count)))
        wall = time.perf_counter() - started
        result = {"req_per_s": count / wall, "server_us": (_cpu_seconds(pid) - theirs) * 1e6 / count,
                  "client_us": (time.process_time() - mine) * 1e6 / count}
    client.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 10.0], help="ms per request")
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args(argv)
    if min(args.conns) < 1 or args.requests < 1 or min(args.latency) < 0:
        parser.error("--conns and --requests must be ≥ 1, --latency ≥ 0")
    with tempfile.TemporaryDirectory(prefix="phoenix-floor-") as tmp:
        tls = ensure_tls(Path(tmp))
        print("conns  latency ms  req/s  server us/req  client us/req")
        for latency in args.latency:
            pid, port = serve(tls.cert_file, tls.key_file, latency / 1000.0)
            try:
                for conns in args.conns:
                    row = measure(tls.ca_file, port, pid, conns, args.requests)
                    print(f"{conns:5d}  {latency:10.1f}  {row['req_per_s']:5.0f}  {row['server_us']:13.0f}  "
                          f"{row['client_us']:13.0f}", flush=True)
            finally:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
