#!/usr/bin/env python3
"""The same N VMs by Ansible's community.proxmox playbook and by ``phoenix apply``, side by side.

Each tool gets a fresh simulator (same nodes, same task scale, same template on shared storage)
and makes N full clones spread over the nodes: clone, cores/memory/cloud-init (user, SSH key,
static IP, DNS), grow the disk, start.  Then each runs again with nothing to do.  Measured per
run: wall time, CPU of the tool's processes (``RUSAGE_CHILDREN``: Ansible's forks included) and
the API requests the simulator served.  Modes: each tool's defaults (Ansible ``forks`` 5, phoenix
``--parallelism`` 4) and equal parallelism (``--parallelism P`` for both).

What phoenix does beyond the playbook (it is not a like-for-like subset): it delivers a user-data
snippet per VM and waits until the guest agent answers, because it only reports "complete" for a
VM that runs as declared; the playbook stops at "start".

Ansible is optional: ``pip install ansible`` (the PyPI package bundles community.proxmox) into
the same environment; without it only phoenix's rows are printed, saying so.  The playbook
(bench/ansible/vms.yml) runs per VM as an inventory host (``connection: local``), so ``forks`` is
its parallelism, as Ansible users parallelise per-VM work.

    python bench/vs_ansible.py                        # N=50 on 3 nodes, task_scale 0.2, equal P=10
    python bench/vs_ansible.py --vms 20 --task-scale 0.1 --parallelism 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (PHOENIX, SHARED_STORAGE, SSH_KEY, TEMPLATE_VMID, Workspace, desired_fleet, node_names,  # noqa: E402
                     print_table, start_server, write_results)

PLAYBOOK = Path(__file__).with_name("ansible") / "vms.yml"
ANSIBLE_DEFAULT_FORKS = 5
PHOENIX_DEFAULT_PARALLELISM = 4


def ansible_playbook() -> str | None:
    return shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook")


def timed(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 3600) -> tuple[float, float, str]:
    """(wall s, CPU s of the process and its reaped descendants, output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        raise RuntimeError(f"exit {result.returncode}: {' '.join(argv[:4])}…\n{(result.stdout + result.stderr)[-4000:]}")
    return wall, cpu, result.stdout


def prepare(tmp: Path, count: int, nodes: list[str], task_scale: float) -> Workspace:
    """A fresh simulator with the template provisioned by phoenix (not measured)."""
    server = start_server(tmp / "sim", nodes, task_scale=task_scale, agent_boot_seconds=3.0)
    ws = Workspace(tmp, server)
    ws.write_desired(desired_fleet(count, nodes))
    ws.phoenix("apply", "--auto-approve", "--target", str(TEMPLATE_VMID)).check()
    return ws


def run_phoenix(ws: Workspace, parallelism: int) -> list[dict]:
    rows = []
    for label in ("first run", "no-change run"):
        ws.reset_stats()
        wall, cpu, out = timed([*PHOENIX, "--config", str(ws.config), "--state", str(ws.state), "apply",
                                "--auto-approve", "--parallelism", str(parallelism)], ws.env(), ws.dir)
        if label == "no-change run" and "No changes." not in out:
            raise RuntimeError(f"phoenix re-run was not a no-op:\n{out[-2000:]}")
        rows.append({"tool": "phoenix", "run": label, "parallelism": parallelism, "wall_s": round(wall, 2),
                     "cpu_s": round(cpu, 2), "requests": ws.stats()["total"]})
    return rows


def inventory(count: int, nodes: list[str], path: Path) -> None:
    fleet = desired_fleet(count, nodes)["vms"]
    lines = ["[vms]"]
    for vm in fleet:
        ip = vm["network_config"]["ip"]
        lines.append(f"{vm['name']} vmid={vm['vmid']} pve_node={vm['node']} ip_cidr={ip} ansible_connection=local")
    path.write_text("\n".join(lines) + "\n")


def run_ansible(ws: Workspace, count: int, nodes: list[str], forks: int) -> list[dict]:
    binary = ansible_playbook()
    assert binary is not None
    hosts = ws.dir / "inventory.ini"
    inventory(count, nodes, hosts)
    host, _, port = ws.server.endpoint[len("https://"):].rpartition(":")
    user_token, _, secret = ws.server.api_token.partition("=")
    env = {**os.environ, "PROXMOX_HOST": host, "PROXMOX_PORT": port, "PROXMOX_TOKEN_ID": user_token.split("!")[1],
           "PROXMOX_TOKEN_SECRET": secret, "REQUESTS_CA_BUNDLE": str(ws.server.ca_file),
           "ANSIBLE_HOME": str(ws.dir / "ansible"), "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
           "ANSIBLE_HOST_KEY_CHECKING": "false", "ANSIBLE_LOCALHOST_WARNING": "false",
           "SHARED_STORAGE": SHARED_STORAGE, "SSH_KEY": SSH_KEY, "TEMPLATE_VMID": str(TEMPLATE_VMID),
           "ANSIBLE_FORKS": str(forks)}
    rows = []
    for label in ("first run", "no-change run"):
        ws.reset_stats()
        wall, cpu, out = timed([binary, "-i", str(hosts), str(PLAYBOOK)], env, ws.dir)
        rows.append({"tool": "ansible", "run": label, "parallelism": forks, "wall_s": round(wall, 2),
                     "cpu_s": round(cpu, 2), "requests": ws.stats()["total"]})
    return rows


def measure(tool: str, count: int, nodes: list[str], task_scale: float, parallelism: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix=f"phoenix-bench-vs-{tool}-") as tmp:
        ws = prepare(Path(tmp), count, nodes, task_scale)
        try:
            if tool == "phoenix":
                return run_phoenix(ws, parallelism)
            return run_ansible(ws, count, nodes, parallelism)
        finally:
            ws.server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--task-scale", type=float, default=0.2)
    parser.add_argument("--parallelism", type=int, default=10, help="the equal-parallelism mode (default 10)")
    parser.add_argument("--modes", nargs="+", choices=["defaults", "equal"], default=["defaults", "equal"])
    args = parser.parse_args(argv)
    nodes = node_names(args.nodes)
    have_ansible = ansible_playbook() is not None
    if not have_ansible:
        print("ansible-playbook not found: only phoenix is measured (pip install ansible — it bundles "
              "community.proxmox)", file=sys.stderr)
    rows: list[dict] = []
    for mode in args.modes:
        phoenix_p = PHOENIX_DEFAULT_PARALLELISM if mode == "defaults" else args.parallelism
        ansible_p = ANSIBLE_DEFAULT_FORKS if mode == "defaults" else args.parallelism
        for row in measure("phoenix", args.vms, nodes, args.task_scale, phoenix_p):
            rows.append({"mode": mode, **row})
        if have_ansible:
            for row in measure("ansible", args.vms, nodes, args.task_scale, ansible_p):
                rows.append({"mode": mode, **row})
    ratios = []
    for mode in args.modes:
        for run in ("first run", "no-change run"):
            pair = {r["tool"]: r for r in rows if r["mode"] == mode and r["run"] == run}
            if "ansible" in pair:
                ratios.append({"mode": mode, "run": run,
                               "wall_ratio": round(pair["ansible"]["wall_s"] / pair["phoenix"]["wall_s"], 1),
                               "cpu_ratio": round(pair["ansible"]["cpu_s"] / max(pair["phoenix"]["cpu_s"], 0.01), 1)})
    path = write_results("vs_ansible", {"vms": args.vms, "nodes": args.nodes, "task_scale": args.task_scale,
                                        "rows": rows, "ratios": ratios})
    print_table(["mode", "tool", "run", "parallelism", "wall s", "CPU s", "requests"],
                [[r["mode"], r["tool"], r["run"], r["parallelism"], r["wall_s"], r["cpu_s"], r["requests"]]
                 for r in rows])
    if ratios:
        print()
        print_table(["mode", "run", "Ansible/phoenix wall", "Ansible/phoenix CPU"],
                    [[r["mode"], r["run"], f"{r['wall_ratio']}x", f"{r['cpu_ratio']}x"] for r in ratios])
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
