"""Storages and volumes of the simulated cluster, named and laid out the way pve-storage does.

Three storages exist on every simulated cluster:

* ``local`` (type ``dir``, per node) and ``shared-nfs`` (type ``nfs``, ``shared=1``): file based;
  ISO images, import images, snippets and container templates are **real files** under
  :meth:`StorageLayout.root` in PVE's own sub-directories (``template/iso``, ``import``,
  ``snippets``, ``template/cache``, ``dump``), so tools that write snippets or images there are
  seen by the API exactly as PVE would see them.
* ``local-lvm`` (type ``lvmthin``, per node): VM disks only.

VM disk images (``images`` content) on every storage are tracked in the model (:class:`Volume`,
with size, format, linked-clone parent and whether the guest agent is installed in them); no
bytes are written for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

from phoenix.sim.core import PVEError
from phoenix.sim.model.tracking import Changes, Tracked

__all__ = [
    "DEFAULT_STORAGES", "FILE_CONTENT_DIRS", "Volume", "StorageLayout", "split_volid",
    "image_volname_info", "file_volume_format",
]

# storage.cfg of a fresh simulated cluster (what GET /storage returns, plus `path`).
DEFAULT_STORAGES: dict[str, dict] = {
    "local": {"type": "dir", "path": "/var/lib/vz",
              "content": "backup,images,import,iso,snippets,vztmpl", "shared": 0},
    "local-lvm": {"type": "lvmthin", "vgname": "pve", "thinpool": "data",
                  "content": "images,rootdir", "shared": 0},
    "shared-nfs": {"type": "nfs", "path": "/mnt/pve/shared-nfs", "server": "127.0.0.1",
                   "export": "/export/pve", "content": "images,import,iso,snippets", "shared": 1},
}

# content type -> sub-directory of a file-based storage (pve-storage Plugin.pm $vtype_subdirs).
FILE_CONTENT_DIRS = {
    "iso": "template/iso", "vztmpl": "template/cache", "import": "import",
    "snippets": "snippets", "backup": "dump",
}
# content type -> the prefix used inside a volid (`local:iso/x.iso`, `local:vztmpl/x.tar.zst`).
VOLID_PREFIX = {"iso": "iso", "vztmpl": "vztmpl", "import": "import", "snippets": "snippets", "backup": "backup"}

STORAGE_TOTAL = {"dir": 100 << 30, "lvmthin": 200 << 30, "nfs": 500 << 30}


@dataclass
class Volume(Tracked):
    """A VM disk image (content ``images``) as the model tracks it (changes mark it for the next save)."""

    storage: str
    node: str            # "" for shared storages (one namespace for the whole cluster)
    volname: str         # "vm-100-disk-0" (lvmthin) or "100/vm-100-disk-0.qcow2" (dir/nfs)
    vmid: int
    format: str          # "raw" | "qcow2"
    size: int            # bytes
    parent: str | None = None        # volid of the base volume of a linked clone
    agent_installed: bool = False    # qemu-guest-agent is installed in this image
    guest_image: bool = False        # descends from the real-guest image (boots in QEMU, phoenix.sim.qemu)
    ctime: int = 0

    @property
    def volid(self) -> str:
        return f"{self.storage}:{self.volname}"

    @property
    def name(self) -> str:
        """The volume's own file/LV name: ``base-9000-disk-0.qcow2`` for linked clone paths too."""
        return self.volname.rsplit("/", 1)[-1]

    @property
    def is_base(self) -> bool:
        return self.name.startswith("base-")

    @property
    def is_cloudinit(self) -> bool:
        return bool(re.match(r"^vm-\d+-cloudinit(\.\w+)?$", self.name))

    def _mark(self, changes: Changes) -> None:
        changes.mark("volumes", (self.node, self.volid))

    def to_json(self) -> dict:
        # Every field is a scalar: no need for asdict's recursive deep copy (a tenth of a large
        # apply's persistence cost).
        return {name: getattr(self, name) for name in _VOLUME_FIELDS}

    @classmethod
    def from_json(cls, data: dict) -> "Volume":
        return cls(**data)


_VOLUME_FIELDS = tuple(f.name for f in fields(Volume) if not f.name.startswith("_"))


def split_volid(volid: str) -> tuple[str, str]:
    """``local:iso/x.iso`` → (``local``, ``iso/x.iso``); not a volid → ``PVEError`` as PVE says it."""
    match = re.match(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$", volid or "", re.IGNORECASE)
    if not match:
        raise PVEError(f"unable to parse volume ID '{volid}'\n")
    return match.group(1), match.group(2)


_IMAGE_RE = re.compile(
    r"^(?:(?P<basevmid>\d+)/(?P<basename>base-\d+-[^/]+)/)?(?:(?P<dirvmid>\d+)/)?"
    r"(?P<name>(?:vm|base)-(?P<vmid>\d+)-[^/]+)$"
)


def image_volname_info(volname: str) -> dict | None:
    """Owner vmid and base info of an ``images`` volname, or None when it is not a VM image."""
    match = _IMAGE_RE.match(volname)
    if not match:
        return None
    return {"vmid": int(match.group("vmid")), "name": match.group("name"),
            "basevmid": match.group("basevmid"), "basename": match.group("basename")}


def file_volume_format(content: str, name: str) -> str:
    """The ``format`` column PVE lists for a non-image file."""
    if content == "iso":
        return "iso"
    if content == "snippets":
        return "snippet"
    if content == "vztmpl":
        return "t" + name.rsplit(".", 1)[-1] if ".tar." in name else "tgz"
    if content == "import":
        return name.rsplit(".", 1)[-1].lower()
    return name.rsplit(".", 1)[-1]


class StorageLayout:
    """Where the real directories of file-based storages live inside the simulator's data dir.

    ``<data>/storage/<storage>`` is the shared storage's directory and the node-local storage's
    directory on the **first** node (what ``Simulator.storage_dir(storage)`` returns); other nodes
    get ``<data>/storage/<storage>@<node>``, so a snippet written on one node is not seen on another.
    """

    def __init__(self, data_dir: Path, first_node: str):
        self.data_dir = Path(data_dir)
        self.first_node = first_node

    def root(self, storage: str, node: str, shared: bool) -> Path:
        base = self.data_dir / "storage"
        if shared or node == self.first_node:
            return base / storage
        return base / f"{storage}@{node}"

    def content_dir(self, storage: str, node: str, shared: bool, content: str) -> Path:
        path = self.root(storage, node, shared) / FILE_CONTENT_DIRS[content]
        path.mkdir(parents=True, exist_ok=True)
        return path
