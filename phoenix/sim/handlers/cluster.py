"""Cluster-wide and node endpoints: /version, /nodes, /nodes/{node}/status, /cluster/status|resources|nextid."""

from __future__ import annotations

import hashlib
import time

from phoenix.sim.core import Request, param_error, route
from phoenix.sim.handlers._vmutil import vm_status
from phoenix.sim.model.cluster import CLUSTER_NAME

VERSION = {"version": "9.1.1", "release": "9.1", "repoid": "42fb6c1a4cba2b27"}
NODE_MEM = 64 << 30
NODE_CPUS = 16


@route("GET", "/version")
def version(req: Request) -> dict:
    return dict(VERSION)


def _fingerprint(node: str) -> str:
    digest = hashlib.sha256(node.encode()).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2))


def _node_entry(req: Request, node: str) -> dict:
    cluster = req.sim.model
    return {"node": node, "id": f"node/{node}", "type": "node", "status": "online", "level": "",
            "cpu": 0.02, "maxcpu": NODE_CPUS, "mem": 4 << 30, "maxmem": NODE_MEM, "disk": 8 << 30,
            "maxdisk": 100 << 30, "uptime": max(1, int(time.time()) - cluster.created),
            "ssl_fingerprint": _fingerprint(node)}


@route("GET", "/nodes")
def nodes(req: Request) -> list:
    with req.sim.mutex:
        return [_node_entry(req, node) for node in req.sim.model.nodes]


@route("GET", "/nodes/{node}/status")
def node_status(req: Request) -> dict:
    with req.sim.mutex:
        cluster = req.sim.model
        cluster.require_node(req.node)
        uptime = max(1, int(time.time()) - cluster.created)
    return {
        "uptime": uptime, "cpu": 0.02, "wait": 0, "loadavg": ["0.10", "0.12", "0.09"],
        "cpuinfo": {"cpus": NODE_CPUS, "cores": NODE_CPUS // 2, "sockets": 1, "model": "Simulated CPU", "mhz": "3000.000",
                    "hvm": "1", "flags": "", "user_hz": 100},
        "memory": {"total": NODE_MEM, "used": 4 << 30, "free": NODE_MEM - (4 << 30), "available": NODE_MEM - (4 << 30)},
        "swap": {"total": 0, "used": 0, "free": 0},
        "rootfs": {"total": 100 << 30, "used": 8 << 30, "free": 92 << 30, "avail": 92 << 30},
        "ksm": {"shared": 0},
        "kversion": "Linux 6.14.8-2-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2",
        "current-kernel": {"sysname": "Linux", "release": "6.14.8-2-pve", "machine": "x86_64",
                           "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2"},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "pveversion": f"pve-manager/{VERSION['version']}/{VERSION['repoid']}",
    }


def _interfaces(index: int) -> list[dict]:
    """A node's /etc/network/interfaces as PVE's installer leaves it: one NIC enslaved to ``vmbr0``."""
    address = f"192.168.100.{10 + index}"
    return [
        {"iface": "nic0", "type": "eth", "method": "manual", "method6": "manual", "families": ["inet"],
         "active": 1, "exists": 1, "priority": 1},
        {"iface": "vmbr0", "type": "bridge", "method": "static", "method6": "manual", "families": ["inet"],
         "active": 1, "autostart": 1, "priority": 2, "address": address, "netmask": "24",
         "cidr": f"{address}/24", "gateway": "192.168.100.1", "bridge_ports": "nic0", "bridge_stp": "off",
         "bridge_fd": "0"},
    ]


@route("GET", "/nodes/{node}/network")
def node_network(req: Request) -> list:
    with req.sim.mutex:
        index = req.sim.model.nodes.index(req.sim.model.require_node(req.node))
    wanted = req.params.get("type")
    bridges = ("bridge", "any_bridge", "any_local_bridge")
    return [iface for iface in _interfaces(index)
            if wanted is None or iface["type"] == wanted or (wanted in bridges and iface["type"] == "bridge")]


@route("GET", "/cluster/status")
def cluster_status(req: Request) -> list:
    with req.sim.mutex:
        names = list(req.sim.model.nodes)
    entries = []
    if len(names) > 1:
        entries.append({"type": "cluster", "id": "cluster", "name": CLUSTER_NAME, "nodes": len(names),
                        "quorate": 1, "version": len(names) + 1})
    for index, node in enumerate(names, start=1):
        entries.append({"type": "node", "id": f"node/{node}", "name": node, "nodeid": index,
                        "ip": f"127.0.0.{index}", "online": 1, "local": 1 if index == 1 else 0, "level": ""})
    return entries


def vm_resource(vm) -> dict:
    """A guest as ``/cluster/resources`` and pool members show it (``extract_vm_stats``)."""
    entry = vm_status(vm)
    entry.update({"id": f"qemu/{vm.vmid}", "type": "qemu", "node": vm.node, "template": 1 if vm.is_template else 0,
                  "maxcpu": entry.pop("cpus")})
    entry.pop("pid", None)
    return entry


def storage_resource(cluster, node: str, sid: str) -> dict:
    cfg = cluster.storages[sid]
    total, used = cluster.storage_usage(sid, node)
    return {"id": f"storage/{node}/{sid}", "type": "storage", "storage": sid, "node": node,
            "status": "available", "plugintype": cfg["type"], "content": cfg["content"],
            "shared": 1 if cfg.get("shared") else 0, "disk": used, "maxdisk": total}


def _pool_resource(cluster, poolid: str) -> dict:
    """A pool entry: cpu/mem/uptime summed over its running guests (Cluster.pm L564-585)."""
    entry = {"id": f"/pool/{poolid}", "pool": poolid, "type": "pool", "cpu": 0, "maxcpu": 0, "mem": 0,
             "maxmem": 0, "uptime": 0}
    for vmid in cluster.pools.by_id[poolid].vms:
        vm = cluster.vms.get(vmid)
        if vm is not None and vm.running:
            status = vm_status(vm)
            for key, source in (("cpu", "cpu"), ("maxcpu", "cpus"), ("mem", "mem"), ("maxmem", "maxmem"),
                                ("uptime", "uptime")):
                entry[key] += status[source]
    return entry


@route("GET", "/cluster/resources")
def cluster_resources(req: Request) -> list:
    kind = req.params.get("type")
    result = []
    with req.sim.mutex:
        cluster = req.sim.model
        if kind in (None, "vm"):
            for vmid, vm in sorted(cluster.vms.items()):
                entry = vm_resource(vm)
                pool = cluster.pools.pool_of(vmid)
                if pool is not None:
                    entry["pool"] = pool
                result.append(entry)
        if kind in (None, "node"):
            result.extend(_node_entry(req, node) for node in cluster.nodes)
        if kind in (None, "storage"):
            for node in cluster.nodes:
                for sid in sorted(cluster.storages):
                    result.append(storage_resource(cluster, node, sid))
        if kind is None:
            result.extend(_pool_resource(cluster, poolid) for poolid in sorted(cluster.pools.by_id))
    return result


@route("GET", "/cluster/ha/resources")
def ha_resources(req: Request) -> list:
    """No HA manager is modelled, so no VM is HA-managed: the honest answer is an empty list."""
    return []


@route("GET", "/cluster/tasks")
def cluster_tasks(req: Request) -> list:
    """Recent tasks of every node, running and finished, newest first (the cluster-wide task log)."""
    tasks = sorted(req.sim.tasks.all_tasks(), key=lambda task: (task.starttime, task.pid), reverse=True)
    return [task.list_view() for task in tasks]


@route("GET", "/cluster/nextid")
def nextid(req: Request) -> str:
    with req.sim.mutex:
        cluster = req.sim.model
        wanted = req.params.get("vmid")
        if wanted is not None:
            if int(wanted) in cluster.vms:
                raise param_error({"vmid": f"VM {wanted} already exists"})
            return str(wanted)
        return str(cluster.next_vmid())
