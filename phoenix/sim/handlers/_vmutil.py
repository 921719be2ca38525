"""Helpers the VM handlers share: lookups, lock checks, status views, start/stop and cloud-init regeneration.

Start and stop live here (not in one handler) because create (``start=1``) and the status
endpoints both run them inside their tasks.
"""

from __future__ import annotations

import base64
import binascii
import functools
import random
import re
import time
from typing import Any
from urllib.parse import unquote

from phoenix.sim import propstr
from phoenix.sim.core import PVEError, Request
from phoenix.sim.model import cloudinit, guest
from phoenix.sim.model.pending import apply_pending, has_cloudinit_drive
from phoenix.sim.model.storage import split_volid
from phoenix.sim.model.vm import VM

__all__ = ["vm_of", "check_lock", "validate_sshkeys", "spawn", "vm_status", "regenerate_cloudinit",
           "start_vm", "stop_vm", "resume_from_disk", "boot_disk_size", "assert_root_for_skiplock", "SSH_KEY_TYPES"]

SSH_KEY_TYPES = ("ssh-rsa", "ssh-dss", "ssh-ed25519", "ssh-ed448", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                 "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
DEFAULT_MEMORY_MB = 512


def vm_of(req: Request) -> VM:
    """The VM of the request path (node checked first, then the config file on that node)."""
    cluster = req.sim.model
    cluster.require_node(req.node)
    return cluster.vm_on(req.node, req.vmid)


def check_lock(vm: VM, skiplock: bool = False, allow: tuple[str, ...] = ()) -> None:
    if vm.lock and not skiplock and vm.lock not in allow:
        raise PVEError(f"VM is locked ({vm.lock})\n")


def assert_root_for_skiplock(req: Request) -> bool:
    skiplock = bool(req.params.get("skiplock"))
    if skiplock and req.user != "root@pam":
        from phoenix.sim.core import param_error
        raise param_error({"skiplock": "Only root may use this option."})
    return skiplock


def validate_sshkeys(encoded: str) -> None:
    """What ``ssh-keygen -l`` accepts per line: ``[options] <type> <base64 blob> [comment]``."""
    for line in unquote(encoded).split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        while words and words[0] not in SSH_KEY_TYPES:
            words.pop(0)  # authorized_keys options before the key type
        if len(words) < 2:
            raise PVEError("SSH public key validation error\n")
        try:
            blob = base64.b64decode(words[1], validate=True)
        except (binascii.Error, ValueError):
            raise PVEError("SSH public key validation error\n") from None
        if len(blob) < 4 or blob[4:4 + int.from_bytes(blob[:4], "big")].decode(errors="replace") != words[0]:
            raise PVEError("SSH public key validation error\n")


def spawn(req: Request, task_type: str, task_id: Any, work, on_failure=None) -> str:
    return req.sim.tasks.spawn(req.node, task_type, str(task_id), req.user, work, on_failure)


def boot_disk_size(conf: dict[str, str]) -> int:
    found = guest.boot_disk(conf)
    if found is None:
        return 0
    size = found[1].get("size")
    return propstr.parse_size(size) if size else 0


@functools.lru_cache(maxsize=1024, typed=True)
def _memory_mib(memory: str) -> int:
    """``memory: [current=]<MiB>[,...]`` (VMs share a few values; a malformed one raises each time)."""
    return int(propstr.split(memory, default_key="current").get("current", DEFAULT_MEMORY_MB))


def _sizes(conf: dict[str, str]) -> tuple[int, int, int]:
    """(memory MiB, cpus, boot disk bytes) of a config: the parsing part of a status entry."""
    memory = _memory_mib(conf.get("memory", str(DEFAULT_MEMORY_MB)))
    cpus = int(conf.get("vcpus") or int(conf.get("sockets", 1)) * int(conf.get("cores", 1)))
    return memory, cpus, boot_disk_size(conf)


def vm_status(vm: VM, full: bool = False) -> dict[str, Any]:
    """vmstatus entry (``/nodes/{node}/qemu``, ``status/current``)."""
    conf = vm.conf
    memory, cpus, maxdisk = _sizes(conf)
    running = vm.running
    status: dict[str, Any] = {
        "vmid": vm.vmid, "status": vm.status, "name": conf.get("name", f"VM {vm.vmid}"), "cpus": cpus,
        "maxmem": memory << 20, "mem": (memory << 20) // 4 if running else 0, "maxdisk": maxdisk,
        "disk": 0, "cpu": 0.012 if running else 0, "uptime": vm.uptime(), "netin": 0, "netout": 0,
        "diskread": 0, "diskwrite": 0,
    }
    if running:
        status["pid"] = vm.pid
    if vm.is_template:
        status["template"] = 1
    if vm.lock:
        status["lock"] = vm.lock
    if conf.get("tags"):
        status["tags"] = conf["tags"]
    if full:
        status["qmpstatus"] = "paused" if running and vm.paused else vm.status
        status["ha"] = {"managed": 0}
        if guest.agent_enabled(conf):
            status["agent"] = 1
        if running:
            status["running-machine"] = _running_machine(conf.get("machine", ""))
            status["running-qemu"] = "9.2.0"
    return status


def _running_machine(machine: str) -> str:
    """The versioned machine QEMU runs: ``q35`` (in any form) → ``pc-q35-…``, else i440fx; a pinned version stays."""
    kind = propstr.split(machine, "type").get("type", "")
    pinned = re.fullmatch(r"pc-(i440fx|q35)-(\d+\.\d+)(\+pve\d+)?", kind)
    if pinned:
        return f"pc-{pinned.group(1)}-{pinned.group(2)}{pinned.group(3) or '+pve0'}"
    return f"pc-{'q35' if 'q35' in kind else 'i440fx'}-9.2+pve1"


def _read_snippet(cluster: Any, node: str, volid: str) -> str:
    sid, volname = split_volid(volid)
    cluster.storage(sid)
    if not volname.startswith("snippets/"):
        raise PVEError(f"{volid} is not in the snippets directory\n")
    found = cluster.file_path(node, volid)
    if found is None or not found[0].is_file():
        raise PVEError(f"can't open '{cluster.pve_path(sid, volname)}' - No such file or directory\n")
    with open(found[0], "rb") as handle:
        return handle.read(cloudinit.SNIPPET_MAX).decode("utf-8", errors="replace")


def regenerate_cloudinit(cluster: Any, vm: VM, log=lambda line: None) -> None:
    """Write the cloud-init drive (start, PUT cloudinit): files stored on the VM, special section cleared."""
    if not has_cloudinit_drive(vm.conf):
        return
    log("generating cloud-init ISO")
    vm.ci_generated = cloudinit.generate(vm.conf, vm.vmid, lambda volid: _read_snippet(cluster, vm.node, volid))
    vm.cloudinit = {}


def start_vm(sim: Any, task: Any, node: str, vmid: int, skiplock: bool = False) -> None:
    """``vm_start``: checks, pending applied, cloud-init regenerated, then the guest boots."""
    with sim.locks.vm(vmid):
        with sim.mutex:
            cluster = sim.model
            vm = cluster.vm_on(node, vmid)
            if vm.is_template:
                raise PVEError("you can't start a vm if it's a template\n")
            check_lock(vm, skiplock, allow=("suspended",))
            if vm.running:
                raise PVEError(f"VM {vmid} already running\n")
            if vm.lock == "suspended":
                resume_from_disk(cluster, vm, task.log)
            if vm.pending:
                apply_pending(cluster, vm)
                sim.save()
            regenerate_cloudinit(cluster, vm, task.log)
            sim.save()
        task.sleep(1.0)
        real_pid = None
        if sim.guests is not None:       # a real QEMU guest when the boot disk descends from its image
            from phoenix.sim.qemu.integration import start_real_guest
            real_pid = start_real_guest(sim, task, node, vmid)
        with sim.mutex:
            vm = sim.model.vm_on(node, vmid)
            vm.status, vm.started_at, vm.pid = "running", time.time(), real_pid or random.randint(1000, 4000000)
            guest.boot(sim, vm)
            sim.save()


def resume_from_disk(cluster: Any, vm: VM, log=lambda line: None) -> None:
    """Start from a ``suspend todisk=1`` state: the state volume is read, then freed, and the lock goes."""
    state = vm.conf.pop("vmstate", None)
    if state:
        log(f"resuming VM {vm.vmid} from state '{state}'")
        cluster.free_volume(vm.node, state)
    for key in ("runningmachine", "runningcpu", "lock"):
        vm.conf.pop(key, None)


def stop_vm(sim: Any, task: Any, node: str, vmid: int, skiplock: bool = False, seconds: float = 1.0, *,
            graceful: bool = False, timeout: float = 60.0, force: bool = False) -> None:
    """``vm_stop``/``vm_shutdown``: a stopped VM stays stopped (task OK); pending changes are applied.

    ``graceful`` (shutdown) asks a real guest to power off and waits up to ``timeout`` (then kills
    only with ``force``); a plain stop kills it."""
    with sim.locks.vm(vmid):
        with sim.mutex:
            vm = sim.model.vm_on(node, vmid)
            check_lock(vm, skiplock)
            if not vm.running:
                return
            use_agent = guest.agent_enabled(vm.conf)
        if sim.guests is not None:
            from phoenix.sim.qemu.integration import stop_real_guest
            stop_real_guest(sim, vmid, graceful=graceful, timeout=timeout, force=force, use_agent=use_agent)
        task.sleep(seconds)
        with sim.mutex:
            cluster = sim.model
            vm = cluster.vm_on(node, vmid)
            guest.power_off(sim, vm)
            vm.status, vm.started_at, vm.pid, vm.paused = "stopped", None, None, False
            if vm.pending:
                apply_pending(cluster, vm)
            sim.save()

