#!/usr/bin/env python3
"""The simulator under `phoenix plan`'s read pattern, with the server in its own process (optionally profiled).

A cluster of N VMs shaped like phoenix's converged clones (cloud-init, static IP, started) is built
in-process and written once; a server process serves it; this process then replays what
`phoenix plan` does: one ``GET /cluster/resources`` and a ``GET .../pending`` per VM from 16 threads
sharing one keep-alive ``requests`` session (phoenix's client: proxmoxer, pool of 16).  Prints req/s
per round; round 1 reads every VM for the first time (what a plan costs), later rounds are warm.
``--read config`` reads ``.../config`` instead.  ``--cprofile FILE`` profiles the server process (pstats dump at exit); ``--py-spy FILE``
records it with py-spy (flame graph SVG).  Not a test.

    python bench/sim_profile.py --vms 1000 --clients 16 --rounds 5
    python bench/sim_profile.py --cprofile /tmp/sim.prof && python -m pstats /tmp/sim.prof
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

ROOT = Path(__file__).resolve().parents[1]
# SIM_PROFILE_ROOT=<another checkout> serves that checkout's simulator (A/B comparisons of one change)
sys.path.insert(0, os.environ.get("SIM_PROFILE_ROOT") or str(ROOT))

FIRST_VMID = 10000
SSH_KEY = "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIELyzZdGD%2BOekL%2BiD7dqozDfouKGBknYZxQ3AogwAjb%2F%20bench%40x"


def build_cluster(data_dir: Path, count: int) -> None:
    """Write a cluster.json with ``count`` converged-clone-shaped VMs (no tasks, no API round trips)."""
    from phoenix.sim.model import Cluster
    from phoenix.sim.model.vm import VM
    from phoenix.sim.persist import ModelStore

    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster.create(["pve"], data_dir)
    now = time.time()
    for i in range(count):
        vmid = FIRST_VMID + i
        mac = f"BC:24:11:{(i >> 16) & 255:02X}:{(i >> 8) & 255:02X}:{i & 255:02X}"
        ip = f"10.{20 + i // 250}.{i % 250}.10/12"
        conf = {
            "agent": "enabled=1", "boot": "order=scsi0", "cicustom": f"user=shared-nfs:snippets/phoenix-{vmid}-user.yaml",
            "ciuser": "bench", "cores": "1", "description": "Template built by phoenix from a cloud image.\n"
            "phoenix-agent-baked: 1\n", "ide2": f"shared-nfs:{vmid}/vm-{vmid}-cloudinit.qcow2,media=cdrom",
            "ipconfig0": f"ip={ip},gw=10.16.0.1", "memory": "1024", "meta": "creation-qemu=9.2.0,ctime=1795650815",
            "name": f"bench-{vmid}", "nameserver": "10.16.0.1", "net0": f"virtio={mac},bridge=vmbr0", "ostype": "l26",
            "scsi0": f"shared-nfs:{vmid}/vm-{vmid}-disk-0.qcow2,size=16G", "scsihw": "virtio-scsi-pci",
            "searchdomain": "bench.example.org", "serial0": "socket", "smbios1": f"uuid=00000000-0000-4000-8000-{vmid:012d}",
            "sshkeys": SSH_KEY, "tags": "bench", "vga": "serial0", "vmgenid": f"00000000-0000-4000-9000-{vmid:012d}",
        }
        cluster.vms[vmid] = VM(vmid=vmid, node="pve", conf=conf, status="running", started_at=now, pid=100000 + i,
                               agent_device=True, agent_installed=True)
    ModelStore(data_dir).save(cluster)


def serve(data_dir: Path, info_file: Path, cprofile: str | None) -> None:
    """Server process: start a SimServer, publish how to reach it, run until SIGTERM."""
    from phoenix.sim.server import SimServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = SimServer(data_dir, nodes=["pve"], host="127.0.0.1", port=0, task_scale=0.0, auth_fail_delay=0.0)
    if cprofile:
        _install_thread_profiler()       # before start(): the event front's loop is profiled from its first call
    server.start()
    tmp = info_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"endpoint": server.endpoint, "token": server.api_token, "ca": server.ca_file}))
    os.replace(tmp, info_file)
    stop.wait(3600)
    server.stop()
    if cprofile:
        _dump_thread_profiles(cprofile)


_PROFILES: list = []


def _install_thread_profiler() -> None:
    """One cProfile.Profile per connection thread (cProfile is per thread), merged at exit; timed
    in thread CPU time, so waiting for the GIL, the model mutex or the network does not count."""
    import cProfile
    from phoenix.sim import event_front
    from phoenix.sim import server as server_module

    def profiled(original):
        def run(self, *args) -> None:
            profile = cProfile.Profile(time.thread_time)
            _PROFILES.append(profile)
            profile.enable()
            try:
                original(self, *args)
            finally:
                profile.disable()
        return run

    # connections handed to threads of their own, and the event front's loop (which answers the reads)
    server_module._RequestHandler.handle = profiled(server_module._RequestHandler.handle)
    event_front.EventFront._run = profiled(event_front.EventFront._run)


def _dump_thread_profiles(path: str) -> None:
    import pstats
    profiles = [p for p in _PROFILES if p.getstats()]
    if not profiles:
        return
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    stats.dump_stats(path)


def _get(session: requests.Session, base: str, headers: dict, ca: str, path: str) -> int:
    response = session.get(f"{base}/api2/json{path}", headers=headers, verify=ca, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {response.status_code} {response.reason}")
    return len(response.content)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), so the server's CPU per request can be reported."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(info: dict, count: int, clients: int, rounds: int, server_pid: int,
          read: str = "pending") -> list[tuple[float, float, float]]:
    session = requests.Session()
    session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=clients))
    headers = {"Authorization": f"PVEAPIToken={info['token']}"}
    base, ca = info["endpoint"], info["ca"]
    rates = []
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(lambda v: _get(session, base, headers, ca, "/version"), range(clients * 2)))  # warm connections
        for n in range(rounds):
            started, cpu, mine = time.perf_counter(), _cpu_seconds(server_pid), time.process_time()
            _get(session, base, headers, ca, "/cluster/resources")
            list(pool.map(lambda vmid: _get(session, base, headers, ca, f"/nodes/pve/qemu/{vmid}/{read}"),
                          range(FIRST_VMID, FIRST_VMID + count)))
            elapsed, cpu = time.perf_counter() - started, _cpu_seconds(server_pid) - cpu
            mine = time.process_time() - mine
            rates.append(((count + 1) / elapsed, cpu * 1e6 / (count + 1), mine * 1e6 / (count + 1)))
            print(f"round {n + 1}: {count + 1} requests in {elapsed:.3f} s = {rates[-1][0]:.0f} req/s; server CPU "
                  f"{cpu:.2f} s = {cpu * 1e6 / (count + 1):.0f} us/request; client CPU {mine:.2f} s", flush=True)
    session.close()
    return rates


def drive_lean(info: dict, count: int, clients: int, rounds: int, server_pid: int,
               read: str = "pending") -> list[tuple[float, float, float]]:
    """The same requests over plain ``http.client`` keep-alive connections (one per thread): a client
    that costs far less CPU than requests, so the server's own capacity shows."""
    import http.client
    import ssl
    from urllib.parse import urlsplit

    url = urlsplit(info["endpoint"])
    context = ssl.create_default_context(cafile=info["ca"])
    headers = {"Authorization": f"PVEAPIToken={info['token']}"}
    local = threading.local()

    def get(path: str) -> int:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=30)
        conn.request("GET", f"/api2/json{path}", headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status} {response.reason}")
        return len(body)

    rates = []
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(lambda _: get("/version"), range(clients * 2)))
        for n in range(rounds):
            started, cpu, mine = time.perf_counter(), _cpu_seconds(server_pid), time.process_time()
            get("/cluster/resources")
            list(pool.map(lambda vmid: get(f"/nodes/pve/qemu/{vmid}/{read}"), range(FIRST_VMID, FIRST_VMID + count)))
            elapsed, cpu = time.perf_counter() - started, _cpu_seconds(server_pid) - cpu
            mine = time.process_time() - mine
            rates.append(((count + 1) / elapsed, cpu * 1e6 / (count + 1), mine * 1e6 / (count + 1)))
            print(f"round {n + 1} (lean): {count + 1} requests in {elapsed:.3f} s = {rates[-1][0]:.0f} req/s; server CPU "
                  f"{cpu:.2f} s = {cpu * 1e6 / (count + 1):.0f} us/request; client CPU {mine:.2f} s", flush=True)
        pool.map(lambda _: getattr(local, "conn", None) and local.conn.close(), range(clients))
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--read", choices=("pending", "config"), default="pending",
                        help="what is read per VM (phoenix plan reads .../pending)")
    parser.add_argument("--lean", action="store_true", help="use a plain http.client client (less client CPU)")
    parser.add_argument("--cprofile", metavar="FILE", help="cProfile the server's connection threads into FILE")
    parser.add_argument("--py-spy", metavar="FILE", help="py-spy record the server process into FILE (SVG)")
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "INFO_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), args.cprofile)
        return 0
    if not 1 <= args.vms <= 100000 or not 1 <= args.clients <= 256 or not 1 <= args.rounds <= 1000:
        parser.error("--vms 1..100000, --clients 1..256, --rounds 1..1000")
    with tempfile.TemporaryDirectory(prefix="phoenix-simprof-") as tmp:
        data_dir, info_file = Path(tmp) / "sim", Path(tmp) / "info.json"
        build_cluster(data_dir, args.vms)
        cmd = [sys.executable, __file__, "--serve", str(data_dir), str(info_file)]
        if args.cprofile:
            cmd += ["--cprofile", str(Path(args.cprofile).resolve())]
        server = subprocess.Popen(cmd)
        spy = None
        try:
            deadline = time.monotonic() + 60
            while not info_file.exists():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server process did not start")
                time.sleep(0.05)
            info = json.loads(info_file.read_text())
            if args.py_spy:
                spy = subprocess.Popen(["py-spy", "record", "-p", str(server.pid), "-o", args.py_spy, "-r", "1000", *(["--format", "raw"] if args.py_spy.endswith(".txt") else []),
                                        "--threads", "--gil", "--nonblocking"], stdout=subprocess.DEVNULL)
                time.sleep(1)
            rates = (drive_lean if args.lean else drive)(info, args.vms, args.clients, args.rounds, server.pid, args.read)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            server.terminate()
            server.wait(timeout=60)
    def mid(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]
    print(f"GET {args.read} x {args.vms}, {args.clients} clients{' (lean client)' if args.lean else ''}: median "
          f"{mid([r[0] for r in rates]):.0f} req/s, best {max(r[0] for r in rates):.0f} req/s; server "
          f"{mid([r[1] for r in rates]):.0f} us CPU/request, client {mid([r[2] for r in rates]):.0f} us/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
