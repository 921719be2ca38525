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


@route("GET", "/cluster/resources")
def cluster_resources(req: Request) -> list:
    kind = req.params.get("type")
    result = []
    with req.sim.mutex:
        cluster = req.sim.model
        if kind in (None, "vm"):
            for vmid, vm in sorted(cluster.vms.items()):
                entry = vm_status(vm)
                entry.update({"id": f"qemu/{vmid}", "type": "qemu", "node": vm.node, "template": 1 if vm.is_template else 0,
                              "maxcpu": entry.pop("cpus")})
                entry.pop("pid", None)
                result.append(entry)
        if kind in (None, "node"):
            result.extend(_node_entry(req, node) for node in cluster.nodes)
        if kind in (None, "storage"):
            for node in cluster.nodes:
                for sid, cfg in sorted(cluster.storages.items()):
                    total, used = cluster.storage_usage(sid, node)
                    result.append({"id": f"storage/{node}/{sid}", "type": "storage", "storage": sid, "node": node,
                                   "status": "available", "plugintype": cfg["type"], "content": cfg["content"],
                                   "shared": 1 if cfg.get("shared") else 0, "disk": used, "maxdisk": total})
    return result


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
