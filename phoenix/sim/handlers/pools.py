"""``/pools`` and the deprecated ``/pools/{poolid}`` (pve-manager ``PVE/API2/Pool.pm``).

``GET /pools`` lists pools without members; with ``poolid`` it answers a one-element list with
``members`` (guests sorted by vmid as strings, then storages); ``/pools/{poolid}`` the same object
unwrapped.  Writes return null; their errors carry ``lock_user_config``'s prefix (500).
"""

from __future__ import annotations

from typing import Any

from phoenix.sim.core import Request, route
from phoenix.sim.handlers.cluster import storage_resource, vm_resource
from phoenix.sim.schema_formats import split_list


def _pool_view(req: Request, poolid: str, kind: str | None) -> dict[str, Any]:
    cluster = req.sim.model
    pool = cluster.pools.get(poolid)
    members: list[dict[str, Any]] = []
    if kind in (None, "qemu"):
        for vmid in sorted(pool.vms, key=str):
            vm = cluster.vms.get(vmid)
            if vm is not None:
                entry = vm_resource(vm)
                entry.pop("lock", None)
                entry.pop("tags", None)
                members.append(entry)
    if kind in (None, "storage"):
        for sid in pool.storage:
            if sid in cluster.storages:
                members.extend(storage_resource(cluster, node, sid) for node in cluster.nodes)
    view: dict[str, Any] = {"poolid": poolid, "members": members}
    if pool.comment:
        view["comment"] = pool.comment
    return view


@route("GET", "/pools")
def list_pools(req: Request) -> list:
    with req.sim.mutex:
        pools = req.sim.model.pools
        if req.params.get("poolid"):
            return [_pool_view(req, req.params["poolid"], req.params.get("type"))]
        return [{"poolid": pid, **({"comment": pool.comment} if pool.comment else {})}
                for pid, pool in sorted(pools.by_id.items())]


@route("GET", "/pools/{poolid}")
def read_pool(req: Request) -> dict:
    with req.sim.mutex:
        view = _pool_view(req, req.params["poolid"], req.params.get("type"))
    view.pop("poolid")
    return view


@route("POST", "/pools")
def create_pool(req: Request) -> None:
    with req.sim.mutex:
        req.sim.model.pools.create(req.params["poolid"], req.params.get("comment"))
        req.sim.save()


def _update(req: Request) -> None:
    with req.sim.mutex:
        req.sim.model.pools.update(req.params["poolid"], req.params, split_list)
        req.sim.save()


def _delete(req: Request) -> None:
    with req.sim.mutex:
        cluster = req.sim.model
        cluster.pools.delete(req.params["poolid"], set(cluster.vms))
        req.sim.save()


route("PUT", "/pools")(_update)
route("PUT", "/pools/{poolid}")(_update)
route("DELETE", "/pools")(_delete)
route("DELETE", "/pools/{poolid}")(_delete)
