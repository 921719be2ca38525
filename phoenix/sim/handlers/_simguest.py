"""Agent commands answered by the modelled guest (:mod:`phoenix.sim.model.guest`), for VMs that do not
run as a real QEMU guest: the same answers, in PVE's shapes (behaviors.md §12, §20).

The model mutex is held while the guest answers because the simulated guest keeps its state in the
model (exec and exec-status change it, so they save).  QGA errors become ``500 Agent error: <desc>``.
"""

from __future__ import annotations

import base64
from typing import Any, Callable

from phoenix.sim.core import PVEError, Request
from phoenix.sim.handlers._vmutil import vm_of
from phoenix.sim.model import guest as guests

__all__ = ["with_guest", "host_name", "network", "exec_", "exec_status", "file_read"]

READ_CHUNK = 1 << 20            # guest-file-read chunk size PVE uses (Agent.pm L536-552)
MAX_READ = 16 * 1024 * 1024


def with_guest(req: Request, action: Callable[[guests.Guest], Any], save: bool = False) -> Any:
    with req.sim.mutex:
        guest = guests.assert_agent_available(req.sim, vm_of(req))
        try:
            result = action(guest)
        except guests.GuestError as exc:
            raise PVEError(f"Agent error: {exc.desc}\n") from None
        if save:
            req.sim.save()
        return result


def host_name(req: Request) -> dict:
    return {"result": {"host-name": with_guest(req, lambda g: g.host_name())}}


def network(req: Request) -> dict:
    return {"result": with_guest(req, lambda g: g.network_interfaces())}


def exec_(req: Request, argv: list[str], stdin: str | None) -> dict:
    data = stdin.encode() if isinstance(stdin, str) else None
    return {"pid": with_guest(req, lambda g: g.exec([str(a) for a in argv], data), save=True)}


def exec_status(req: Request) -> dict:
    status = with_guest(req, lambda g: g.exec_status(int(req.params["pid"])), save=True)
    return {key: (int(value) if isinstance(value, bool) else value) for key, value in status.items()}


def file_read(req: Request) -> dict:
    """Whole file, then ``offset``/``count`` applied; ``decode=0`` returns base64 per 1 MiB chunk."""
    data = with_guest(req, lambda g: g.file_read(str(req.params["file"])))
    offset = int(req.params.get("offset", 0))
    count = int(req.params.get("count", MAX_READ))
    chunk = data[offset:offset + count]
    result: dict[str, Any] = {"bytes-read": len(chunk)}
    if int(req.params.get("decode", 1)):
        result["content"] = chunk.decode("latin-1")      # raw bytes as code points (behaviors.md §20)
    else:
        result["content"] = "".join(base64.b64encode(chunk[i:i + READ_CHUNK]).decode()
                                    for i in range(0, len(chunk), READ_CHUNK))
    if offset + count < len(data):
        result["truncated"] = 1
    return result
