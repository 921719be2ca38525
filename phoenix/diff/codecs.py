"""How each VM setting is read from PVE, written back and taken from the spec: the registry's codecs.

``phoenix.diff.attributes`` says, per setting, which of these functions read it from what PVE reports
(:class:`Observed`), write it as ``PUT /config`` parameters and compute its desired value from a
spec (:class:`Declared`).  Each normalises, so that equivalent spellings never diff: PVE's property
strings (``phoenix.pve.propstr``), its defaults (``agent``'s options, ``bios``, ``scsihw``), and the
parts PVE adds on its own (a NIC's MAC, a disk's volume name) narrowed away where the file is silent.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Mapping

from phoenix.pve import propstr

if TYPE_CHECKING:
    from phoenix.desired.spec import VMSpec

GIB = 1 << 30
MAX_NICS = 32        # PVE's net0..net31, ipconfig0..ipconfig31


@dataclass(frozen=True)
class Observed:
    """What PVE reports about one VM: its config (``GET /config``) and its power status."""

    config: Mapping[str, Any]
    status: str | None = None


@dataclass(frozen=True)
class Declared:
    """What a desired value is computed from: the VM's spec and the documents phoenix renders for it."""

    vm: "VMSpec"
    cicustom: str | None = None          # user=<storage>:snippets/<file>; None with the iso backend
    user_data: str | None = None         # the state's keyed fingerprint of the user-data document

    @cached_property
    def sparse_keys(self) -> frozenset[str]:
        """The numbered keys this VM declares (``netN``/``ipconfigN`` per NIC, its extra disks' slots):
        the views skip the rest of those families without asking each entry."""
        nics = range(len(self.vm.nics))
        return frozenset([*(f"net{i}" for i in nics), *(f"ipconfig{i}" for i in nics),
                          *(disk.interface for disk in self.vm.disks)])


def keep_actual(actual: Any, desired: Any) -> Any:
    """The default ``narrow``: the actual value as it is (the views skip entries that keep it)."""
    return actual


def show_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- reading and writing helpers ------------------------------------------------------------------

def as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def config_key(key: str) -> Callable[[Observed], Any]:
    """A plain config key, read as PVE shows it (absent or empty: None)."""
    def read(obs: Observed) -> Any:
        value = obs.config.get(key)
        return None if value in (None, "") else value
    return read


def set_key(key: str, encode: Callable[[Any], Any] = lambda v: v) -> Callable[[Any, Mapping[str, Any]], dict[str, Any]]:
    return lambda value, config: {key: encode(value)}


def disk_size_bytes(config: Mapping[str, Any], disk: str = "scsi0") -> int | None:
    """Size of ``disk`` from its drive string (``size=32G``), or None when PVE did not record one."""
    drive = config.get(disk)
    if not drive:
        return None
    size = propstr.parse_drive(drive).get("size")
    return propstr.parse_size(size) if size else None


def _gib(size: int) -> Any:
    return size // GIB if size % GIB == 0 else round(size / GIB, 3)


def read_disk_gb(obs: Observed) -> Any:
    size = disk_size_bytes(obs.config)
    return None if size is None else _gib(size)


# An extra disk in phoenix's vocabulary: size and storage, and the options phoenix owns (set = True).
DISK_OPTIONS = {"ssd": ("ssd", "1"), "discard": ("discard", "on"), "iothread": ("iothread", "1")}
DISK_SLOTS = (*(f"scsi{i}" for i in range(1, 31)), *(f"virtio{i}" for i in range(16)), *(f"sata{i}" for i in range(6)))


def read_extra_disk(slot: str) -> Callable[[Observed], Any]:
    def read(obs: Observed) -> Any:
        text = obs.config.get(slot)
        if not text:
            return None
        drive = propstr.parse_drive(str(text))
        if drive.get("media") == "cdrom":
            return {"cdrom": drive.get("file", "")}       # never what a declared disk is: it diffs
        value: dict[str, Any] = {"size_gb": _gib(propstr.parse_size(drive["size"])) if drive.get("size") else 0,
                                 "storage": drive.get("file", "").split(":", 1)[0]}
        for name, (key, on) in DISK_OPTIONS.items():
            if drive.get(key) == on:
                value[name] = True
        return value
    return read


def write_extra_disk(slot: str) -> Callable[[Any, Mapping[str, Any]], dict[str, Any]]:
    """A new disk is allocated (``<storage>:<size>``); an existing one keeps its volume (its size
    grows by the resize step) and gets the declared options."""
    def write(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
        drive: dict[str, Any] = propstr.parse_drive(str(config[slot])) if config.get(slot) else {}
        if not drive or drive.get("media") == "cdrom":
            drive = {"file": f"{value['storage']}:{value['size_gb']}"}
        for name, (key, on) in DISK_OPTIONS.items():
            drive.pop(key, None)
            if value.get(name):
                drive[key] = on
        return {slot: propstr.format_drive(drive)}
    return write


def declared_disk(slot: str) -> Callable[[Declared], Any]:
    def declare(d: Declared) -> Any:
        disk = next((x for x in d.vm.disks if x.interface == slot), None)
        if disk is None:
            return None
        value: dict[str, Any] = {"size_gb": disk.size_gb, "storage": disk.storage}
        value.update({name: True for name in DISK_OPTIONS if getattr(disk, name)})
        return value
    return declare


def disk_options_changed(before: Any, after: Any) -> bool:
    """A running VM takes a new disk, a grown one or a removed one at once (PVE's ``hotplug`` default
    has ``disk``), but a changed ``ssd``/``discard``/``iothread`` only at its next start."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return False
    return any(bool(before.get(name)) != bool(after.get(name)) for name in DISK_OPTIONS)


def read_memory(obs: Observed) -> Any:
    memory = obs.config.get("memory")
    if memory is None:
        return None
    return as_int(propstr.parse(str(memory), default_key="current").get("current", 0))


# A NIC in phoenix's vocabulary: netN's options phoenix owns (others, e.g. ``rate``, are kept as PVE has them).
NIC_KEYS = {"bridge": "bridge", "vlan": "tag", "mtu": "mtu", "firewall": "firewall"}


def read_nic(index: int) -> Callable[[Observed], Any]:
    def read(obs: Observed) -> Any:
        text = obs.config.get(f"net{index}")
        if not text:
            return None
        net = propstr.parse_net(str(text))
        nic: dict[str, Any] = {"model": net["model"]}
        if net.get("macaddr"):
            nic["mac"] = net["macaddr"].upper()
        for name, key in NIC_KEYS.items():
            if net.get(key) not in (None, ""):
                nic[name] = net[key] if name == "bridge" else as_int(net[key])
        if not nic.get("firewall"):
            nic.pop("firewall", None)         # firewall=0 and no firewall are the same NIC
        else:
            nic["firewall"] = True
        return nic
    return read


def write_nic(index: int) -> Callable[[Any, Mapping[str, Any]], dict[str, Any]]:
    """Only the options phoenix owns change: an undeclared MAC stays (a new MAC is a new NIC to the guest)."""
    key = f"net{index}"

    def write(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
        net: dict[str, Any] = propstr.parse_net(str(config[key])) if config.get(key) else {}
        for pve_key in NIC_KEYS.values():
            net.pop(pve_key, None)
        net["model"] = value["model"]
        if value.get("mac"):
            net["macaddr"] = value["mac"]
        for name, pve_key in NIC_KEYS.items():
            if value.get(name) not in (None, False):
                net[pve_key] = 1 if value[name] is True else value[name]
        return {key: propstr.format_net(net)}
    return write


def narrow_nic(actual: Any, desired: Any) -> Any:
    """A MAC PVE picked is not compared unless the file declares one."""
    if isinstance(actual, dict) and isinstance(desired, dict) and "mac" not in desired:
        return {k: v for k, v in actual.items() if k != "mac"}
    return actual


def declared_nic(index: int) -> Callable[[Declared], Any]:
    def declare(d: Declared) -> Any:
        if index >= len(d.vm.nics):
            return None
        nic = d.vm.nics[index]
        value: dict[str, Any] = {"bridge": nic.bridge, "model": nic.model}
        for name in ("mac", "vlan", "mtu"):
            if getattr(nic, name) is not None:
                value[name] = getattr(nic, name)
        if nic.firewall:
            value["firewall"] = True
        return value
    return declare


def declared_ipconfig(index: int) -> Callable[[Declared], Any]:
    def declare(d: Declared) -> Any:
        if index >= len(d.vm.nics):
            return None
        nic = d.vm.nics[index]
        return propstr.format_ipconfig({"ip": nic.ip, "gw": nic.gw, "ip6": nic.ip6, "gw6": nic.gw6})
    return declare


def agent_enabled(config: Mapping[str, Any]) -> bool:
    return propstr.parse(str(config.get("agent", "0")), default_key="enabled").get("enabled") == "1"


AGENT_DEFAULTS = {"freeze-fs": True, "fstrim_cloned_disks": False, "type": "virtio"}
_AGENT_ALIASES = {"freeze-fs-on-backup": "freeze-fs", "guest-fsfreeze": "freeze-fs"}


def read_agent(obs: Observed) -> Any:
    """``True`` (on, PVE's default options), ``False`` (off), or the options when any differs
    from PVE's defaults (the declared form: every option spelled out)."""
    raw = propstr.parse(str(obs.config.get("agent", "0")), default_key="enabled")
    if raw.get("enabled") != "1":
        return False
    options: dict[str, Any] = dict(AGENT_DEFAULTS)
    for key, value in raw.items():
        key = _AGENT_ALIASES.get(key, key)
        if key in ("freeze-fs", "fstrim_cloned_disks"):
            options[key] = value == "1"
        elif key == "type":
            options[key] = value
    return True if options == AGENT_DEFAULTS else options


def narrow_agent(actual: Any, desired: Any) -> Any:
    """Declared options equal to PVE's defaults read back as plain ``True``: compare them spelled out."""
    return dict(AGENT_DEFAULTS) if actual is True and isinstance(desired, dict) else actual


def write_agent(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {"agent": "enabled=1" if value else "enabled=0"}
    return {"agent": propstr.format({"enabled": 1, **value}, default_key="enabled")}


def int_key(key: str) -> Callable[[Observed], Any]:
    return lambda obs: None if obs.config.get(key) in (None, "") else as_int(obs.config[key])


def bool_key(key: str) -> Callable[[Observed], Any]:
    return lambda obs: None if obs.config.get(key) in (None, "") else str(obs.config[key]) in ("1", "true", "on", "yes")


def read_cpu(obs: Observed) -> Any:
    """The CPU type only (``cputype``); flags and the like are PVE's business."""
    text = obs.config.get("cpu")
    return propstr.parse(str(text), default_key="cputype").get("cputype") if text else None


def write_cpu(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    cpu: dict[str, Any] = propstr.parse(str(config["cpu"]), default_key="cputype") if config.get("cpu") else {}
    cpu["cputype"] = value
    return {"cpu": propstr.format(cpu, default_key="cputype")}


def read_startup(obs: Observed) -> Any:
    text = obs.config.get("startup")
    return {k: as_int(v) for k, v in propstr.parse(str(text), default_key="order").items()} if text else None


MACHINE_TYPES = {"q35": "q35", "i440fx": "pc"}


def read_machine(obs: Observed) -> Any:
    """``q35`` or ``i440fx`` (PVE's default, also when versioned: ``pc-i440fx-9.0``, ``pc``)."""
    kind = propstr.parse(str(obs.config.get("machine") or "pc"), default_key="type").get("type", "pc")
    return "q35" if "q35" in kind else "i440fx"


def declared_efidisk(d: Declared) -> Any:
    """OVMF keeps its EFI variables on ``efidisk0`` (4 MiB layout, on the VM's storage).  phoenix makes
    sure one exists; one the clone brought along (the template's) is kept as it is."""
    return {"storage": d.vm.storage_pool, "efitype": "4m"} if d.vm.bios == "ovmf" else None


def read_efidisk(obs: Observed) -> Any:
    text = obs.config.get("efidisk0")
    if not text:
        return None
    drive = propstr.parse_drive(str(text))
    return {"storage": drive.get("file", "").split(":", 1)[0], "efitype": drive.get("efitype", "2m")}


def write_efidisk(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """A new EFI disk (``<storage>:1`` allocates PVE's fixed-size one); an existing one stays as it is."""
    if config.get("efidisk0"):
        return {}
    return {"efidisk0": f"{value['storage']}:1,efitype={value['efitype']},pre-enrolled-keys=0"}


# --- description: the user's text, phoenix's own lines kept ------------------------------------------

def _phoenix_line(line: str) -> bool:
    """phoenix's own description lines (the ownership marker ``phoenix-owner:``, a template's facts)."""
    return line.lstrip().startswith("phoenix-")


def user_description(text: Any) -> str:
    """The part of a description that is not phoenix's own lines."""
    return "\n".join(line for line in str(text or "").splitlines() if not _phoenix_line(line)).strip("\n")


def read_description(obs: Observed) -> Any:
    return user_description(obs.config.get("description")) or None


OWNER_PREFIX = "phoenix-owner:"      # the ownership marker's line (phoenix.pve.ownership)


def write_description(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """The declared text, then the ownership marker line(s) as they are (never lost).  Other phoenix
    lines a clone inherited (its template's image facts) describe the template, not this VM: they go."""
    own = [line for line in str(config.get("description") or "").splitlines()
           if line.lstrip().startswith(OWNER_PREFIX)]
    text = "\n".join([*([str(value)] if value else []), *own])
    return {"description": text} if text else {"delete": "description"}


def read_tags(obs: Observed) -> Any:
    return sorted(propstr.parse_tags(obs.config.get("tags"))) or None


def normalise_ipconfig(value: str) -> str:
    """PVE's ``ipconfigN`` in one spelling: keys in PVE's order, IPv6 addresses in canonical form."""
    values: dict[str, Any] = dict(propstr.parse_ipconfig(value))
    for key, kind in (("ip6", ipaddress.IPv6Interface), ("gw6", ipaddress.IPv6Address)):
        if values.get(key) not in (None, "dhcp", "auto"):
            try:
                values[key] = str(kind(values[key]))
            except ValueError:
                pass                               # shown as PVE has it: a diff, never a crash
    return propstr.format_ipconfig(values)


def normalise_nameserver(value: str) -> str:
    return " ".join(value.replace(",", " ").split())


def read_normalised(key: str, normalise: Callable[[str], str]) -> Callable[[Observed], Any]:
    def read(obs: Observed) -> Any:
        value = obs.config.get(key)
        return None if value in (None, "") else normalise(str(value))
    return read


def read_sshkeys(obs: Observed) -> Any:
    value = obs.config.get("sshkeys")
    return propstr.decode_sshkeys(str(value)) or None if value else None


def show_sshkeys(keys: Any) -> str:
    """Keys shortened to type, a few characters of the key and the comment."""
    def short(key: str) -> str:
        parts = key.split()
        if len(parts) >= 2 and len(parts[1]) > 20:
            parts[1] = parts[1][:12] + "…" + parts[1][-6:]
        return " ".join(parts)
    return "[" + ", ".join(json.dumps(short(k), ensure_ascii=False) for k in keys) + "]"


# --- desired values ---------------------------------------------------------------------------------

def declared_nameserver(d: Declared) -> str | None:
    return " ".join(d.vm.network.nameservers) or None
