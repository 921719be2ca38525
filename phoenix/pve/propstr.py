"""PVE property strings: the one place in phoenix that knows their syntax.

PVE packs structured options into strings such as ``virtio=BC:24:11:00:00:01,bridge=vmbr0``
(``net0``), ``local-lvm:vm-100-disk-0,size=32G`` (``scsi0``) or ``ip=10.0.0.5/24,gw=10.0.0.1``
(``ipconfig0``).  Both the client side (``phoenix/pve``) and the simulator (``phoenix/sim``)
parse and print them through this module, so the two can never disagree.

Rules follow pve-common ``PVE::JSONSchema::parse_property_string`` / ``print_property_string``:
comma-separated ``key=value`` pairs, at most one bare value which belongs to the format's
``default_key``, printed with the default key's bare value first and the other keys sorted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from urllib.parse import quote, unquote

__all__ = [
    "PropertyStringError",
    "parse",
    "format",
    "parse_size",
    "format_size",
    "parse_net",
    "format_net",
    "parse_drive",
    "format_drive",
    "parse_ipconfig",
    "format_ipconfig",
    "encode_sshkeys",
    "decode_sshkeys",
    "parse_tags",
    "format_tags",
    "NET_MODELS",
]

# NIC models PVE accepts as the ``model=MAC`` head of a ``netN`` value.
NET_MODELS = (
    "e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b",
    "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3",
)

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)$")


class PropertyStringError(ValueError):
    """A property string that cannot be parsed; ``key`` names the offending part when known."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def parse(text: str, default_key: str | None = None) -> dict[str, str]:
    """Split ``text`` into an ordered ``{key: value}`` dict (values stay strings).

    A bare part (no ``=``) is the value of ``default_key``; a second bare part, a bare part
    without a default key, an empty key or a duplicate key is an error, as in PVE.
    """
    result: dict[str, str] = {}
    if text is None or text == "":
        return result
    for part in text.split(","):
        if part.strip() == "":  # PVE: next if $part =~ /^\s*$/
            continue
        key, sep, value = part.partition("=")
        if not sep:
            if default_key is None:
                raise PropertyStringError(f"value without key, but schema does not define a default key: '{part}'")
            if default_key in result:
                raise PropertyStringError(f"duplicate key in comma-separated list property: {default_key}", default_key)
            result[default_key] = part
            continue
        key = key.strip()
        if not key:
            raise PropertyStringError(f"missing key in comma-separated list property: '{part}'")
        if key in result:
            raise PropertyStringError(f"duplicate key in comma-separated list property: {key}", key)
        result[key] = value
    return result


def format(values: Mapping[str, object], default_key: str | None = None) -> str:  # noqa: A001 - mirrors PVE's name
    """Print ``values`` the way PVE does: default key's bare value first, then ``key=value`` sorted.

    ``None`` values are left out; booleans print as ``1``/``0``.  A default value that contains
    ``=`` (an import file such as ``a=b.qcow2``) is printed as ``key=value`` so it parses back.
    A key or value that cannot be represented (a ``,`` in it) is an error rather than a string
    that PVE would read differently.
    """
    parts: list[str] = []
    default = values.get(default_key) if default_key is not None else None
    if default is not None and _scalar(default) != "":
        text = _checked_value(default_key, default)
        parts.append(f"{default_key}={text}" if "=" in text else text)
    for key in sorted(values):
        if key == default_key or values[key] is None:
            continue
        if not key or "," in key or "=" in key or key.strip() != key:
            raise PropertyStringError(f"invalid key in comma-separated list property: '{key}'", key)
        parts.append(f"{key}={_checked_value(key, values[key])}")
    return ",".join(parts)


def _checked_value(key: str | None, value: object) -> str:
    text = _scalar(value)
    if "," in text:
        raise PropertyStringError(f"value of '{key}' must not contain ',': '{text}'", key)
    return text


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


# --- sizes -------------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    """``32G`` → bytes (binary units, no unit = bytes), as PVE's ``disk-size`` format."""
    match = _SIZE_RE.match(str(text).strip())
    if not match:
        raise PropertyStringError(f"unable to parse size '{text}'", "size")
    number, unit = match.groups()
    try:  # Decimal, not float: byte counts beyond 2**53 must stay exact
        return int(Decimal(number) * _SIZE_UNITS[unit])
    except InvalidOperation:
        raise PropertyStringError(f"unable to parse size '{text}'", "size") from None


def format_size(size: int) -> str:
    """Bytes → the largest exact binary unit, as PVE's ``format_size`` (``34359738368`` → ``32G``)."""
    size = int(size)
    for unit in ("T", "G", "M", "K"):
        factor = _SIZE_UNITS[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


# --- netN --------------------------------------------------------------------------------------

def parse_net(text: str) -> dict[str, str]:
    """``virtio=BC:24:11:AA:BB:CC,bridge=vmbr0`` → ``{"model": "virtio", "macaddr": ..., "bridge": ...}``.

    Accepts the long form (``model=virtio,macaddr=...``) and a bare model without a MAC too.
    """
    raw = parse(text, default_key="model")
    heads = [key for key in raw if key in NET_MODELS or key == "model"]
    if len(heads) > 1:
        raise PropertyStringError(f"duplicate NIC model in '{text}'", "model")
    if not heads:
        raise PropertyStringError(f"missing NIC model in '{text}'", "model")
    if heads[0] != "model" and "macaddr" in raw:
        raise PropertyStringError(f"duplicate MAC address in '{text}'", "macaddr")
    result: dict[str, str] = {}
    for key, value in raw.items():
        if key in NET_MODELS:
            result["model"] = key
            if value:
                result["macaddr"] = value
        else:
            result[key] = value
    return result


def format_net(values: Mapping[str, object]) -> str:
    """Inverse of :func:`parse_net`: ``model=MAC`` first (when a MAC is known), other keys sorted."""
    rest = {k: v for k, v in values.items() if k not in ("model", "macaddr")}
    model = values["model"]
    head = f"{model}={values['macaddr']}" if values.get("macaddr") else str(model)
    tail = format(rest)
    return f"{head},{tail}" if tail else head


# --- drives (scsiN, ideN, virtioN, sataN) ------------------------------------------------------

def parse_drive(text: str) -> dict[str, str]:
    """``local-lvm:vm-100-disk-0,size=32G`` → ``{"file": "local-lvm:vm-100-disk-0", "size": "32G"}``."""
    return parse(text, default_key="file")


def format_drive(values: Mapping[str, object]) -> str:
    """Volume first, options sorted alphabetically (as PVE's ``print_drive``)."""
    return format(values, default_key="file")


# --- ipconfigN ---------------------------------------------------------------------------------

def parse_ipconfig(text: str) -> dict[str, str]:
    """``ip=10.0.0.5/24,gw=10.0.0.1`` → dict; unknown keys are an error (no default key)."""
    values = parse(text)
    for key in values:
        if key not in ("ip", "gw", "ip6", "gw6"):
            raise PropertyStringError(f"invalid ipconfig key '{key}'", key)
    return values


def format_ipconfig(values: Mapping[str, object]) -> str:
    """Print in PVE's documented order: ``ip``, ``gw``, ``ip6``, ``gw6`` (keys sorted would put gw first)."""
    return ",".join(f"{k}={values[k]}" for k in ("ip", "gw", "ip6", "gw6") if values.get(k) is not None)


# --- sshkeys -----------------------------------------------------------------------------------

def encode_sshkeys(keys: list[str] | str) -> str:
    """URL-encode public keys for the ``sshkeys`` option: spaces as ``%20`` (never ``+``), one key a line."""
    text = keys if isinstance(keys, str) else "\n".join(k.strip() for k in keys)
    return quote(text, safe="")


def decode_sshkeys(encoded: str) -> list[str]:
    """Inverse of :func:`encode_sshkeys`: the non-empty key lines."""
    return [line.strip() for line in unquote(encoded).splitlines() if line.strip()]


# --- tags --------------------------------------------------------------------------------------

def parse_tags(text: object) -> list[str]:
    """``a;b``, ``a,b`` or ``a b`` → ``["a", "b"]``: PVE accepts all three separators (it stores ``;``)."""
    return [tag for tag in re.split(r"[;, ]+", str(text or "")) if tag]


def format_tags(tags: list[str]) -> str:
    """Inverse of :func:`parse_tags`, in PVE's stored form."""
    return ";".join(tags)
