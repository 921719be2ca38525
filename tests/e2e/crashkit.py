"""Tools for crash tests: kill ``phoenix apply`` right after its Nth write, and check what a re-run leaves.

The kill point is found by counting, not by sleeping: the simulator answers N writes and holds the
next one (``/_sim/faults`` ``hold_after_writes``); once ``GET /_sim/faults`` says it is holding,
the phoenix process is SIGKILLed, and only then is the held write released (unanswered).  So
"killed after write N" is exact, and tasks that write started keep running in PVE meanwhile, as
they would on a real cluster.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from phoenix.pve.ownership import owner_of

VMS = (8001, 8002, 8003)
TEMPLATE = 8000
WRITE_METHODS = ("POST", "PUT", "DELETE")


def template_and_three_vms_on_two_nodes(data: dict) -> None:
    """The shipped example spread over pve1/pve2 (shared storage) plus a third VM on pve2."""
    data["vm_defaults"]["node"] = "pve1"
    data["vm_defaults"]["storage_pool"] = "shared-nfs"
    data["templates"][0]["node"] = "pve1"
    data["templates"][0]["storage_pool"] = "shared-nfs"
    third = json.loads(json.dumps(data["vms"][1]))
    third.update(vmid=8003, name="app-vm-03", node="pve2", start=True)
    third["network_config"] = {"ip": "10.0.0.103/24", "gw": "10.0.0.1"}
    data["vms"][1]["node"] = "pve2"
    data["vms"].append(third)


def writes(stats: dict) -> int:
    return sum(n for key, n in stats["by_endpoint"].items() if key.split(" ", 1)[0] in WRITE_METHODS)


def phoenix_cmd(run: Any, *args: str) -> list[str]:
    return [sys.executable, "-m", "phoenix", "--config", str(run.config), "--state", str(run.state), *args]


def kill_after_writes(control: Any, run: Any, n: int, timeout: float = 120,
                      args: tuple[str, ...] = ("apply", "--auto-approve")) -> tuple[bool, str]:
    """Start ``phoenix <args>``; SIGKILL it once the simulator holds its write n+1.

    Returns (killed, output): ``killed`` False when the command finished with fewer writes."""
    control.fault(hold_after_writes=n)
    proc = subprocess.Popen(phoenix_cmd(run, *args), env={**os.environ, **run.env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    killed = False
    try:
        while proc.poll() is None:
            if control.faults().get("holding"):
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"phoenix apply neither finished nor reached write {n + 1} in {timeout:.0f}s")
            time.sleep(0.01)
        output = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        control.clear_faults()            # releases the held write, unanswered: phoenix is gone
    return killed, output


def leftovers(server: Any, run: Any) -> list[str]:
    """Everything an interrupted run may leave that a converged re-run must have removed."""
    found: list[str] = []
    model = server.sim.model
    for node in model.nodes:
        for storage in ("local", "shared-nfs"):
            try:
                root = model.storage_root(storage, node)
            except Exception:  # noqa: BLE001 - a storage that is not a directory
                continue
            import_dir = Path(root) / "import"
            if import_dir.is_dir():
                found += [f"staging image {storage}:import/{p.name} on {node}" for p in import_dir.iterdir()]
            snippets = Path(root) / "snippets"
            if snippets.is_dir():
                found += [f"snippet temp file {p} on {node}" for p in snippets.iterdir() if p.name.startswith(".")]
    state_dir = Path(run.state).parent
    found += [f"state temp file {p.name}" for p in state_dir.glob(".*.tmp")]
    return found


def cluster_problems(server: Any, run: Any) -> list[str]:
    """Orphans, duplicates, foreign markers, locks: what must never be there after a converged re-run."""
    problems: list[str] = []
    lineage = json.loads(Path(run.state).read_text())["lineage"]
    mode = stat.S_IMODE(os.stat(run.state).st_mode)
    if mode != 0o600:
        problems.append(f"state file mode {oct(mode)}")
    sim = server.sim
    with sim.mutex:
        vms = {vmid: (vm.node, dict(vm.conf)) for vmid, vm in sim.model.vms.items()}
    if sorted(vms) != [TEMPLATE, *VMS]:
        problems.append(f"VMs in the cluster: {sorted(vms)} (want {[TEMPLATE, *VMS]})")
    for vmid, (node, conf) in vms.items():
        if conf.get("lock"):
            problems.append(f"VM {vmid} still locked ({conf['lock']})")
        if owner_of(conf.get("description"), vmid) != lineage:
            problems.append(f"VM {vmid} without this state's ownership marker")
    if TEMPLATE in vms and vms[TEMPLATE][1].get("template") != "1":
        problems.append("VM 8000 is not a template")
    volumes = [v.volid for v in sim.model.volumes.values() if v.vmid is not None and int(v.vmid) not in vms]
    if volumes:
        problems.append(f"volumes of VMs that do not exist: {volumes}")
    return problems


def assert_converges(server: Any, run: Any, point: str) -> None:
    result = run("apply", "--auto-approve")
    assert result.exit_code == 0, f"{point}: re-apply failed:\n{result.output}"
    result = run("plan", "--detailed-exitcode")
    assert result.exit_code == 0, f"{point}: not converged:\n{result.output}"
    assert server.sim.tasks.wait_idle(60)
    problems = cluster_problems(server, run) + leftovers(server, run)
    assert not problems, f"{point}: {problems}"
