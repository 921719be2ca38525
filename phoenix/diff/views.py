"""Normalised views: the declared attributes of a VM, as desired and as PVE shows them.

Both sides are flattened into the same small vocabulary (``cores``, ``memory_mb``,
``disk_size_gb``, ``ipconfig0`` …) so that comparing them is a plain dict comparison.  Only
the keys phoenix declares appear in a desired view, and the actual view is always cut down to
the keys of the desired one: a clone inherits dozens of keys from its template and none of
them may ever cause a diff.  Both views are computed from the attribute registry
(``phoenix.diff.attributes``); nothing here knows a particular setting.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Mapping

from phoenix.diff.attributes import ATTRIBUTES, Attribute
from phoenix.diff.codecs import Declared, Observed, keep_actual

if TYPE_CHECKING:
    from phoenix.desired.spec import VMSpec


def desired_view(vm: "VMSpec", cicustom: str | None, user_data_fingerprint: str) -> dict[str, Any]:
    """The declared attributes of ``vm`` in phoenix's vocabulary (undeclared ones left out).

    The user-data holds the password hash, so only its fingerprint (the state's keyed HMAC) is
    part of the view.
    """
    declared = Declared(vm, cicustom=cicustom, user_data=user_data_fingerprint)
    view: dict[str, Any] = {}
    for entry in _entries(declared.sparse_keys, False):
        value = entry.declare(declared)
        if value is not None and value != "":
            view[entry.name] = value
    return view


def actual_view(config: Mapping[str, Any], status: str | None) -> dict[str, Any]:
    """What PVE's ``GET /config`` (plus the status from ``/cluster/resources``) says, in the same vocabulary."""
    observed = Observed(config, status)
    view: dict[str, Any] = {}
    for entry in _entries(frozenset(key for key in config if key in _SPARSE), True):
        if entry.name in _FLEET_WIDE:
            value = _read_shared(entry, observed)
        else:
            value = entry.read(observed)  # type: ignore[misc]  # _entries(..., True) holds readable ones only
        if value is not None:
            view[entry.name] = value
    return view


# Attributes whose PVE value is mostly the same across a fleet: each read depends only on the value of
# its first PVE key (power: on the status), so it is computed once per distinct value and copied out.
_FLEET_WIDE = frozenset({"cores", "memory_mb", "agent", "cpu", "sockets", "balloon_mb", "onboot", "startup",
                         "machine", "bios", "efidisk0", "scsihw", "serial0", "vga", "tags", "ciuser", "sshkeys",
                         "nameserver", "searchdomain", "power"})
_SCALAR_TYPES = (str, int, float, bool, type(None))
_READS: dict[tuple[str, type, Any, str | None], Any] = {}


def _read_shared(entry: Attribute, observed: Observed) -> Any:
    raw = observed.config.get(entry.pve_keys[0]) if entry.pve_keys else None
    key = (entry.name, type(raw), raw, observed.status if not entry.pve_keys else None)
    try:
        value = _READS[key]
    except KeyError:
        value = entry.read(observed)  # type: ignore[misc]  # only readable entries get here
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        if all(isinstance(item, _SCALAR_TYPES) for item in items):   # a copy of one level is a full copy
            if len(_READS) >= 4096:
                _READS.clear()
            _READS[key] = value
        return value
    except TypeError:                       # an unhashable value (not what PVE sends): read it as it is
        return entry.read(observed)  # type: ignore[misc]
    return type(value)(value) if isinstance(value, (dict, list)) else value


_SPARSE = {entry.pve_keys[0]: index for index, entry in enumerate(ATTRIBUTES) if entry.sparse}
_DENSE = tuple(index for index, entry in enumerate(ATTRIBUTES) if not entry.sparse)


@lru_cache(maxsize=1024)
def _entries(sparse_keys: frozenset[str], readable: bool) -> tuple[Attribute, ...]:
    """The registry entries a view visits, in registry order: every dense one and the numbered ones
    (``netN``, extra disks …) in ``sparse_keys``.  A fleet has a few distinct NIC and disk layouts, so
    this is worked out a few times per run instead of ~170 entry checks per VM and view."""
    indexes = sorted([*_DENSE, *(_SPARSE[key] for key in sparse_keys if key in _SPARSE)])
    return tuple(ATTRIBUTES[i] for i in indexes if not readable or ATTRIBUTES[i].read is not None)


def narrowed(view: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """``view`` (actual or recorded) with each declared value cut down to what the desired value
    declares (the registry's ``narrow``: e.g. a NIC's MAC that PVE picked is not compared)."""
    result = dict(view)
    for name, value in desired.items():
        narrow = _NARROWING.get(name)
        if narrow is not None and name in result:
            result[name] = narrow(result[name], value)
    return result


# The entries whose ``narrow`` does something (the default keeps the actual value as it is).
_NARROWING = {entry.name: entry.narrow for entry in ATTRIBUTES if entry.narrow is not keep_actual}
