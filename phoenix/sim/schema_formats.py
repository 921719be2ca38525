"""PVE's named string formats (``format => 'pve-vmid'`` …) with their exact ``die`` texts.

Each validator raises :class:`FormatError` with the message PVE's Perl validator dies with
(trailing newline included — PVE keeps it in the parameter error).  Sources: pve-common
``PVE/JSONSchema.pm``, pve-storage, qemu-server (``Network.pm``, ``QemuServer.pm``).
Hash-based named formats (``pve-qm-ipconfig`` …) are property-string schemas, see ``NAMED_HASH_FORMATS``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Callable

__all__ = ["FormatError", "VALIDATORS", "NAMED_HASH_FORMATS", "split_list", "is_valid_drive_name"]


class FormatError(Exception):
    """A value rejected by a format; ``str()`` is PVE's message (with its newline)."""


def split_list(text: str) -> list[str]:
    """PVE::Tools::split_list: NUL-separated, else commas/semicolons/whitespace."""
    text = text or ""
    if "\0" in text:
        return [part for part in text.split("\0")]
    return re.sub(r"[,;]", " ", text).split()


def _regex_validator(pattern: str, message: str) -> Callable[[str], None]:
    compiled = re.compile(pattern)

    def validate(value: str) -> None:
        if not compiled.search(value):
            raise FormatError(message.format(value=value))

    return validate


def _poolid(value: str) -> None:
    """pve-access-control ``verify_poolname``: up to three ``/``-separated levels."""
    if not re.fullmatch(r"[A-Za-z0-9.\-_]+(/[A-Za-z0-9.\-_]+)*", value):
        raise FormatError(f"pool name '{value}' contains invalid characters\n")
    if value.count("/") > 2:
        raise FormatError(f"pool name '{value}' nested too deeply (max levels = 3)\n")


_NAME_RE = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_DRIVE_RANGES = {"ide": 3, "sata": 5, "scsi": 30, "virtio": 15}


def is_valid_drive_name(name: str) -> bool:
    match = re.fullmatch(r"(ide|sata|scsi|virtio)(\d+)", name)
    if match:
        return int(match.group(2)) <= _DRIVE_RANGES[match.group(1)] and str(int(match.group(2))) == match.group(2)
    return name in ("efidisk0", "tpmstate0")


def _is_ipv4(value: str) -> bool:
    if not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", value):
        return False
    return all(int(part) <= 255 for part in value.split("."))


def _is_ipv6(value: str) -> bool:
    if not re.fullmatch(r"[0-9A-Fa-f:.]+", value) or ":" not in value:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _cidr(value: str, check: Callable[[str], bool], low: int, high: int) -> bool:
    address, sep, prefix = value.partition("/")
    return bool(sep) and prefix.isascii() and prefix.isdigit() and check(address) and low < int(prefix) <= high


def _cidrv4(value: str) -> bool:
    return _cidr(value, _is_ipv4, 7, 32)


def _cidrv6(value: str) -> bool:
    return _cidr(value, _is_ipv6, 7, 128)


def _dns_name(value: str) -> bool:
    return re.search(rf"^({_NAME_RE}\.)*{_NAME_RE}$", value) is not None


def _predicate(check: Callable[[str], bool], message: str) -> Callable[[str], None]:
    def validate(value: str) -> None:
        if not check(value):
            raise FormatError(message.format(value=value))

    return validate


def _volume_id(value: str) -> None:
    if not re.search(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$", value, re.IGNORECASE | re.DOTALL):
        raise FormatError(f"unable to parse volume ID '{value}'\n")


def _volume_id_or_absolute_path(value: str) -> None:
    if value.startswith("/"):
        return
    _volume_id(value)


def _volume_id_or_qm_path(value: str) -> None:
    if value in ("none", "cdrom"):
        return
    _volume_id_or_absolute_path(value)


def _disk_size(value: str) -> None:
    if not re.search(r"^(\d+(\.\d+)?)([KMGT])?$", value, re.ASCII):
        raise FormatError(f"value does not look like a valid disk size: {value}\n")


def _boot_device(value: str) -> None:
    special = value.startswith("efidisk") or value.startswith("tpmstate")
    if is_valid_drive_name(value) and not special:
        return
    match = re.fullmatch(r"(net|usb|hostpci)(\d+)", value)
    limits = {"net": 31, "usb": 13, "hostpci": 15}
    if match and int(match.group(2)) <= limits[match.group(1)]:
        return
    raise FormatError(f"invalid boot device '{value}'\n")


def _boot_disk(value: str) -> None:
    if not is_valid_drive_name(value):
        raise FormatError(f"invalid boot disk '{value}'\n")


def _startup_order(value: str) -> None:
    ok = bool(value) and all(
        re.fullmatch(r"(order=)?\d+|up=\d+|down=\d+", part, re.ASCII)
        for part in value.split(",") if part.strip()
    )
    if not ok:
        raise FormatError("unable to parse startup options\n")


_CONTENT_TYPES = {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"}

VALIDATORS: dict[str, Callable[[str], None]] = {
    "string": lambda value: None,
    "pve-vmid": _regex_validator(r"^[1-9][0-9]{2,8}$", "value does not look like a valid VM ID\n"),
    "pve-node": _regex_validator(rf"^({_NAME_RE})$", "value does not look like a valid node name\n"),
    "dns-name": _predicate(_dns_name, "value does not look like a valid DNS name\n"),
    "urlencoded": _regex_validator(r"^[-%a-zA-Z0-9_.!~*'()]*$", "invalid urlencoded string: {value}\n"),
    "pve-configid": _regex_validator(r"(?i)^[a-z][a-z0-9_-]+$", "invalid configuration ID '{value}'\n"),
    "pve-storage-id": _regex_validator(r"(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$",
                                       "storage ID '{value}' contains illegal characters\n"),
    "pve-bridge-id": _regex_validator(r"^[-_.A-Za-z0-9]+$", "invalid bridge ID '{value}'\n"),
    "pve-poolid": lambda value: _poolid(value),
    "pve-realm": _regex_validator(r"^[A-Za-z][A-Za-z0-9.\-_]+$", "realm '{value}' contains invalid characters\n"),
    "mac-addr": _regex_validator(r"(?i)^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$",
                                 "value does not look like a valid unicast MAC address\n"),
    "ipv4": _predicate(_is_ipv4, "value does not look like a valid IPv4 address\n"),
    "ipv6": _predicate(_is_ipv6, "value does not look like a valid IPv6 address\n"),
    "ip": _predicate(lambda v: _is_ipv4(v) or _is_ipv6(v), "value does not look like a valid IP address\n"),
    "CIDRv4": _predicate(_cidrv4, "value does not look like a valid IPv4 CIDR network\n"),
    "CIDRv6": _predicate(_cidrv6, "value does not look like a valid IPv6 CIDR network\n"),
    "CIDR": _predicate(lambda v: _cidrv4(v) or _cidrv6(v), "value does not look like a valid CIDR network\n"),
    "pve-ipv4-config": _predicate(lambda v: v in ("dhcp", "manual") or _cidrv4(v),
                                  "value does not look like a valid ipv4 network configuration\n"),
    "pve-ipv6-config": _predicate(lambda v: v in ("auto", "dhcp", "manual") or _cidrv6(v),
                                  "value does not look like a valid ipv6 network configuration\n"),
    "address": _predicate(lambda v: _is_ipv4(v) or _is_ipv6(v) or _dns_name(v),
                          "value does not look like a valid address: {value}\n"),
    "disk-size": _disk_size,
    "pve-tag": _regex_validator(r"(?i)^[a-z0-9_][a-z0-9_\-+.]*$", "invalid characters in tag\n"),
    "pve-task-status-type": _regex_validator(r"(?i)^(ok|error|warning|unknown)$", "invalid status '{value}'\n"),
    "pve-startup-order": _startup_order,
    "pve-volume-id": _volume_id,
    "pve-volume-id-or-qm-path": _volume_id_or_qm_path,
    "pve-volume-id-or-absolute-path": _volume_id_or_absolute_path,
    "pve-storage-content": _predicate(lambda v: v in _CONTENT_TYPES, "invalid content type '{value}'\n"),
    "pve-qm-bootdev": _boot_device,
    "pve-qm-bootdisk": _boot_disk,
}

# Hash-based named formats: property-string schemas registered under a name in qemu-server.
NAMED_HASH_FORMATS: dict[str, dict] = {
    "pve-qm-ipconfig": {
        "ip": {"type": "string", "format": "pve-ipv4-config", "optional": 1},
        "gw": {"type": "string", "format": "ipv4", "optional": 1, "requires": "ip"},
        "ip6": {"type": "string", "format": "pve-ipv6-config", "optional": 1},
        "gw6": {"type": "string", "format": "ipv6", "optional": 1, "requires": "ip6"},
    },
    "pve-qm-cicustom": {
        key: {"type": "string", "format": "pve-volume-id", "optional": 1}
        for key in ("meta", "network", "user", "vendor")
    },
    "pve-qm-boot": {
        "legacy": {"type": "string", "optional": 1, "default_key": 1, "pattern": "[acdn]{1,4}"},
        "order": {"type": "string", "optional": 1, "format": "pve-qm-bootdev-list"},
    },
    # qemu-server's $smbios1_fmt: a garbage smbios1 is a 400 at verification, not a failed create task
    "pve-qm-smbios1": {
        "uuid": {"type": "string", "optional": 1, "pattern": "[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}"},
        **{key: {"type": "string", "optional": 1, "pattern": "[A-Za-z0-9+\\/]+={0,2}"}
           for key in ("version", "serial", "manufacturer", "product", "sku", "family")},
        "base64": {"type": "boolean", "optional": 1},
    },
}
