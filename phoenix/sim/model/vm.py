"""One VM's configuration file: main section, ``[PENDING]``, ``[special:cloudinit]``, and its digest.

Values are kept as the strings PVE writes into ``/etc/pve/nodes/<node>/qemu-server/<vmid>.conf``;
:func:`render_config` prints the file exactly like ``write_vm_config`` (description as ``#``
comments, keys sorted, sections appended) and the digest is ``sha1`` of that text, so any change
— a pending value, a lock — changes it, as on PVE.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote

from phoenix.sim.model.tracking import Changes, Tracked

__all__ = [
    "VM", "render_config", "DRIVE_KEY_RE", "is_drive_key", "drive_keys", "parse_pending_delete",
    "format_pending_delete", "typed_config", "CLOUDINIT_OPTIONS", "cloudinit_pending_properties",
    "encode_text", "MASKED_PASSWORD", "parse_config",
]

MASKED_PASSWORD = "**********"
DRIVE_KEY_RE = re.compile(r"^(?:ide[0-3]|sata[0-5]|scsi(?:[0-9]|[12][0-9]|30)|virtio(?:[0-9]|1[0-5])|efidisk0|tpmstate0|unused\d+)$")
BOOT_BUS_ORDER = ("ide", "sata", "scsi", "virtio")
CLOUDINIT_OPTIONS = ("cicustom", "cipassword", "citype", "ciupgrade", "ciuser", "nameserver",
                     "searchdomain", "sshkeys") + tuple(f"ipconfig{i}" for i in range(32))


@functools.lru_cache(maxsize=4096)
def is_drive_key(key: str) -> bool:
    """Whether a config key is a disk/cdrom slot (asked for every key of every VM in a listing, so remembered)."""
    return bool(DRIVE_KEY_RE.match(key)) and not key.startswith("unused")


@functools.lru_cache(maxsize=4096)
def _drive_order(key: str) -> tuple[int, int]:
    bus = re.match(r"^[a-z]+", key).group(0)  # type: ignore[union-attr]  # drive keys start with their bus
    num = int(key[len(bus):] or 0)
    return (BOOT_BUS_ORDER.index(bus) if bus in BOOT_BUS_ORDER else len(BOOT_BUS_ORDER), num)


def drive_keys(conf: dict[str, str]) -> list[str]:
    """Drive keys of ``conf`` in PVE's boot-candidate order (ide, sata, scsi, virtio, then others)."""
    return sorted((k for k in conf if is_drive_key(k)), key=_drive_order)


def cloudinit_pending_properties() -> set[str]:
    """Keys whose change makes the generated cloud-init image stale (qemu-server's list)."""
    return set(CLOUDINIT_OPTIONS) | {"name"} | {f"net{i}" for i in range(32)}


# Printable ASCII: the only character encode_text changes in such a text is ':'.
_PRINTABLE_ASCII = re.compile(r"[ -~]*")


def encode_text(text: str) -> str:
    """PVE::Tools::encode_text: percent-encode control/high-bit characters and ':'.

    Descriptions are almost always printable ASCII; those skip the per-character loop.
    """
    if _PRINTABLE_ASCII.fullmatch(text):
        return text.replace(":", "%3A")
    return _encode_chars(text)


def _encode_chars(text: str) -> str:
    """encode_text character by character (any text; the reference for the fast path)."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c != ":" else
                   "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def parse_pending_delete(text: str | None) -> dict[str, bool]:
    """``"a,!b"`` → ``{"a": False, "b": True}`` (True = force)."""
    result: dict[str, bool] = {}
    for item in re.split(r"[,;\s]+", text or ""):
        if not item:
            continue
        force = item.startswith("!")
        result[item.lstrip("!")] = force
    return result


def format_pending_delete(items: dict[str, bool]) -> str:
    return ",".join(("!" if force else "") + key for key, force in items.items())


@dataclass
class VM(Tracked):
    """A VM as its config file plus the runtime facts PVE keeps outside it (running, pid).

    Every change marks the VM for the next save (:mod:`phoenix.sim.model.tracking`): a dict
    assigned to a field is copied into a tracked dict, so mutate ``vm.conf``, not the dict you
    assigned.
    """

    _tracked_dicts = frozenset({"conf", "pending", "cloudinit", "guest", "ci_generated", "snapshots"})

    vmid: int
    node: str
    conf: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)      # includes "delete" like PVE's file
    cloudinit: dict[str, str] = field(default_factory=dict)    # [special:cloudinit]
    status: str = "stopped"
    paused: bool = False                  # QMP ``stop`` (suspend without todisk): qmpstatus "paused"
    started_at: float | None = None
    pid: int | None = None
    agent_device: bool = False            # agent enabled when the VM was started
    agent_installed: bool = False         # the booted guest has qemu-guest-agent
    guest: dict[str, Any] = field(default_factory=dict)          # the simulated guest (model/guest_sim.py)
    ci_generated: dict[str, str] = field(default_factory=dict)   # last generated cloud-init files
    snapshots: dict[str, dict[str, str]] = field(default_factory=dict)  # [<snapname>] sections

    def _mark(self, changes: Changes) -> None:
        changes.mark("vms", self.vmid)

    # --- file ------------------------------------------------------------------------------------
    def render(self) -> str:
        return render_config(self.conf, self.pending, self.cloudinit, self.snapshots)

    @property
    def digest(self) -> str:
        names = dict.fromkeys(self.snapshots, "")       # the snapshot names are part of the cache key too
        sections = (self.conf, self.pending, self.cloudinit, names, *self.snapshots.values())
        return self.memo("_digest", sections, lambda snapshot: hashlib.sha1(render_config(
            *(dict(items) for items in snapshot[:3]),
            dict(zip((name for name, _ in snapshot[3]), (dict(items) for items in snapshot[4:])))).encode()).hexdigest())

    def memo(self, slot: str, dicts: tuple[dict, ...], compute: Any) -> Any:
        """``compute(snapshot)`` of these dicts, reused while their contents (and order) stay the same.

        The snapshot (the dicts' items as tuples) is the cache key, so no mutation anywhere can
        leave a stale value: any change of a key, a value or the order is a miss.  Only string
        values are cached (``1 == 1.0 == True`` would alias renderings).  ``compute`` must not
        depend on anything but the snapshot; exceptions propagate uncached.
        """
        snapshot = tuple(tuple(d.items()) for d in dicts)
        cached = self.__dict__.get(slot)
        if cached is not None and cached[0] == snapshot:
            return cached[1]
        value = compute(snapshot)
        if all(type(v) is str for d in dicts for v in d.values()):
            self.__dict__[slot] = (snapshot, value)
        return value

    @property
    def is_template(self) -> bool:
        return str(self.conf.get("template", "0")) == "1"

    @property
    def lock(self) -> str | None:
        return self.conf.get("lock")

    @property
    def running(self) -> bool:
        return self.status == "running"

    def merged_conf(self) -> dict[str, str]:
        """Main section with pending values merged in and pending deletions removed (GET config)."""
        merged = dict(self.conf)
        for key, value in self.pending.items():
            if key != "delete":
                merged[key] = value
        for key in parse_pending_delete(self.pending.get("delete")):
            merged.pop(key, None)
        return merged

    def pending_deletes(self) -> dict[str, bool]:
        return parse_pending_delete(self.pending.get("delete"))

    def set_pending_deletes(self, items: dict[str, bool]) -> None:
        if items:
            self.pending["delete"] = format_pending_delete(items)
        else:
            self.pending.pop("delete", None)

    def uptime(self) -> int:
        return int(time.time() - self.started_at) if self.running and self.started_at else 0

    # --- persistence -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "vmid": self.vmid, "node": self.node, "conf": dict(self.conf), "pending": dict(self.pending),
            "cloudinit": dict(self.cloudinit), "status": self.status, "paused": self.paused, "started_at": self.started_at,
            "pid": self.pid, "agent_device": self.agent_device, "agent_installed": self.agent_installed,
            "guest": dict(self.guest), "ci_generated": dict(self.ci_generated),
            "snapshots": {name: dict(section) for name, section in self.snapshots.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "VM":
        data = {k: v for k, v in data.items() if k != "boot_network"}    # data dirs from before the guest model
        return cls(**data)


def _raw_section(conf: dict[str, str], pending: bool = False) -> str:
    parts: list[str] = []
    descr = conf.get("description")
    if descr is not None:
        if descr:
            parts.extend(f"#{encode_text(line)}\n" for line in descr.split("\n"))
        elif pending:
            parts.append("#\n")
    parts.extend(f"{key}: {conf[key]}\n" for key in sorted(conf) if key != "digest" and key != "description")
    return "".join(parts)


def parse_config(text: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Inverse of :func:`render_config` (``parse_vm_config`` for the sections the sim writes)."""
    sections: dict[str, dict[str, str]] = {"": {}, "PENDING": {}, "special:cloudinit": {}}
    current, descr = "", {"": [], "PENDING": [], "special:cloudinit": []}
    for line in text.split("\n"):
        header = re.fullmatch(r"\[(PENDING|special:cloudinit)\]", line)
        if header:
            current = header.group(1)
        elif line.startswith("#"):
            descr[current].append(unquote(line[1:]))
        elif line:
            key, _, value = line.partition(": ")
            sections[current][key] = value
    for name, lines in descr.items():
        if lines:
            sections[name]["description"] = "\n".join(lines)
    return sections[""], sections["PENDING"], sections["special:cloudinit"]


def render_config(conf: dict[str, str], pending: dict[str, str] | None = None,
                  cloudinit: dict[str, str] | None = None, snapshots: dict[str, dict[str, str]] | None = None) -> str:
    """The config file text, as ``PVE::QemuServer::write_vm_config`` prints it (snapshots sorted by name)."""
    raw = _raw_section(conf)
    if pending:
        raw += "\n[PENDING]\n" + _raw_section(pending, pending=True)
    if cloudinit:
        raw += "\n[special:cloudinit]\n" + _raw_section(cloudinit)
    for name in sorted(snapshots or {}):
        raw += f"\n[{name}]\n" + _raw_section(snapshots[name])
    return raw


@functools.cache
def _config_types() -> dict[str, str]:
    """``GET /config``'s return types by key; indexed keys stay ``numa[n]`` so ``numa`` keeps its own."""
    text = resources.files("phoenix.sim").joinpath("data/api-schema-subset.json").read_text()
    schema = json.loads(text)
    props = schema["endpoints"]["/nodes/{node}/qemu/{vmid}/config"]["GET"]["returns"]["properties"]
    return {key: spec.get("type", "string") for key, spec in props.items()}


def _key_type(key: str) -> str:
    types = _config_types()
    if key in types:
        return types[key]
    match = re.fullmatch(r"([a-z]+)\d+", key)
    return types.get(f"{match.group(1)}[n]", "string") if match else "string"


@functools.lru_cache(maxsize=4096)
def _numeric_key(key: str) -> bool:
    """Whether ``key``'s type is integer or boolean (asked per key per read, so remembered)."""
    return _key_type(key) in ("integer", "boolean")


_INTEGER_TEXT = re.compile(r"-?\d+")


def typed_config(conf: dict[str, str]) -> dict[str, Any]:
    """Integer and boolean options as JSON numbers (PVE's ``check_type``); everything else strings."""
    result: dict[str, Any] = {}
    for key, value in conf.items():
        text = str(value)
        if _numeric_key(key) and _INTEGER_TEXT.fullmatch(text):
            result[key] = int(value)
        else:
            result[key] = text
    return result
