"""Guest agent endpoints (behaviors.md §12, §20).

Every endpoint forwards to the real qemu-guest-agent when the VM runs as a QEMU guest (``sim
serve --guest-image``); otherwise the modelled guest answers (``handlers/_simguest.py``: ping,
get-host-name, network-get-interfaces, exec, exec-status, file-read, following the cloud-init
seed it booted with).  ``info`` and ``get-osinfo`` answer fixed Debian 12 / QGA 7.2 facts for the modelled one.
"""

from __future__ import annotations

import base64
from typing import Any, Callable

from phoenix.sim.core import PVEError, Request, route
from phoenix.sim.handlers import _simguest as simulated
from phoenix.sim.handlers._vmutil import vm_of
from phoenix.sim.model import guest

FILE_READ_CHUNK = 1 << 20


def _ready_vm(req: Request):
    with req.sim.mutex:
        vm = vm_of(req)
        if req.sim.guests is not None and req.sim.guests.running(vm.vmid):
            guest.assert_agent_configured(vm)
            return vm
        guest.assert_agent_available(req.sim, vm)
        return vm


def _real(req: Request, vm: Any):
    """The real guest's agent client (after PVE's 3 s ping), or None for the modelled guest."""
    if req.sim.guests is None:
        return None
    from phoenix.sim.qemu.integration import real_agent
    return real_agent(req.sim, vm)


def _call(agent: Any, vm: Any, command: str, arguments: dict | None = None) -> Any:
    from phoenix.sim.qemu.integration import agent_call
    return agent_call(agent, vm.vmid, command, arguments)


def _real_only(req: Request) -> tuple[Any, Any]:
    """(VM, real agent) for commands only a real guest answers; the modelled guest says it lacks them."""
    vm, agent = _real_or_modelled(req)
    if agent is None:
        raise PVEError(f"Method '{req.method} {req.template}' not implemented for the simulated guest "
                       "(start the simulator with --guest-image for a real one)", status=501)
    return vm, agent


def _real_or_modelled(req: Request) -> tuple[Any, Any]:
    """(VM, real agent), or (VM, None) when the modelled guest answers."""
    vm = _ready_vm(req)
    return vm, _real(req, vm)


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/ping")
def agent_ping(req: Request) -> dict:
    vm = _ready_vm(req)
    _real(req, vm)                       # a real guest is pinged by real_agent itself
    return {"result": {}}


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
def agent_network(req: Request) -> dict:
    vm = _ready_vm(req)
    agent = _real(req, vm)
    if agent is not None:
        return {"result": _call(agent, vm, "guest-network-get-interfaces")}
    return simulated.network(req)


def _forwarded(command: str):
    def handler(req: Request) -> dict:
        vm, agent = _real_only(req)
        try:
            return {"result": _call(agent, vm, command)}
        except PVEError as exc:
            if exc.message.startswith("Agent error: "):     # register_command keeps QGA's error object
                return {"result": {"error": {"class": "GenericError", "desc": exc.message[13:].rstrip()}}}
            raise
    return handler


# The modelled guest reports itself as the Debian cloud image phoenix's example uses, with QGA 7.2's commands.
OS_INFO = {"id": "debian", "name": "Debian GNU/Linux", "pretty-name": "Debian GNU/Linux 12 (bookworm)",
           "version": "12 (bookworm)", "version-id": "12", "machine": "x86_64", "kernel-release": "6.1.0-28-cloud-amd64",
           "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)"}
QGA_COMMANDS = ("guest-exec", "guest-exec-status", "guest-file-close", "guest-file-open", "guest-file-read",
                "guest-file-seek", "guest-file-write", "guest-fsfreeze-freeze", "guest-fsfreeze-status",
                "guest-fsfreeze-thaw", "guest-fstrim", "guest-get-fsinfo", "guest-get-host-name", "guest-get-osinfo",
                "guest-get-time", "guest-get-timezone", "guest-get-users", "guest-get-vcpus", "guest-info",
                "guest-network-get-interfaces", "guest-ping", "guest-set-user-password", "guest-shutdown",
                "guest-suspend-disk", "guest-suspend-hybrid", "guest-suspend-ram", "guest-sync",
                "guest-sync-delimited")
NO_SUCCESS_RESPONSE = {"guest-shutdown", "guest-suspend-disk", "guest-suspend-hybrid", "guest-suspend-ram"}
QGA_INFO = {"version": "7.2.11", "supported_commands": [
    {"name": name, "enabled": True, "success-response": name not in NO_SUCCESS_RESPONSE} for name in QGA_COMMANDS]}


def _modelled_or_forwarded(command: str, modelled: dict | Callable[[Request], dict]):
    """A real guest answers ``command``; the modelled one answers ``modelled`` (a result, or a
    handler of the modelled guest that returns the whole answer)."""
    forwarded = _forwarded(command)

    def handler(req: Request) -> dict:
        _vm, agent = _real_or_modelled(req)
        if agent is not None:
            return forwarded(req)
        return modelled(req) if callable(modelled) else {"result": modelled}
    return handler


route("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name")(
    _modelled_or_forwarded("guest-get-host-name", simulated.host_name))
route("GET", "/nodes/{node}/qemu/{vmid}/agent/info")(_modelled_or_forwarded("guest-info", QGA_INFO))
route("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo")(_modelled_or_forwarded("guest-get-osinfo", OS_INFO))


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/exec")
def agent_exec(req: Request) -> dict:
    raw = req.params.get("command")
    command = [part for part in (raw if isinstance(raw, list) else str(raw or "").split("\0")) if part != ""]
    data = req.params.get("input-data")
    if not command and data is None:
        raise PVEError("command or input-data (or both) required\n")
    vm, agent = _real_or_modelled(req)
    if agent is None:
        return simulated.exec_(req, command, data)
    arguments: dict[str, Any] = {"capture-output": True}
    if command:
        arguments["path"], arguments["arg"] = command[0], command[1:]
    if data is not None:
        arguments["input-data"] = base64.b64encode(str(data).encode()).decode()
    result = _call(agent, vm, "guest-exec", arguments)
    return {"pid": int(result["pid"])}


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status")
def agent_exec_status(req: Request) -> dict:
    vm, agent = _real_or_modelled(req)
    if agent is None:
        return simulated.exec_status(req)
    status = _call(agent, vm, "guest-exec-status", {"pid": int(req.params["pid"])})
    result: dict[str, Any] = {}
    for key, value in status.items():
        if key in ("out-data", "err-data"):
            value = base64.b64decode(value).decode("latin-1")
        result[key] = (1 if value else 0) if isinstance(value, bool) else value
    return result


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read")
def agent_file_read(req: Request) -> dict:
    vm, agent = _real_or_modelled(req)
    if agent is None:
        return simulated.file_read(req)
    count = int(req.params.get("count", 16777216))
    offset = int(req.params.get("offset", 0))
    decode = bool(int(req.params.get("decode", 1)))
    handle = _call(agent, vm, "guest-file-open", {"path": req.params["file"], "mode": "r"})
    chunks: list[str] = []
    read, eof = 0, False
    try:
        if offset:
            _call(agent, vm, "guest-file-seek", {"handle": handle, "offset": offset, "whence": "set"})
        while read < count and not eof:
            chunk = _call(agent, vm, "guest-file-read", {"handle": handle, "count": min(FILE_READ_CHUNK, count - read)})
            read += int(chunk.get("count", 0))
            eof = bool(chunk.get("eof"))
            chunks.append(chunk.get("buf-b64", ""))
    finally:
        try:
            _call(agent, vm, "guest-file-close", {"handle": handle})
        except PVEError:
            pass                                   # PVE only warns about close errors
    content = "".join(base64.b64decode(c).decode("latin-1") for c in chunks) if decode else "".join(chunks)
    result: dict[str, Any] = {"content": content, "bytes-read": read}
    if not eof:
        result["truncated"] = 1
    return result
