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

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Mapping

from phoenix.diff.codecs import (DISK_SLOTS, Declared, MACHINE_TYPES, MAX_NICS, Observed, as_int, bool_key,
                                  config_key, declared_disk, declared_efidisk, declared_ipconfig, declared_nameserver,
                                  declared_nic, disk_options_changed, int_key, keep_actual, narrow_agent, narrow_nic,
                                  normalise_ipconfig, normalise_nameserver, read_agent, read_cpu, read_description,
                                  read_disk_gb, read_efidisk, read_extra_disk, read_machine, read_memory, read_nic,
                                  read_normalised, read_sshkeys, read_startup, read_tags, set_key, show_json,
                                  show_sshkeys, write_agent, write_cpu, write_description, write_efidisk,
                                  write_extra_disk, write_nic)
from phoenix.pve import propstr


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


def _no_write(value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    return {}


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
    show: Callable[[Any], str] = show_json          # how rendering prints a (non-sensitive) value
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



# --- the registry -------------------------------------------------------------------------------------

# Always on, for every VM and template phoenix makes: phoenix waits for the guest agent, and cloud
# images print their console to the serial port.
ALWAYS: dict[str, Any] = {"agent": True, "serial0": "socket", "vga": "serial0"}

ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("name", ("name",), lambda d: d.vm.name, config_key("name"), set_key("name"), hotplug=True),
    Attribute("cores", ("cores",), lambda d: d.vm.cores, lambda o: as_int(o.config.get("cores", 1)),
              set_key("cores"), reboot=True),
    Attribute("memory_mb", ("memory",), lambda d: d.vm.memory_mb, read_memory, set_key("memory"), reboot=True),
    Attribute("disk_size_gb", ("scsi0",), lambda d: d.vm.disk_size_gb, read_disk_gb, writer=Writer.RESIZE,
              hotplug=True),
    *(Attribute(f"net{i}", (f"net{i}",), declared_nic(i), read_nic(i), write_nic(i), hotplug=True,
                removable=i > 0, narrow=narrow_nic, sparse=True) for i in range(MAX_NICS)),
    *(Attribute(slot, (slot,), declared_disk(slot), read_extra_disk(slot), write_extra_disk(slot), hotplug=True,
                removable=True, reboot_when=disk_options_changed, resizable=True, sparse=True) for slot in DISK_SLOTS),
    Attribute("agent", ("agent",), lambda d: d.vm.agent or ALWAYS["agent"], read_agent, write_agent, reboot=True,
              narrow=narrow_agent),
    Attribute("cpu", ("cpu",), lambda d: d.vm.cpu, read_cpu, write_cpu, reboot=True, removable=True),
    Attribute("sockets", ("sockets",), lambda d: d.vm.sockets, int_key("sockets"), set_key("sockets"), reboot=True,
              removable=True),
    Attribute("balloon_mb", ("balloon",), lambda d: d.vm.balloon_mb, int_key("balloon"), set_key("balloon"),
              reboot=True, removable=True),
    Attribute("onboot", ("onboot",), lambda d: d.vm.onboot, bool_key("onboot"), set_key("onboot", int),
              hotplug=True, removable=True),
    Attribute("startup", ("startup",), lambda d: d.vm.startup, read_startup,
              set_key("startup", propstr.format), hotplug=True, removable=True),
    Attribute("description", ("description",), lambda d: d.vm.description, read_description, write_description,
              hotplug=True, removable=True, remove=lambda config: write_description(None, config)),
    Attribute("machine", ("machine",), lambda d: d.vm.machine, read_machine, set_key("machine", MACHINE_TYPES.get),
              reboot=True),
    Attribute("bios", ("bios",), lambda d: d.vm.bios, lambda o: o.config.get("bios") or "seabios", set_key("bios"),
              reboot=True),
    Attribute("efidisk0", ("efidisk0",), declared_efidisk, read_efidisk, write_efidisk, reboot=True,
              removable=True, narrow=lambda actual, desired: desired if actual and desired else actual),
    Attribute("scsihw", ("scsihw",), lambda d: d.vm.scsihw, lambda o: o.config.get("scsihw") or "lsi",
              set_key("scsihw"), reboot=True),
    Attribute("serial0", ("serial0",), lambda d: ALWAYS["serial0"], config_key("serial0"), set_key("serial0"), reboot=True),
    Attribute("vga", ("vga",), lambda d: ALWAYS["vga"], config_key("vga"), set_key("vga"), reboot=True),
    Attribute("tags", ("tags",), lambda d: sorted(d.vm.tags) or None, read_tags,
              set_key("tags", propstr.format_tags), hotplug=True, removable=True),
    Attribute("ciuser", ("ciuser",), lambda d: d.vm.user.username, config_key("ciuser"), set_key("ciuser"), cloudinit=True),
    Attribute("sshkeys", ("sshkeys",), lambda d: list(d.vm.user.ssh_public_keys) or None, read_sshkeys,
              set_key("sshkeys", propstr.encode_sshkeys), cloudinit=True, removable=True, show=show_sshkeys),
    *(Attribute(f"ipconfig{i}", (f"ipconfig{i}",), declared_ipconfig(i),
                read_normalised(f"ipconfig{i}", normalise_ipconfig), set_key(f"ipconfig{i}"), cloudinit=True,
                removable=True, sparse=True) for i in range(MAX_NICS)),
    Attribute("nameserver", ("nameserver",), declared_nameserver,
              read_normalised("nameserver", normalise_nameserver), set_key("nameserver"), cloudinit=True,
              removable=True),
    Attribute("searchdomain", ("searchdomain",), lambda d: d.vm.network.searchdomain, config_key("searchdomain"),
              set_key("searchdomain"), cloudinit=True, removable=True),
    Attribute("cicustom", ("cicustom",), lambda d: d.cicustom and propstr.format(propstr.parse(d.cicustom)),
              read_normalised("cicustom", lambda v: propstr.format(propstr.parse(v))), set_key("cicustom"),
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
    return "null" if value is None else show_json(value)


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
