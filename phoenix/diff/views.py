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

from phoenix.diff.attributes import ATTRIBUTES, BY_NAME, Attribute, Declared, Observed

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
        value = entry.read(observed)  # type: ignore[misc]  # _entries(..., True) holds readable ones only
        if value is not None:
            view[entry.name] = value
    return view


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
        entry = BY_NAME.get(name)
        if entry is not None and name in result:
            result[name] = entry.narrow(result[name], value)
    return result
