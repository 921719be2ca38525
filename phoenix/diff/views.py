"""Normalised views: the declared attributes of a VM, as desired and as PVE shows them.

Both sides are flattened into the same small vocabulary (``cores``, ``memory_mb``,
``disk_size_gb``, ``ipconfig0`` …) so that comparing them is a plain dict comparison.  Only
the keys phoenix declares appear in a desired view, and the actual view is always cut down to
the keys of the desired one: a clone inherits dozens of keys from its template and none of
them may ever cause a diff.
"""

from __future__ import annotations

from typing import Any, Callable

from phoenix.pve import propstr

# Attributes that PVE only applies to a running VM at its next boot.
REBOOT_ATTRIBUTES = frozenset({"cores", "memory_mb", "agent", "serial0", "vga"})
# Attributes written with one config call ("configure" step).
HARDWARE_ATTRIBUTES = ("name", "cores", "memory_mb", "network_bridge", "agent", "serial0", "vga", "tags")
# Cloud-init options ("set_cloudinit" step).
CLOUDINIT_ATTRIBUTES = ("ciuser", "sshkeys", "ipconfig0", "nameserver", "searchdomain", "cicustom")
# Attributes PVE cannot show us; they are compared with what phoenix recorded in its state.
STATE_TRACKED_ATTRIBUTES = ("template", "user_data")
# Optional attributes: when a managed one leaves the file, phoenix removes it from PVE (desired None).
REMOVABLE_ATTRIBUTES = frozenset({"tags", "sshkeys", "ipconfig0", "nameserver", "searchdomain", "cicustom"})
# Values never printed: shown as "(sensitive)".
SENSITIVE_ATTRIBUTES = frozenset({"user_data"})

GIB = 1 << 30


def desired_view(vm: Any, cloudinit_options: dict[str, str], user_data_source: str, cicustom: str | None,
                 fingerprint: Callable[[str], str]) -> dict[str, Any]:
    """The declared attributes of ``vm`` (a ``VMSpec``) in phoenix's vocabulary.

    The user-data holds the password hash, so only its ``fingerprint`` (the state's keyed HMAC)
    is part of the view.
    """
    view: dict[str, Any] = {
        "name": vm.name,
        "cores": vm.cores,
        "memory_mb": vm.memory_mb,
        "disk_size_gb": vm.disk_size_gb,
        "network_bridge": vm.network_bridge,
        "agent": True,
        "serial0": "socket",
        "vga": "serial0",
    }
    if vm.tags:
        view["tags"] = sorted(vm.tags)
    for key in CLOUDINIT_ATTRIBUTES:
        if key == "cicustom":
            continue
        value = cloudinit_options.get(key)
        if value in (None, ""):
            continue
        view[key] = propstr.decode_sshkeys(value) if key == "sshkeys" else normalise_option(key, value)
    if cicustom:
        view["cicustom"] = normalise_option("cicustom", cicustom)
    if vm.start:
        view["power"] = "running"
    view["template"] = vm.clone_from_vmid
    view["user_data"] = fingerprint(user_data_source)
    return view


def actual_view(config: dict[str, Any], status: str | None) -> dict[str, Any]:
    """What PVE's ``GET /config`` (plus the status from ``/cluster/resources``) says, in the same vocabulary."""
    view: dict[str, Any] = {}
    if "name" in config:
        view["name"] = config["name"]
    view["cores"] = _as_int(config.get("cores", 1))
    memory = config.get("memory")
    if memory is not None:
        view["memory_mb"] = _as_int(propstr.parse(str(memory), default_key="current").get("current", 0))
    size = disk_size_bytes(config)
    if size is not None:
        view["disk_size_gb"] = size // GIB if size % GIB == 0 else round(size / GIB, 3)
    if config.get("net0"):
        view["network_bridge"] = propstr.parse_net(config["net0"]).get("bridge")
    if "agent" in config:
        view["agent"] = propstr.parse(str(config["agent"]), default_key="enabled").get("enabled") == "1"
    else:
        view["agent"] = False
    for key in ("serial0", "vga"):
        if key in config:
            view[key] = config[key]
    if config.get("tags"):
        view["tags"] = sorted(t for t in str(config["tags"]).replace(",", ";").replace(" ", ";").split(";") if t)
    for key in CLOUDINIT_ATTRIBUTES:
        if key in config and config[key] != "":
            view[key] = propstr.decode_sshkeys(config[key]) if key == "sshkeys" else normalise_option(key, config[key])
    if status:
        view["power"] = "running" if status == "running" else "stopped"
    return view


def normalise_option(key: str, value: str) -> str:
    """Canonical text of a cloud-init option, so equivalent spellings never diff."""
    value = str(value)
    if key.startswith("ipconfig"):
        return propstr.format_ipconfig(propstr.parse_ipconfig(value))
    if key == "cicustom":
        return propstr.format(propstr.parse(value))
    if key == "nameserver":
        return " ".join(value.replace(",", " ").split())
    return value


def disk_size_bytes(config: dict[str, Any], disk: str = "scsi0") -> int | None:
    """Size of ``disk`` from its drive string (``size=32G``), or None when PVE did not record one."""
    drive = config.get(disk)
    if not drive:
        return None
    size = propstr.parse_drive(drive).get("size")
    return propstr.parse_size(size) if size else None


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
