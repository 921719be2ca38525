"""The simulated cluster: nodes, storage.cfg, VM configs and VM disk volumes, as one JSON document.

The HTTP layer persists :meth:`Cluster.to_json` atomically and rebuilds it with
:meth:`Cluster.from_json`; everything a handler needs to answer like PVE lives here, so the
handlers stay thin.  Callers hold ``sim.mutex`` while they use a Cluster.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any, Callable

from phoenix.sim.core import PVEError
from phoenix.sim.model import images
from phoenix.sim.model.pools import Pools
from phoenix.sim.model.tracking import Changes, TrackedTable
from phoenix.sim.model.storage import (
    DEFAULT_STORAGES, FILE_CONTENT_DIRS, STORAGE_TOTAL, VOLID_PREFIX, StorageLayout, Volume,
    file_volume_format, image_volname_info, split_volid,
)
from phoenix.sim.model.usage import StorageUsage
from phoenix.sim.model.vm import VM

__all__ = ["Cluster", "MAC_PREFIX"]

_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
MAC_PREFIX = "BC:24:11"          # datacenter.cfg mac_prefix default
NEXTID_RANGE = (100, 1000000)    # datacenter.cfg next-id defaults
CLUSTER_NAME = "phoenix-sim"


def _counted_file(name: str) -> bool:
    """A file a storage lists as a volume (not a sidecar, not a hidden temp file)."""
    return not name.endswith(images.SIDECAR_SUFFIX) and not name.startswith(".")


class Cluster:
    """All PVE state of the simulator."""

    def __init__(self, nodes: list[str], data_dir: Path, storages: dict[str, dict],
                 vms: dict[int, VM], volumes: list[Volume], created: int, pools: Pools | None = None):
        self.nodes = list(nodes)
        self.data_dir = Path(data_dir)
        self.storages = storages
        self.changes = Changes()     # what the next save must write (see model/tracking.py)
        self.vms: dict[int, VM] = TrackedTable(self.changes, "vms", vms)
        self.volumes: dict[tuple[str, str], Volume] = TrackedTable(
            self.changes, "volumes", {(v.node, v.volid): v for v in volumes})
        self.created = created
        self.pools = pools or Pools()
        self.layout = StorageLayout(self.data_dir, self.nodes[0])
        self._usage = StorageUsage()
        self._macs_taken: set[str] | None = None       # built on the first random_mac
        # Set by a simulator with a real-guest image: does this file hold that image's bytes?
        self.guest_image_match: Callable[[Path], bool] | None = None

    # --- construction / persistence --------------------------------------------------------------
    @classmethod
    def create(cls, nodes: list[str], data_dir: Path) -> "Cluster":
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        cluster = cls(nodes, data_dir, {k: dict(v) for k, v in DEFAULT_STORAGES.items()}, {}, [],
                      int(time.time()))
        cluster.ensure_dirs()
        return cluster

    @classmethod
    def from_json(cls, data: dict[str, Any], data_dir: Path) -> "Cluster":
        vms = {int(k): VM.from_json(v) for k, v in data.get("vms", {}).items()}
        volumes = [Volume.from_json(v) for v in data.get("volumes", [])]
        cluster = cls(data["nodes"], data_dir, data.get("storages") or dict(DEFAULT_STORAGES), vms,
                      volumes, data.get("created", int(time.time())), Pools(data.get("pools")))
        cluster.ensure_dirs()
        return cluster

    def to_json(self) -> dict[str, Any]:
        return {
            **self.header_json(),
            "vms": {str(vmid): vm.to_json() for vmid, vm in sorted(self.vms.items())},
            "volumes": [v.to_json() for v in self.volumes.values()],
        }

    def header_json(self) -> dict[str, Any]:
        """Everything but VMs and volumes (small; compared at each save)."""
        return {"format": 1, "nodes": list(self.nodes), "created": self.created,
                "storages": {sid: dict(cfg) for sid, cfg in self.storages.items()}, "pools": self.pools.to_json()}

    def take_changes(self) -> tuple[dict[str, Any], list[tuple[str, str, dict[str, Any] | None]]]:
        """The VMs and volumes changed since the last call, as ``{vmid: json | None}`` and
        ``[(node, volid, json | None)]`` (None: removed) — what an incremental save writes."""
        vmids, volume_keys = self.changes.take()
        vms: dict[str, Any] = {}
        for vmid in sorted(vmids):
            vm = self.vms.get(vmid)
            vms[str(vmid)] = vm.to_json() if vm is not None else None
        volumes = []
        for node, volid in sorted(volume_keys):
            volume = self.volumes.get((node, volid))
            volumes.append((node, volid, volume.to_json() if volume is not None else None))
        return vms, volumes

    def ensure_dirs(self) -> None:
        for sid, cfg in self.storages.items():
            if "path" not in cfg:
                continue
            for node in self.nodes:
                for content in FILE_CONTENT_DIRS:
                    if content in cfg["content"].split(","):
                        self.layout.content_dir(sid, node, bool(cfg.get("shared")), content)

    # --- nodes -----------------------------------------------------------------------------------
    def require_node(self, node: str) -> str:
        """A path's ``{node}`` must name a cluster node (pveproxy cannot resolve others)."""
        if node not in self.nodes:
            raise PVEError(f"hostname lookup '{node}' failed - failed to get address info for: "
                           f"{node}: Name or service not known\n")
        return node

    # --- VMs -------------------------------------------------------------------------------------
    def vm_on(self, node: str, vmid: int) -> VM:
        """The VM whose config file is on ``node``; else PVE's load_config error."""
        vm = self.vms.get(int(vmid))
        if vm is None or vm.node != node:
            raise PVEError(f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist\n")
        return vm

    def next_vmid(self) -> int:
        lower, upper = NEXTID_RANGE
        for vmid in range(lower, upper):
            if vmid not in self.vms:
                return vmid
        raise PVEError(f"unable to get any free VMID in range [{lower}, {upper}]\n")

    def random_mac(self) -> str:
        """A new MAC with PVE's prefix.  PVE draws it at random without a check; the simulator also
        avoids the MACs its VMs had when the model was loaded and those it handed out since (a scan
        of every config per call made a large clone run quadratic)."""
        if self._macs_taken is None:
            self._macs_taken = {m.upper() for vm in self.vms.values() for key, value in vm.conf.items()
                                if key.startswith("net") for m in _MAC_RE.findall(value)}
        while True:
            tail = ":".join(f"{random.randint(0, 255):02X}" for _ in range(3))
            mac = f"{MAC_PREFIX}:{tail}"
            if mac not in self._macs_taken:
                self._macs_taken.add(mac)
                return mac

    # --- storages --------------------------------------------------------------------------------
    def storage(self, sid: str) -> dict:
        cfg = self.storages.get(sid)
        if cfg is None:
            raise PVEError(f"storage '{sid}' does not exist\n")
        return cfg

    def storage_content(self, sid: str) -> set[str]:
        return set(self.storage(sid)["content"].split(","))

    def is_shared(self, sid: str) -> bool:
        return bool(self.storage(sid).get("shared"))

    def vol_node(self, sid: str, node: str) -> str:
        """The namespace key of a storage's volumes: "" for shared storages."""
        return "" if self.is_shared(sid) else node

    def storage_root(self, sid: str, node: str) -> Path:
        """Real directory backing a file-based storage on ``node``."""
        cfg = self.storage(sid)
        if "path" not in cfg:
            raise PVEError(f"storage '{sid}' is not a file based storage\n")
        return self.layout.root(sid, node, bool(cfg.get("shared")))

    def pve_path(self, sid: str, volname: str) -> str:
        """The path PVE would print for a file volume (``/var/lib/vz/snippets/x.yaml``)."""
        cfg = self.storage(sid)
        kind, _, rest = volname.partition("/")
        sub = FILE_CONTENT_DIRS.get(kind, "images")
        if kind not in FILE_CONTENT_DIRS:
            rest = volname
        return f"{cfg.get('path', '/dev/' + cfg.get('vgname', sid))}/{sub}/{rest}"

    def file_path(self, node: str, volid: str) -> tuple[Path, str] | None:
        """Real path and content type of a file volume (iso/import/snippets/...), or None."""
        sid, volname = split_volid(volid)
        cfg = self.storage(sid)
        kind, sep, name = volname.partition("/")
        content = next((c for c, p in VOLID_PREFIX.items() if p == kind), None)
        if "path" not in cfg or not sep or content is None or "/" in name or name in ("", ".", ".."):
            return None
        return self.layout.content_dir(sid, node, bool(cfg.get("shared")), content) / name, content

    def list_files(self, sid: str, node: str) -> list[dict]:
        """File volumes of a storage as content-list entries."""
        cfg = self.storage(sid)
        if "path" not in cfg:
            return []
        entries = []
        for content in cfg["content"].split(","):
            if content not in FILE_CONTENT_DIRS:
                continue
            folder = self.layout.content_dir(sid, node, bool(cfg.get("shared")), content)
            for path in sorted(folder.iterdir()):
                if not path.is_file() or not _counted_file(path.name):
                    continue
                stat = path.stat()
                entries.append({"volid": f"{sid}:{VOLID_PREFIX[content]}/{path.name}", "content": content,
                                "format": file_volume_format(content, path.name), "size": stat.st_size,
                                "ctime": int(stat.st_mtime)})
        return entries

    def _volume_index(self) -> StorageUsage:
        """The usage and disk-name index, brought up to date with the volumes changed since last asked."""
        self._usage.sync(self.volumes, self.changes.take_usage())
        return self._usage

    def storage_usage(self, sid: str, node: str) -> tuple[int, int]:
        """(total, used) bytes of a storage on a node (running totals: model/usage.py)."""
        cfg = self.storage(sid)
        total = STORAGE_TOTAL.get(cfg["type"], 100 << 30)
        used = self._volume_index().volumes_used(sid, self.vol_node(sid, node))
        if "path" in cfg:
            for content in cfg["content"].split(","):
                if content in FILE_CONTENT_DIRS:
                    folder = self.layout.content_dir(sid, node, bool(cfg.get("shared")), content)
                    used += self._usage.folder_bytes(folder, _counted_file)
        return total, min(used, total)

    # --- image volumes ---------------------------------------------------------------------------
    def volume(self, node: str, volid: str) -> Volume | None:
        sid, _ = split_volid(volid)
        if sid not in self.storages:
            return None
        return self.volumes.get((self.vol_node(sid, node), volid))

    def discard_vm(self, node: str, vmid: int, volids: list[str]) -> None:
        """Undo a failed create or clone: free the volumes it allocated and drop its config, as PVE does."""
        for volid in volids:
            volume = self.volume(node, volid)
            if volume is not None:
                del self.volumes[(volume.node, volume.volid)]
        self.vms.pop(vmid, None)

    def volumes_of(self, sid: str, node: str) -> list[Volume]:
        key = self.vol_node(sid, node)
        return [v for v in self.volumes.values() if v.storage == sid and v.node == key]

    def find_free_diskname(self, sid: str, node: str, vmid: int, fmt: str | None = None) -> str:
        # Only names of this VMID can collide: an index (model/usage.py), not a scan of every volume.
        used = self._volume_index().disk_names(sid, self.vol_node(sid, node), vmid)
        for n in range(0, 1000):
            for prefix in ("vm", "base"):
                if f"{prefix}-{vmid}-disk-{n}" in used:
                    break
            else:
                return f"vm-{vmid}-disk-{n}"
        raise PVEError(f"unable to allocate an image name for VM {vmid} in storage '{sid}'\n")

    def image_format(self, sid: str, requested: str | None = None) -> str:
        cfg = self.storage(sid)
        if cfg["type"] == "lvmthin":
            return "raw"
        return requested if requested in ("raw", "qcow2", "vmdk") else "qcow2"

    def alloc_volume(self, sid: str, node: str, vmid: int, size: int, fmt: str | None = None,
                     name: str | None = None, parent: Volume | None = None,
                     agent_installed: bool = False, guest_image: bool = False) -> Volume:
        """``vdisk_alloc`` (or ``clone_image`` when ``parent`` is given): a new image volume."""
        cfg = self.storage(sid)
        if "images" not in cfg["content"].split(","):
            raise PVEError(f"storage '{sid}' does not support vm images\n")
        fmt = self.image_format(sid, fmt)
        name = name or self.find_free_diskname(sid, node, vmid)
        if cfg["type"] == "lvmthin":
            volname = name
        elif parent is not None:
            volname = f"{image_volname_info(parent.volname)['vmid']}/{parent.name}/{vmid}/{name}.{fmt}"
        else:
            volname = f"{vmid}/{name}" + ("" if name.endswith("." + fmt) else f".{fmt}")
        volume = Volume(storage=sid, node=self.vol_node(sid, node), volname=volname, vmid=vmid,
                        format=fmt, size=int(size), parent=parent.volid if parent else None,
                        agent_installed=agent_installed, guest_image=guest_image, ctime=int(time.time()))
        key = (volume.node, volume.volid)
        if key in self.volumes:
            raise PVEError(f"volume '{volume.volid}' already exists\n")
        self.volumes[key] = volume
        return volume

    def free_volume(self, node: str, volid: str) -> None:
        volume = self.volume(node, volid)
        if volume is None:
            return
        if volume.is_base and self.linked_clones_of(volume):
            raise PVEError(f"base volume '{volid}' is still in use by linked clones\n")
        del self.volumes[(volume.node, volume.volid)]

    def linked_clones_of(self, base: Volume) -> list[Volume]:
        return [v for v in self.volumes.values() if v.parent == base.volid and v.node == base.node]

    def rename_volume(self, volume: Volume, new_volname: str) -> Volume:
        """``vdisk_create_base``: the volume gets a new name; clones keep pointing at the new volid."""
        old_volid = volume.volid
        del self.volumes[(volume.node, old_volid)]
        volume.volname = new_volname
        self.volumes[(volume.node, volume.volid)] = volume
        for other in self.volumes.values():
            if other.parent == old_volid and other.node == volume.node:
                other.parent = volume.volid
        return volume

    def volume_size(self, node: str, volid: str) -> tuple[int, bool]:
        """Virtual size and agent marker of any volume or file (for import-from)."""
        if volid.startswith("/"):
            path = Path(volid)
            if not path.is_file():
                raise PVEError(f"cannot import from '{volid}' - file does not exist\n")
            return images.virtual_size(path), images.agent_installed(path)
        volume = self.volume(node, volid)
        if volume is not None:
            return volume.size, volume.agent_installed
        found = self.file_path(node, volid)
        if found is None or not found[0].is_file():
            raise PVEError(f"cannot import from '{volid}' - volume does not exist\n")
        return images.virtual_size(found[0]), images.agent_installed(found[0])

    def is_guest_image(self, node: str, volid: str) -> bool:
        """Whether an import source is (or descends from) the real-guest image (False without one)."""
        if self.guest_image_match is None:
            return False
        volume = None if volid.startswith("/") else self.volume(node, volid)
        if volume is not None:
            return volume.guest_image
        found = (Path(volid), "") if volid.startswith("/") else self.file_path(node, volid)
        return found is not None and found[0].is_file() and self.guest_image_match(found[0])

    def storage_dir_for_tests(self, sid: str, node: str | None = None) -> Path:
        """Convenience for callers outside PVE semantics (tests, snippets backends)."""
        return self.storage_root(sid, node or self.nodes[0])

