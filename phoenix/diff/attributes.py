"""The attribute registry: one entry per VM setting phoenix declares, and the only place that knows it.

An entry says, for one setting, everything the rest of phoenix needs:

* ``name`` — its name in phoenix's vocabulary (plan, state, rendering), ``pve_keys`` — the PVE
  config keys it owns (the first is the one removed when the setting leaves the file);
* ``declare`` — its desired value from a ``VMSpec`` (None: not declared), already in normal form;
* ``read`` — its value from what PVE reports (``Observed``: the config and the power status),
  normalised so that equivalent spellings never diff;
* ``write`` — the ``PUT /config`` parameters that make PVE hold a value (given the current config,
  for settings that share a property string with others, such as ``net0``'s MAC);
* ``writer`` — which plan step writes it (``configure`` for plain config keys; the disk size is
  resized, the power state started, the template cloned, the user-data delivered);
* flags — ``reboot`` (a running VM only picks it up at its next boot), ``hotplug`` (applied to a
  running VM at once), ``removable`` (dropping it from the file removes it from PVE), ``sensitive``
  (never printed), ``cloudinit`` (lives on the cloud-init drive: regenerated on a running VM,
  seen by the guest at its next boot), ``replace_only`` (changing it means a new VM).

Views (``phoenix.diff.views``), the configure step, rendering, drift and the reboot rules all
derive from this table.  Adding a setting is one entry here plus its validation in
``phoenix.desired`` (see docs/design.md, "The attribute registry").
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from functools import cached_property
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Callable, Mapping

from phoenix.pve import propstr

if TYPE_CHECKING:
    from phoenix.desired.spec import VMSpec

GIB = 1 << 30
MAX_NICS = 32        # PVE's net0..net31, ipconfig0..ipconfig31


class Writer(StrEnum):
    """Which plan step makes an attribute true in PVE."""

    CONFIGURE = "configure"      # one PUT /config for every such attribute
    RESIZE = "resize"            # PUT /resize, grow only
    POWER = "power"              # status/start, status/stop
    CLONE = "clone"              # only by (re)cloning: a change replaces the VM
    USER_DATA = "user_data"      # the snippet / seed ISO delivered by deliver_user_data


class Source(StrEnum):
    """Where the current value comes from: PVE, or phoenix's own record when PVE cannot show it."""

    PVE = "pve"
    STATE = "state"


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


def _no_write(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def keep_actual(actual: Any, desired: Any) -> Any:
    """The default ``narrow``: the actual value as it is (the views skip entries that keep it)."""
    return actual


def _show_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Attribute:
    name: str
    pve_keys: tuple[str, ...]
    declare: Callable[[Declared], Any]
    read: Callable[[Observed], Any] | None          # None: PVE cannot show it (Source.STATE)
    write: Callable[[Any, Mapping[str, Any]], dict[str, Any]] = _no_write
    writer: Writer = Writer.CONFIGURE
    reboot: bool = False
    hotplug: bool = False
    removable: bool = False
    sensitive: bool = False
    cloudinit: bool = False
    replace_only: bool = False
    show: Callable[[Any], str] = _show_json          # how rendering prints a (non-sensitive) value
    # The actual value cut down to what the desired one declares (e.g. a NIC's MAC that PVE picked),
    # as the views are cut down to the declared attributes.
    narrow: Callable[[Any, Any], Any] = keep_actual
    # A reboot that depends on the change (e.g. a new disk hot-plugs, a changed disk option does not).
    reboot_when: Callable[[Any, Any], bool] | None = None
    # Its value's ``size_gb`` only grows, by a resize of ``pve_keys[0]``; a smaller one is a plan error.
    resizable: bool = False
    # How dropping it from the file is written (default ``delete=<first key>``): a description
    # keeps phoenix's own lines.
    remove: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    # One of a numbered family (netN, scsiN…): absent from the config means absent, so views skip it
    # without calling ``read`` (a VM has a few of the ~120 such keys).
    sparse: bool = False

    def needs_reboot(self, before: Any, after: Any) -> bool:
        """Whether changing ``before`` to ``after`` on a running VM takes effect only at its next boot."""
        return self.reboot or (self.reboot_when is not None and self.reboot_when(before, after))

    @property
    def source(self) -> Source:
        return Source.STATE if self.read is None else Source.PVE

    def render(self, value: Any) -> str:
        if value is None:
            return "null"
        return "(sensitive)" if self.sensitive else self.show(value)

    def write_params(self, value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /config`` parameters for ``value``; None removes the option (``delete=<key>``)."""
        if value is None:
            return self.remove(config) if self.remove is not None else {"delete": self.pve_keys[0]}
        return self.write(value, config)


# --- reading and writing helpers ------------------------------------------------------------------

def as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _key(key: str) -> Callable[[Observed], Any]:
    """A plain config key, read as PVE shows it (absent or empty: None)."""
    def read(obs: Observed) -> Any:
        value = obs.config.get(key)
        return None if value in (None, "") else value
    return read


def _set(key: str, encode: Callable[[Any], Any] = lambda v: v) -> Callable[[Any, Mapping[str, Any]], dict[str, Any]]:
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


def _read_disk_gb(obs: Observed) -> Any:
    size = disk_size_bytes(obs.config)
    return None if size is None else _gib(size)


# An extra disk in phoenix's vocabulary: size and storage, and the options phoenix owns (set = True).
DISK_OPTIONS = {"ssd": ("ssd", "1"), "discard": ("discard", "on"), "iothread": ("iothread", "1")}
DISK_SLOTS = (*(f"scsi{i}" for i in range(1, 31)), *(f"virtio{i}" for i in range(16)), *(f"sata{i}" for i in range(6)))


def _read_extra_disk(slot: str) -> Callable[[Observed], Any]:
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


def _write_extra_disk(slot: str) -> Callable[[Any, Mapping[str, Any]], dict[str, Any]]:
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


def _declared_disk(slot: str) -> Callable[[Declared], Any]:
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


def _read_memory(obs: Observed) -> Any:
    memory = obs.config.get("memory")
    if memory is None:
        return None
    return as_int(propstr.parse(str(memory), default_key="current").get("current", 0))


# A NIC in phoenix's vocabulary: netN's options phoenix owns (others, e.g. ``rate``, are kept as PVE has them).
NIC_KEYS = {"bridge": "bridge", "vlan": "tag", "mtu": "mtu", "firewall": "firewall"}


def _read_nic(index: int) -> Callable[[Observed], Any]:
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


def _write_nic(index: int) -> Callable[[Any, Mapping[str, Any]], dict[str, Any]]:
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


def _narrow_nic(actual: Any, desired: Any) -> Any:
    """A MAC PVE picked is not compared unless the file declares one."""
    if isinstance(actual, dict) and isinstance(desired, dict) and "mac" not in desired:
        return {k: v for k, v in actual.items() if k != "mac"}
    return actual


def _declared_nic(index: int) -> Callable[[Declared], Any]:
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


def _declared_ipconfig(index: int) -> Callable[[Declared], Any]:
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


def _read_agent(obs: Observed) -> Any:
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


def _narrow_agent(actual: Any, desired: Any) -> Any:
    """Declared options equal to PVE's defaults read back as plain ``True``: compare them spelled out."""
    return dict(AGENT_DEFAULTS) if actual is True and isinstance(desired, dict) else actual


def _write_agent(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {"agent": "enabled=1" if value else "enabled=0"}
    return {"agent": propstr.format({"enabled": 1, **value}, default_key="enabled")}


def _int_key(key: str) -> Callable[[Observed], Any]:
    return lambda obs: None if obs.config.get(key) in (None, "") else as_int(obs.config[key])


def _bool_key(key: str) -> Callable[[Observed], Any]:
    return lambda obs: None if obs.config.get(key) in (None, "") else str(obs.config[key]) in ("1", "true", "on", "yes")


def _read_cpu(obs: Observed) -> Any:
    """The CPU type only (``cputype``); flags and the like are PVE's business."""
    text = obs.config.get("cpu")
    return propstr.parse(str(text), default_key="cputype").get("cputype") if text else None


def _write_cpu(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    cpu: dict[str, Any] = propstr.parse(str(config["cpu"]), default_key="cputype") if config.get("cpu") else {}
    cpu["cputype"] = value
    return {"cpu": propstr.format(cpu, default_key="cputype")}


def _read_startup(obs: Observed) -> Any:
    text = obs.config.get("startup")
    return {k: as_int(v) for k, v in propstr.parse(str(text), default_key="order").items()} if text else None


_MACHINE = {"q35": "q35", "i440fx": "pc"}


def _read_machine(obs: Observed) -> Any:
    """``q35`` or ``i440fx`` (PVE's default, also when versioned: ``pc-i440fx-9.0``, ``pc``)."""
    kind = propstr.parse(str(obs.config.get("machine") or "pc"), default_key="type").get("type", "pc")
    return "q35" if "q35" in kind else "i440fx"


def _declared_efidisk(d: Declared) -> Any:
    """OVMF keeps its EFI variables on ``efidisk0`` (4 MiB layout, on the VM's storage).  phoenix makes
    sure one exists; one the clone brought along (the template's) is kept as it is."""
    return {"storage": d.vm.storage_pool, "efitype": "4m"} if d.vm.bios == "ovmf" else None


def _read_efidisk(obs: Observed) -> Any:
    text = obs.config.get("efidisk0")
    if not text:
        return None
    drive = propstr.parse_drive(str(text))
    return {"storage": drive.get("file", "").split(":", 1)[0], "efitype": drive.get("efitype", "2m")}


def _write_efidisk(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
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


def _read_description(obs: Observed) -> Any:
    return user_description(obs.config.get("description")) or None


OWNER_PREFIX = "phoenix-owner:"      # the ownership marker's line (phoenix.pve.ownership)


def _write_description(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """The declared text, then the ownership marker line(s) as they are (never lost).  Other phoenix
    lines a clone inherited (its template's image facts) describe the template, not this VM: they go."""
    own = [line for line in str(config.get("description") or "").splitlines()
           if line.lstrip().startswith(OWNER_PREFIX)]
    text = "\n".join([*([str(value)] if value else []), *own])
    return {"description": text} if text else {"delete": "description"}


def _read_tags(obs: Observed) -> Any:
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


def _read_normalised(key: str, normalise: Callable[[str], str]) -> Callable[[Observed], Any]:
    def read(obs: Observed) -> Any:
        value = obs.config.get(key)
        return None if value in (None, "") else normalise(str(value))
    return read


def _read_sshkeys(obs: Observed) -> Any:
    value = obs.config.get("sshkeys")
    return propstr.decode_sshkeys(str(value)) or None if value else None


def _show_sshkeys(keys: Any) -> str:
    """Keys shortened to type, a few characters of the key and the comment."""
    def short(key: str) -> str:
        parts = key.split()
        if len(parts) >= 2 and len(parts[1]) > 20:
            parts[1] = parts[1][:12] + "…" + parts[1][-6:]
        return " ".join(parts)
    return "[" + ", ".join(json.dumps(short(k), ensure_ascii=False) for k in keys) + "]"


# --- desired values ---------------------------------------------------------------------------------

def _declared_nameserver(d: Declared) -> str | None:
    return " ".join(d.vm.network.nameservers) or None


# --- the registry -------------------------------------------------------------------------------------

# Always on, for every VM and template phoenix makes: phoenix waits for the guest agent, and cloud
# images print their console to the serial port.
ALWAYS: dict[str, Any] = {"agent": True, "serial0": "socket", "vga": "serial0"}

ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("name", ("name",), lambda d: d.vm.name, _key("name"), _set("name"), hotplug=True),
    Attribute("cores", ("cores",), lambda d: d.vm.cores, lambda o: as_int(o.config.get("cores", 1)),
              _set("cores"), reboot=True),
    Attribute("memory_mb", ("memory",), lambda d: d.vm.memory_mb, _read_memory, _set("memory"), reboot=True),
    Attribute("disk_size_gb", ("scsi0",), lambda d: d.vm.disk_size_gb, _read_disk_gb, writer=Writer.RESIZE,
              hotplug=True),
    *(Attribute(f"net{i}", (f"net{i}",), _declared_nic(i), _read_nic(i), _write_nic(i), hotplug=True,
                removable=i > 0, narrow=_narrow_nic, sparse=True) for i in range(MAX_NICS)),
    *(Attribute(slot, (slot,), _declared_disk(slot), _read_extra_disk(slot), _write_extra_disk(slot), hotplug=True,
                removable=True, reboot_when=disk_options_changed, resizable=True, sparse=True) for slot in DISK_SLOTS),
    Attribute("agent", ("agent",), lambda d: d.vm.agent or ALWAYS["agent"], _read_agent, _write_agent, reboot=True,
              narrow=_narrow_agent),
    Attribute("cpu", ("cpu",), lambda d: d.vm.cpu, _read_cpu, _write_cpu, reboot=True, removable=True),
    Attribute("sockets", ("sockets",), lambda d: d.vm.sockets, _int_key("sockets"), _set("sockets"), reboot=True,
              removable=True),
    Attribute("balloon_mb", ("balloon",), lambda d: d.vm.balloon_mb, _int_key("balloon"), _set("balloon"),
              reboot=True, removable=True),
    Attribute("onboot", ("onboot",), lambda d: d.vm.onboot, _bool_key("onboot"), _set("onboot", int),
              hotplug=True, removable=True),
    Attribute("startup", ("startup",), lambda d: d.vm.startup, _read_startup,
              _set("startup", propstr.format), hotplug=True, removable=True),
    Attribute("description", ("description",), lambda d: d.vm.description, _read_description, _write_description,
              hotplug=True, removable=True, remove=lambda config: _write_description(None, config)),
    Attribute("machine", ("machine",), lambda d: d.vm.machine, _read_machine, _set("machine", _MACHINE.get),
              reboot=True),
    Attribute("bios", ("bios",), lambda d: d.vm.bios, lambda o: o.config.get("bios") or "seabios", _set("bios"),
              reboot=True),
    Attribute("efidisk0", ("efidisk0",), _declared_efidisk, _read_efidisk, _write_efidisk, reboot=True,
              removable=True, narrow=lambda actual, desired: desired if actual and desired else actual),
    Attribute("scsihw", ("scsihw",), lambda d: d.vm.scsihw, lambda o: o.config.get("scsihw") or "lsi",
              _set("scsihw"), reboot=True),
    Attribute("serial0", ("serial0",), lambda d: ALWAYS["serial0"], _key("serial0"), _set("serial0"), reboot=True),
    Attribute("vga", ("vga",), lambda d: ALWAYS["vga"], _key("vga"), _set("vga"), reboot=True),
    Attribute("tags", ("tags",), lambda d: sorted(d.vm.tags) or None, _read_tags,
              _set("tags", propstr.format_tags), hotplug=True, removable=True),
    Attribute("ciuser", ("ciuser",), lambda d: d.vm.user.username, _key("ciuser"), _set("ciuser"), cloudinit=True),
    Attribute("sshkeys", ("sshkeys",), lambda d: list(d.vm.user.ssh_public_keys) or None, _read_sshkeys,
              _set("sshkeys", propstr.encode_sshkeys), cloudinit=True, removable=True, show=_show_sshkeys),
    *(Attribute(f"ipconfig{i}", (f"ipconfig{i}",), _declared_ipconfig(i),
                _read_normalised(f"ipconfig{i}", normalise_ipconfig), _set(f"ipconfig{i}"), cloudinit=True,
                removable=True, sparse=True) for i in range(MAX_NICS)),
    Attribute("nameserver", ("nameserver",), _declared_nameserver,
              _read_normalised("nameserver", normalise_nameserver), _set("nameserver"), cloudinit=True,
              removable=True),
    Attribute("searchdomain", ("searchdomain",), lambda d: d.vm.network.searchdomain, _key("searchdomain"),
              _set("searchdomain"), cloudinit=True, removable=True),
    Attribute("cicustom", ("cicustom",), lambda d: d.cicustom and propstr.format(propstr.parse(d.cicustom)),
              _read_normalised("cicustom", lambda v: propstr.format(propstr.parse(v))), _set("cicustom"),
              cloudinit=True, removable=True),
    Attribute("power", (), lambda d: "running" if d.vm.start else None,
              lambda o: None if not o.status else ("running" if o.status == "running" else "stopped"),
              writer=Writer.POWER),
    Attribute("template", (), lambda d: d.vm.clone_from_vmid, None, writer=Writer.CLONE, replace_only=True),
    Attribute("user_data", (), lambda d: d.user_data, None, writer=Writer.USER_DATA, sensitive=True),
)

BY_NAME: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES}


def named(*flags: str, writer: Writer | None = None) -> tuple[str, ...]:
    """Names of the attributes with every one of ``flags`` set (and the given ``writer``), in registry order."""
    return tuple(a.name for a in ATTRIBUTES
                 if all(getattr(a, f) for f in flags) and (writer is None or a.writer == writer))


CONFIGURED = named(writer=Writer.CONFIGURE)          # written by the one configure step
RESIZABLE = frozenset(named("resizable"))            # extra disks
CLOUDINIT = frozenset(named("cloudinit"))
REBOOT = frozenset(named("reboot"))
REMOVABLE = frozenset(named("removable"))
SENSITIVE = frozenset(named("sensitive"))
STATE_TRACKED = tuple(a.name for a in ATTRIBUTES if a.source is Source.STATE)


def disk_change_problem(name: str, before: Any, after: Any) -> str | None:
    """Why an extra disk cannot go from ``before`` to ``after`` in place (None: it can)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    if "cdrom" in before:
        return f"{name} holds a CD-ROM ({before['cdrom']}); declare the disk on another slot"
    if before.get("storage") != after.get("storage"):
        return (f"{name} is on storage '{before.get('storage')}', the file says '{after.get('storage')}'; phoenix "
                "does not move disks (move it in PVE, or declare the disk on another slot)")
    if after["size_gb"] < before.get("size_gb", 0):
        return (f"{name} size_gb {after['size_gb']} is smaller than the current disk ({before['size_gb']} GiB); "
                "PVE cannot shrink disks")
    return None


def disk_only_grew(before: Any, after: Any) -> bool:
    """Only the size of an extra disk changed: a resize, no config write."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return False
    return ({k: v for k, v in before.items() if k != "size_gb"} == {k: v for k, v in after.items() if k != "size_gb"}
            and after.get("size_gb", 0) > before.get("size_gb", 0))


def attribute(name: str) -> Attribute | None:
    return BY_NAME.get(name)


def render_value(name: str, value: Any) -> str:
    """How the plan prints a value of ``name`` (attributes outside the registry, e.g. a template's ``image``, as JSON)."""
    entry = BY_NAME.get(name)
    if entry is not None:
        return entry.render(value)
    return "null" if value is None else _show_json(value)


def configure_params(values: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """One ``PUT /config``'s parameters for ``values`` (None = remove that option)."""
    params: dict[str, Any] = {}
    deletes: list[str] = []
    for name, value in values.items():
        written = BY_NAME[name].write_params(value, config)
        if "delete" in written:
            deletes.append(written.pop("delete"))
        params.update(written)
    if deletes:
        params["delete"] = ",".join(deletes)
    return params
