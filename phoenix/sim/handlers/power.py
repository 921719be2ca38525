"""Power endpoints: ``status/current``, ``status/start`` (``qmstart``), ``status/stop``, ``status/shutdown``."""

from __future__ import annotations

from phoenix.sim.core import Request, route
from phoenix.sim.handlers._vmutil import (
    assert_root_for_skiplock, check_lock, spawn, start_vm, stop_vm, vm_of, vm_status,
)


@route("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def status_current(req: Request) -> dict:
    with req.sim.mutex:
        return vm_status(vm_of(req), full=True)


@route("POST", "/nodes/{node}/qemu/{vmid}/status/start")
def status_start(req: Request) -> str:
    skiplock = assert_root_for_skiplock(req)
    node, vmid = req.node, req.vmid
    with req.sim.mutex:
        check_lock(vm_of(req), skiplock, allow=("suspended",))
    return spawn(req, "qmstart", vmid, lambda task: start_vm(task.sim, task, node, vmid, skiplock))


@route("POST", "/nodes/{node}/qemu/{vmid}/status/stop")
def status_stop(req: Request) -> str:
    skiplock = assert_root_for_skiplock(req)
    node, vmid = req.node, req.vmid
    with req.sim.mutex:
        vm_of(req)
    return spawn(req, "qmstop", vmid, lambda task: stop_vm(task.sim, task, node, vmid, skiplock))


@route("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown")
def status_shutdown(req: Request) -> str:
    skiplock = assert_root_for_skiplock(req)
    node, vmid = req.node, req.vmid
    with req.sim.mutex:
        vm_of(req)
    timeout, force = float(req.params.get("timeout", 60)), bool(req.params.get("forceStop"))
    return spawn(req, "qmshutdown", vmid, lambda task: stop_vm(task.sim, task, node, vmid, skiplock, graceful=True,
                                                               timeout=timeout, force=force))
