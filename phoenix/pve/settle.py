"""Settling a create or clone whose outcome phoenix does not know.

``POST /nodes/{node}/qemu`` and ``POST .../clone`` are not idempotent: sent twice, the second
fails with ``already exists`` — or worse, a retry after a lost answer looks exactly like someone
else having taken the VMID.  The retry policy therefore never re-sends them after a lost answer
(:func:`phoenix.pve.retry.never_connected`); the caller reads back instead: once the VM's task is
over, the VM carries this state's ownership marker (the request did reach PVE: go on) or it does
not (someone else's VM: stop with the ``phoenix import`` error), or there is no VM (nothing was
created: the original error stands, and the next run simply creates it).
"""

from __future__ import annotations

from typing import Any, Callable

from phoenix.pve.client import PVEApiError
from phoenix.pve.locks import wait_unlocked
from phoenix.pve.ownership import NotOwnedError, ownership

__all__ = ["settle_create", "vm_node"]


def vm_node(client: Any, vmid: int) -> str | None:
    """The node that has ``vmid`` now (one ``/cluster/resources`` call), or None."""
    for entry in client.get("/cluster/resources", type="vm") or []:
        if int(entry.get("vmid", -1)) == int(vmid):
            return str(entry.get("node"))
    return None


def settle_create(client: Any, node: str, vmid: int, owner: str, cause: Exception,
                  report: Callable[[str], None] = lambda _line: None, *, timeout: float = 600,
                  source_vmid: int | None = None) -> dict[str, Any]:
    """The VM's config once its create/clone task is over, if it carries ``owner``'s marker.

    Raises ``cause`` when no VM exists (nothing was created), :class:`NotOwnedError` when another
    client's VM is there, :class:`~phoenix.pve.locks.StaleLockError` when the task died holding it."""
    where = vm_node(client, vmid)
    if where is None:
        raise cause
    report(f"VM {vmid}: outcome unknown ({cause}); reading it back")
    try:
        config = wait_unlocked(client, where, vmid, timeout=timeout, source_vmid=source_vmid, on_wait=report)
    except PVEApiError as exc:
        if "does not exist" in exc.message:       # the task failed and PVE removed its placeholder
            raise cause from None
        raise
    owned = ownership(config, owner, vmid)
    if not owned.ours:
        raise NotOwnedError(vmid, config.get("name"), where, owned, "creating it")
    report(f"VM {vmid} exists with this state's marker: the request did reach PVE; going on")
    return config
