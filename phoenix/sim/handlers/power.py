"""Power endpoints: ``status/current``, ``start`` (``qmstart``), ``stop``, ``shutdown``, ``reset``, ``suspend``, ``resume``."""

from __future__ import annotations

import time
from typing import Any

from phoenix.sim import propstr
from phoenix.sim.core import PVEError, Request, param_error, route
from phoenix.sim.model import guest
from phoenix.sim.handlers._vmutil import (
    DEFAULT_MEMORY_MB, assert_root_for_skiplock, check_lock, spawn, start_vm, stop_vm, vm_of, vm_status,
)


@route("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def status_current(req: Request) -> dict:
    with req.sim.mutex:
        return vm_status(vm_of(req), full=True)


def _checked(req: Request, check) -> tuple[bool, str, int]:
    """The synchronous part every power call shares: root-only ``skiplock``, then ``check(req)`` under the mutex."""
    skiplock = assert_root_for_skiplock(req)
    with req.sim.mutex:
        check(req, skiplock)
    return skiplock, req.node, req.vmid


@route("POST", "/nodes/{node}/qemu/{vmid}/status/start")
def status_start(req: Request) -> str:
    skiplock, node, vmid = _checked(req, lambda req, skiplock: check_lock(vm_of(req), skiplock, allow=("suspended",)))
    return spawn(req, "qmstart", vmid, lambda task: start_vm(task.sim, task, node, vmid, skiplock))


@route("POST", "/nodes/{node}/qemu/{vmid}/status/stop")
def status_stop(req: Request) -> str:
    skiplock, node, vmid = _checked(req, lambda req, skiplock: vm_of(req))
    return spawn(req, "qmstop", vmid, lambda task: stop_vm(task.sim, task, node, vmid, skiplock))


@route("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown")
def status_shutdown(req: Request) -> str:
    def check(req: Request, skiplock: bool) -> None:
        vm = vm_of(req)
        if vm.running and vm.paused and not req.params.get("forceStop"):
            raise PVEError("VM is paused - cannot shutdown\n")

    skiplock, node, vmid = _checked(req, check)
    timeout, force = float(req.params.get("timeout", 60)), bool(req.params.get("forceStop"))
    return spawn(req, "qmshutdown", vmid, lambda task: stop_vm(task.sim, task, node, vmid, skiplock, graceful=True,
                                                               timeout=timeout, force=force))


# --- reset, suspend, resume (Qemu.pm L3803-4210; reboot is in its own module) ------------------

def _running_vm(req: Request, allow_suspended: bool = False) -> Any:
    """``check_running``: the config must be on this node, then the VM must run."""
    cluster = req.sim.model
    cluster.require_node(req.node)
    vm = cluster.vms.get(req.vmid)
    if vm is None or vm.node != req.node:
        raise PVEError(f"unable to find configuration file for VM {req.vmid} on node '{req.node}'\n")
    if not vm.running and not (allow_suspended and vm.lock == "suspended"):
        raise PVEError(f"VM {req.vmid} not running\n")
    return vm


@route("POST", "/nodes/{node}/qemu/{vmid}/status/reset")
def status_reset(req: Request) -> str:
    skiplock, node, vmid = _checked(req, lambda req, skiplock: _running_vm(req))

    def work(task) -> None:
        with task.sim.locks.vm(vmid), task.sim.mutex:
            check_lock(task.sim.model.vm_on(node, vmid), skiplock)
            task.log(f"VM {vmid}: system_reset")     # QMP system_reset: the guest reboots, pending stays pending

    return spawn(req, "qmreset", vmid, work)


@route("POST", "/nodes/{node}/qemu/{vmid}/status/suspend")
def status_suspend(req: Request) -> str:
    skiplock = assert_root_for_skiplock(req)
    node, vmid, todisk = req.node, req.vmid, bool(req.params.get("todisk"))
    with req.sim.mutex:
        vm = _running_vm(req)
        if todisk and any(k.startswith("hostpci") for k in vm.conf):
            raise PVEError("cannot suspend VM to disk due to passed-through PCI device(s), which lack the "
                           "possibility to save/restore their internal state\n")

    def work(task) -> None:
        sim = task.sim
        with sim.locks.vm(vmid), sim.mutex:
            cluster = sim.model
            vm = cluster.vm_on(node, vmid)
            check_lock(vm, skiplock, allow=("backup",))
            if not todisk:
                vm.paused = True                   # QMP stop: still "running", qmpstatus "paused"
                sim.save()
                return
            vm.conf["lock"] = "suspending"
            storage = req.params.get("statestorage") or _state_storage(vm.conf)
            memory = int(propstr.split(vm.conf.get("memory", str(DEFAULT_MEMORY_MB)), "current")["current"])
            name = f"vm-{vmid}-state-suspend-{time.strftime('%Y-%m-%d')}"
            volume = cluster.alloc_volume(storage, node, vmid, (2 * memory + 500) << 20, fmt="raw", name=name)
            task.log(f"suspend VM {vmid} to disk: saving state to '{volume.volid}'")
            vm.conf.update({"vmstate": volume.volid, "runningmachine": vm_status(vm, full=True)["running-machine"],
                            "lock": "suspended"})
            guest.power_off(sim, vm)
            vm.status, vm.started_at, vm.pid, vm.agent_device, vm.paused = "stopped", None, None, False, False
            sim.save()
        if sim.guests is not None:                 # a real guest's QEMU quits once its state is saved
            from phoenix.sim.qemu.integration import stop_real_guest
            stop_real_guest(sim, vmid, graceful=False, timeout=0, force=True, use_agent=False)

    return spawn(req, "qmsuspend" if todisk else "qmpause", vmid, work)


def _state_storage(conf: dict[str, str]) -> str:
    """``find_vmstate_storage``: ``vmstatestorage``, else the storage of the first disk, else ``local``."""
    if conf.get("vmstatestorage"):
        return conf["vmstatestorage"]
    from phoenix.sim.model.vm import drive_keys
    for key in drive_keys(conf):
        volid = propstr.split(conf[key], "file").get("file", "")
        if ":" in volid and "cloudinit" not in volid and "media=cdrom" not in conf[key]:
            return volid.split(":", 1)[0]
    return "local"


@route("POST", "/nodes/{node}/qemu/{vmid}/status/resume")
def status_resume(req: Request) -> str:
    skiplock = assert_root_for_skiplock(req)
    if req.params.get("nocheck") and req.user != "root@pam":
        raise param_error({"nocheck": "Only root may use this option."})
    node, vmid = req.node, req.vmid
    with req.sim.mutex:
        _running_vm(req, allow_suspended=True)

    def work(task) -> None:
        sim = task.sim
        with sim.mutex:
            vm = sim.model.vm_on(node, vmid)
            if vm.is_template:
                raise PVEError(f"VM {vmid} is a template and cannot be resumed!\n")
            from_disk = vm.lock == "suspended" and not vm.running
        if from_disk:
            start_vm(sim, task, node, vmid, skiplock)
            return
        with sim.locks.vm(vmid), sim.mutex:
            vm = sim.model.vm_on(node, vmid)
            if not vm.paused:
                return                            # QMP status "running": nothing to do, no lock check
            check_lock(vm, skiplock, allow=("backup",))
            vm.paused = False
            sim.save()

    return spawn(req, "qmresume", vmid, work)
