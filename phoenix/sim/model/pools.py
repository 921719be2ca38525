"""Resource pools as ``user.cfg`` keeps them: ``pool:<poolid>:<comment>:<vmid>,…:<storeid>,…:``.

A guest is in at most one pool (pve-access-control ``AccessControl.pm`` L1600-1603).  Pools exist
only once created (``POST /pools``); create/clone with ``pool=`` check that (403) and add the VM
at the end of their worker; destroy removes it.  Error texts: pve-manager ``PVE/API2/Pool.pm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phoenix.sim.core import PVEError

__all__ = ["Pool", "Pools"]


@dataclass
class Pool:
    comment: str | None = None
    vms: list[int] = field(default_factory=list)
    storage: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"comment": self.comment, "vms": list(self.vms), "storage": list(self.storage)}


class Pools:
    """All pools of the cluster, keyed by poolid."""

    def __init__(self, data: dict[str, Any] | None = None):
        self.by_id: dict[str, Pool] = {pid: Pool(p.get("comment"), [int(v) for v in p.get("vms", [])],
                                                 list(p.get("storage", [])))
                                       for pid, p in (data or {}).items()}

    def to_json(self) -> dict[str, Any]:
        return {pid: pool.to_json() for pid, pool in sorted(self.by_id.items())}

    def get(self, poolid: str, prefix: str = "") -> Pool:
        pool = self.by_id.get(poolid)
        if pool is None:
            raise PVEError(f"{prefix}pool '{poolid}' does not exist\n")
        return pool

    def check_exist(self, poolid: str) -> None:
        """``check_pool_exist``: a permission error (403) naming the pool."""
        if poolid not in self.by_id:
            raise PVEError(f"Permission check failed (pool '{poolid}' does not exist)\n", status=403)

    def pool_of(self, vmid: int) -> str | None:
        return next((pid for pid, pool in self.by_id.items() if vmid in pool.vms), None)

    def create(self, poolid: str, comment: str | None) -> None:
        prefix = "create pool failed: "
        if poolid in self.by_id:
            raise PVEError(f"{prefix}pool '{poolid}' already exists\n")
        if not poolid[:1].isalpha():
            raise PVEError(f"{prefix}pool name must start with a letter\n")
        parent = poolid.rpartition("/")[0]
        if parent and parent not in self.by_id:
            raise PVEError(f"{prefix}parent '{parent}' of pool '{poolid}' does not exist\n")
        self.by_id[poolid] = Pool(comment=comment or None)

    def update(self, poolid: str, params: dict[str, Any], split: Any) -> None:
        """``update_pool``: comment, add/remove VMs and storages (``delete=1`` removes)."""
        prefix = "update pools failed: "
        pool = self.get(poolid, prefix)
        if "comment" in params:
            pool.comment = params["comment"] or None
        remove = bool(params.get("delete"))
        for text in split(params.get("vms") or ""):
            vmid = int(text)
            if remove:
                if vmid not in pool.vms:
                    raise PVEError(f"{prefix}VM {vmid} is not a pool member\n")
                pool.vms.remove(vmid)
                continue
            if vmid in pool.vms:
                raise PVEError(f"{prefix}VM {vmid} is already a pool member\n")
            other = self.pool_of(vmid)
            if other is not None:
                if not params.get("allow-move"):
                    raise PVEError(f"{prefix}VM {vmid} belongs already to pool '{other}' and 'allow-move' is not set\n")
                self.by_id[other].vms.remove(vmid)
            pool.vms.append(vmid)
        for sid in split(params.get("storage") or ""):
            if remove:
                if sid not in pool.storage:
                    raise PVEError(f"{prefix}Storage '{sid}' is not a pool member\n")
                pool.storage.remove(sid)
            elif sid in pool.storage:
                raise PVEError(f"{prefix}Storage '{sid}' is already a pool member\n")
            else:
                pool.storage.append(sid)

    def delete(self, poolid: str, existing_vmids: set[int]) -> None:
        prefix = "delete pool failed: "
        pool = self.get(poolid, prefix)
        for sub in sorted(self.by_id):
            if sub.startswith(poolid + "/"):
                raise PVEError(f"{prefix}pool '{poolid}' is not empty (contains pool '{sub}')\n")
        for vmid in pool.vms:
            if vmid in existing_vmids:
                raise PVEError(f"{prefix}pool '{poolid}' is not empty (contains VM {vmid})\n")
        if pool.storage:
            raise PVEError(f"{prefix}pool '{poolid}' is not empty (contains storage '{pool.storage[0]}')\n")
        del self.by_id[poolid]

    def add_vm(self, poolid: str, vmid: int) -> None:
        """``add_vm_to_pool``: silently nothing if the pool is gone meanwhile."""
        pool = self.by_id.get(poolid)
        if pool is not None and vmid not in pool.vms:
            self.remove_vm(vmid)
            pool.vms.append(vmid)

    def remove_vm(self, vmid: int) -> None:
        for pool in self.by_id.values():
            if vmid in pool.vms:
                pool.vms.remove(vmid)
