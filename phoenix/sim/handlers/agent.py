"""Guest agent endpoints: ``agent/ping`` and ``agent/network-get-interfaces`` (``{"result": ...}``)."""

from __future__ import annotations

from phoenix.sim.core import PVEError, Request, route
from phoenix.sim.handlers._vmutil import vm_of
from phoenix.sim.model import guest


def _ready_vm(req: Request):
    with req.sim.mutex:
        vm = vm_of(req)
        guest.assert_agent_available(vm)
        boot_seconds = req.sim.settings.agent_boot_seconds * req.sim.settings.task_scale
        if not guest.agent_ready(vm, boot_seconds):
            raise PVEError("QEMU guest agent is not running\n")
        return vm


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/ping")
def agent_ping(req: Request) -> dict:
    _ready_vm(req)
    return {"result": {}}


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
def agent_network(req: Request) -> dict:
    vm = _ready_vm(req)
    return {"result": guest.network_interfaces(vm)}
