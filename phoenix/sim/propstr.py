"""The simulator's own reading and printing of PVE property strings (pve-common's rules, not phoenix's).

Deliberately separate from ``phoenix.pve.propstr``: the simulator stands in for PVE, so it must
catch a client's property-string mistakes — phoenix's included — instead of sharing the client's
parser and agreeing with its bugs.  Only data is shared (the format dicts of the API schema).

Splitting follows pve-common ``JSONSchema.pm::parse_property_string`` (L1068-1149: empty parts
skipped, ``key=value`` needs a non-empty value, one bare value for the format's ``default_key``);
printing follows ``print_property_string`` (L2779-2878: the default key's value first without
``key=``, then the other required keys, then the rest sorted; ``disk-size`` through ``format_size``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["PropertyStringError", "split", "print_property_string", "parse_size", "format_size",
           "parse_drive", "print_drive", "parse_net", "print_net", "parse_ipconfig", "as_boolean"]

_PAIR_RE = re.compile(r"^([^=]+)=(.+)$", re.S)
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT])?$")
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_TRUE, _FALSE = ("1", "on", "yes", "true"), ("0", "off", "no", "false")


class PropertyStringError(ValueError):
    """PVE's ``die`` text for a malformed property string (with its trailing newline)."""


def split(text: str | None, default_key: str | None = None) -> dict[str, str]:
    """The splitting half of ``parse_property_string``: ``{key: value}`` in the order written."""
    result: dict[str, str] = {}
    for part in (text or "").split(","):
        if re.fullmatch(r"\s*", part):
            continue
        pair = _PAIR_RE.match(part)
        if pair:
            key, value = pair.group(1), pair.group(2)
            if key in result:
                raise PropertyStringError(f"duplicate key in comma-separated list property: {key}\n")
            result[key] = value
        elif "=" not in part:
            if default_key is None:
                raise PropertyStringError("value without key, but schema does not define a default key\n")
            if default_key in result:
                raise PropertyStringError(f"duplicate key in comma-separated list property: {default_key}\n")
            result[default_key] = part
        else:
            raise PropertyStringError("missing key in comma-separated list property\n")
    return result


def as_boolean(value: str) -> str:
    """``on|yes|true`` → ``1``, ``off|no|false`` → ``0`` (any case); anything else unchanged."""
    lowered = value.lower()
    return "1" if lowered in _TRUE else "0" if lowered in _FALSE else value


def print_property_string(fmt: dict[str, dict], values: dict[str, Any]) -> str:
    """``print_property_string``: default key bare, then required keys, then the others sorted."""
    default_key = next((k for k, spec in fmt.items() if spec.get("default_key")), None)
    required = sorted(k for k, spec in fmt.items()
                      if not spec.get("optional") and not spec.get("alias") and k != default_key)
    parts: list[str] = []
    if default_key is not None and values.get(default_key) is not None:
        parts.append(str(values[default_key]))
    for key in required + sorted(k for k in values if k not in required and k != default_key):
        value = values.get(key)
        if value is None:
            continue
        if fmt.get(key, {}).get("format") == "disk-size":
            value = format_size(parse_size(str(value)))
        parts.append(f"{key}={value}")
    return ",".join(parts)


# --- sizes (pve-common ``parse_size`` / ``format_size``) -----------------------------------------

def parse_size(text: str) -> int:
    match = _SIZE_RE.match(text)
    if not match:
        raise PropertyStringError(f"unable to parse size '{text}'\n")
    try:
        return int(Decimal(match.group(1)) * _UNITS.get(match.group(2) or "", 1))
    except InvalidOperation:
        raise PropertyStringError(f"unable to parse size '{text}'\n") from None


def format_size(size: int) -> str:
    """The largest binary unit that divides ``size`` exactly (``34359738368`` → ``32G``)."""
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


# --- drives (qemu-server ``Drive.pm`` parse_drive / print_drive) ---------------------------------

def _drive_format(key: str | None) -> dict[str, dict]:
    from phoenix.sim.schema import drive_format
    return drive_format(key)


def parse_drive(value: str, key: str | None = None) -> dict[str, str]:
    """A drive value as PVE reads it: aliases resolved, booleans as ``1``/``0``, ``file=`` accepted.

    ``key`` (``scsi0``…) selects the bus's format; without it the split is format-free.  Raises
    :class:`PropertyStringError` for what ``parse_drive`` rejects.
    """
    fmt = _drive_format(key)
    raw = split(value, "file")
    if not fmt:
        return raw
    drive: dict[str, str] = {}
    for name, text in raw.items():
        spec = fmt.get(name)
        if spec is None:
            raise PropertyStringError(f"invalid key in comma-separated list property: {name}\n")
        if spec.get("alias"):
            name, spec = spec["alias"], fmt.get(spec["alias"], {})
        drive[name] = as_boolean(text) if spec.get("type") == "boolean" else text
    if "file" not in drive:
        raise PropertyStringError("unable to parse drive options\n")
    return drive


def print_drive(drive: dict[str, Any], key: str | None = None) -> str:
    """``print_drive``: the volume first, then the options sorted, sizes in their shortest unit."""
    fmt = _drive_format(key) or {"file": {"default_key": 1}, "size": {"format": "disk-size", "optional": 1}}
    return print_property_string(fmt, drive)


# --- netN (qemu-server ``Network.pm`` parse_net / print_net) -------------------------------------

def parse_net(value: str) -> dict[str, str]:
    """``virtio=BC:..,bridge=vmbr0`` → ``{"model": "virtio", "macaddr": "BC:..", "bridge": "vmbr0"}``.

    The model keys are the schema's ``keyAlias: model`` entries of the ``net[n]`` format.
    """
    from phoenix.sim.schema import net_format
    fmt = net_format()
    net: dict[str, str] = {}
    for name, text in split(value, "model").items():
        if fmt.get(name, {}).get("keyAlias") == "model":
            net["model"], net["macaddr"] = name, text
        else:
            net[name] = text
    return net


def print_net(net: dict[str, Any]) -> str:
    """``<model>=<MAC>`` first, then the other keys sorted."""
    head = f"{net['model']}={net['macaddr']}" if net.get("macaddr") else str(net.get("model", ""))
    rest = [f"{k}={v}" for k, v in sorted(net.items()) if k not in ("model", "macaddr") and v is not None]
    return ",".join([head] + rest)


def parse_ipconfig(value: str) -> dict[str, str]:
    return split(value)
