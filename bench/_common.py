"""Shared helpers of the bench scripts: a simulator, a generated fleet, phoenix as a measured child process.

Not a bench itself.  The simulator runs in the bench process (an in-process :class:`SimServer`);
phoenix always runs as a separate process (``python -m phoenix.cli`` via the ``phoenix`` console
script's module) so that its cold start and its peak RSS are what a user sees.  Peak RSS comes
from ``os.wait4`` on that one child (``ru_maxrss``), not from all children of the bench.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from phoenix.sim.server import SimServer  # noqa: E402

TEMPLATE_VMID = 9000
FIRST_VMID = 10000
SHARED_STORAGE = "shared-nfs"      # the simulator's shared storage: templates and clones usable from every node
PASSWORD_HASH = ("$6$Phx3xampl$PluJTTI9u4rz.gQEtphO3az.Vi.sW8L1QBu8wZec1UT.VHo3zZ5XcEgT7aCVPqbT0Mr7LidS0DrDzbEN"
                 "iSGPE.")
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELyzZdGD+OekL+iD7dqozDfouKGBknYZxQ3AogwAjb/ phoenix-bench@throwaway"
# phoenix's console script, as a module run: the same code path as the installed `phoenix`.
PHOENIX = [sys.executable, "-c", "from phoenix.cli import main; main()"]


def compile_phoenix() -> None:
    """Byte-compile phoenix's modules once, as an installed package is (pip compiles at install; an
    editable checkout on its first run).  A machine with PYTHONDONTWRITEBYTECODE set would otherwise
    make every measured start compile ~70 modules from source: ~0.15 s that no user pays."""
    import compileall

    compileall.compile_dir(str(ROOT / "phoenix"), quiet=1)


def node_names(count: int) -> list[str]:
    return ["pve"] if count == 1 else [f"pve{i}" for i in range(1, count + 1)]


def _fleet_ip(i: int) -> str:
    """A unique address in 10.16.0.0/12 for VM ``i`` (the first 3,000 as the seeds were first made)."""
    if i < 3000:
        return f"10.{20 + i // 250}.{i % 250}.10/12"
    return f"10.{16 + (i // 250) % 16}.{i % 250}.{11 + i // 4000}/12"


def desired_fleet(count: int, nodes: list[str], *, start: bool = True, disk_gb: int = 16) -> dict[str, Any]:
    """A desired-state document: one template (on shared storage, first node) and ``count`` VMs
    cloned from it, spread round-robin over ``nodes`` (full clones onto the shared storage, so a
    clone may land on any node)."""
    vms = []
    for i in range(count):
        vmid = FIRST_VMID + i
        vms.append({
            "vmid": vmid,
            "name": f"bench-{vmid}",
            "clone_from_vmid": TEMPLATE_VMID,
            "node": nodes[i % len(nodes)],
            "network_config": {"ip": _fleet_ip(i), "gw": "10.16.0.1"},
            "user_config": {"username": "bench", "password_hash": PASSWORD_HASH, "ssh_public_keys": [SSH_KEY]},
            "start": start,
            "tags": ["bench"],
        })
    return {
        "vm_defaults": {
            "cores": 1, "memory_mb": 1024, "disk_size_gb": disk_gb, "storage_pool": SHARED_STORAGE,
            "network_bridge": "vmbr0", "snippets_storage": SHARED_STORAGE, "snippets_backend": "local",
            "nameservers": ["10.16.0.1"], "searchdomain": "bench.example.org", "full_clone": True,
            "package_upgrade": False,
        },
        "templates": [{
            "vmid": TEMPLATE_VMID, "name": "bench-template", "node": nodes[0], "storage_pool": SHARED_STORAGE,
            "image": {"url": "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
                      "checksum_url": "https://cloud-images.ubuntu.com/noble/current/SHA256SUMS",
                      "checksum_algorithm": "sha256", "filename": "noble-server-cloudimg-amd64.img"},
            "customize": {"packages": ["qemu-guest-agent"], "run_commands": []},
        }],
        "vms": vms,
    }


@dataclass
class Workspace:
    """One simulator + one desired file + one state file in a directory."""

    dir: Path
    server: SimServer

    def __post_init__(self) -> None:
        compile_phoenix()

    @property
    def config(self) -> Path:
        return self.dir / "desired" / "phoenix_vm_configs.json"

    @property
    def state(self) -> Path:
        return self.dir / "state" / "phoenix.state.json"

    def write_desired(self, doc: dict[str, Any]) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps(doc, indent=1))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)    # see compile_phoenix
        env.update({
            "PROXMOX_VE_ENDPOINT": self.server.endpoint,
            "PROXMOX_VE_API_TOKEN": self.server.api_token,
            "PROXMOX_VE_CA_FILE": str(self.server.ca_file),
            "PHOENIX_SIM_DATA_DIR": str(self.server.sim.settings.data_dir),
            "PHOENIX_IMAGE_CACHE": str(self.dir / "image-cache"),
            "COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb",
        })
        return env

    def sim_get(self, path: str) -> Any:
        response = requests.get(f"{self.server.endpoint}{path}", verify=self.server.ca_file, timeout=30)
        response.raise_for_status()
        return response.json()

    def sim_post(self, path: str, payload: Any = None) -> Any:
        response = requests.post(f"{self.server.endpoint}{path}", json=payload, verify=self.server.ca_file,
                                 timeout=30)
        response.raise_for_status()
        return response.json()

    def reset_stats(self) -> None:
        self.sim_post("/_sim/stats/reset")

    def stats(self) -> dict[str, Any]:
        return self.sim_get("/_sim/stats")

    def phoenix(self, *args: str, timeout: float = 1800) -> "Run":
        return run_measured([*PHOENIX, "--config", str(self.config), "--state", str(self.state), *args],
                            env=self.env(), cwd=self.dir, timeout=timeout)


def start_server(data_dir: Path, nodes: list[str], *, latency_ms: float = 0.0, task_scale: float = 0.0,
                 agent_boot_seconds: float = 3.0) -> SimServer:
    return SimServer(data_dir, nodes=nodes, host="127.0.0.1", port=0, latency_ms=latency_ms,
                     task_scale=task_scale, auth_fail_delay=0.0, agent_boot_seconds=agent_boot_seconds).start()


@dataclass
class Run:
    argv: list[str]
    returncode: int
    seconds: float
    max_rss_mb: float
    stdout: str
    stderr: str

    def check(self) -> "Run":
        if self.returncode != 0:
            tail = "\n".join((self.stdout + self.stderr).splitlines()[-25:])
            raise RuntimeError(f"exit {self.returncode}: {' '.join(self.argv[3:])}\n{tail}")
        return self


def run_measured(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 1800, stdin: str = "") -> Run:
    """Run ``argv`` to completion; wall time and the peak RSS of exactly this child.

    The peak is the child's ``VmHWM`` (/proc, reset at exec), polled while it runs: ``ru_maxrss``
    from ``wait4`` also counts the pages the child shared with this (large, simulator-holding)
    bench process between fork and exec, which inflated it by ~45 MB at 1,000 VMs."""
    out_path = Path(cwd or ".") / f".bench-out-{os.getpid()}"
    err_path = Path(cwd or ".") / f".bench-err-{os.getpid()}"
    started = time.perf_counter()
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = started + timeout
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    peak_mb = peak_kb / 1024.0 if peak_kb else usage.ru_maxrss / 1024.0
    return Run(argv, proc.returncode, seconds, peak_mb, stdout, stderr)


def _vm_hwm_kb(pid: int) -> int:
    """The process's peak resident set so far (kB), or 0 when /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(terse=True)}


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"bench": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if n and _numeric(c) else c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text.rstrip("x%"))
        return True
    except ValueError:
        return False


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
