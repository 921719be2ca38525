"""Which VMs and volumes changed since the model was last saved, so a save costs O(changed).

The simulator saves after every mutation; writing the whole cluster each time made a 1,000-VM
apply quadratic.  Instead the model notes what changed, without help from the handlers:

* ``Cluster.vms`` / ``Cluster.volumes`` are :class:`TrackedTable`\\ s: adding or removing an entry
  marks its key and attaches the :class:`Changes` to the object;
* a :class:`Tracked` object (``VM``, ``Volume``) marks itself on every attribute assignment, and
  its dict fields are :class:`TrackedDict`\\ s that mark their owner on every mutation.

A dict assigned to a tracked field is *copied* into a ``TrackedDict``: keep using ``vm.conf``
after the assignment, not the dict you assigned.  Nested containers inside those dicts are not
tracked (the model keeps flat string maps); the periodic full snapshot of ``persist`` writes
everything anyway.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["Changes", "Tracked", "TrackedDict", "TrackedTable"]


class Changes:
    """Keys changed since the last :meth:`take` (VMIDs and ``(node, volid)`` pairs)."""

    __slots__ = ("vms", "volumes", "usage")

    def __init__(self) -> None:
        self.vms: set[int] = set()
        self.volumes: set[tuple[str, str]] = set()
        self.usage: set[tuple[str, str]] = set()     # volumes the storage usage index has not seen yet

    def mark(self, kind: str, key: Any) -> None:
        getattr(self, kind).add(key)
        if kind == "volumes":
            self.usage.add(key)

    def take(self) -> tuple[set[int], set[tuple[str, str]]]:
        vms, volumes = self.vms, self.volumes
        self.vms, self.volumes = set(), set()
        return vms, volumes

    def take_usage(self) -> set[tuple[str, str]]:
        usage, self.usage = self.usage, set()
        return usage


class Tracked:
    """Mixin: ``_tracked_dicts`` fields become :class:`TrackedDict`; any assignment marks the object."""

    _tracked_dicts: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._tracked_dicts and isinstance(value, dict) and getattr(value, "_owner", None) is not self:
            value = TrackedDict(value, self)
        object.__setattr__(self, name, value)
        self.touch()

    def attach(self, changes: Changes | None) -> None:
        self.__dict__["_changes"] = changes

    def touch(self) -> None:
        changes = self.__dict__.get("_changes")
        if changes is not None:
            self._mark(changes)

    def _mark(self, changes: Changes) -> None:
        raise NotImplementedError


class TrackedDict(dict):  # type: ignore[type-arg]
    """A dict that tells its owner about every mutation (copies and pickles as a plain dict)."""

    __slots__ = ("_owner",)

    def __init__(self, data: Any = (), owner: Tracked | None = None):
        super().__init__(data)
        self._owner = owner

    def _touch(self) -> None:
        if self._owner is not None:
            self._owner.touch()

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._touch()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._touch()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._touch()
        return value

    def popitem(self) -> Any:
        item = super().popitem()
        self._touch()
        return item

    def clear(self) -> None:
        super().clear()
        self._touch()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._touch()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._touch()
        return value

    def __ior__(self, other: Any) -> "TrackedDict":
        super().update(other)
        self._touch()
        return self

    def __copy__(self) -> dict:  # type: ignore[type-arg]
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict:  # type: ignore[type-arg]
        return copy.deepcopy(dict(self), memo)

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))


class TrackedTable(dict):  # type: ignore[type-arg]
    """``Cluster.vms`` / ``Cluster.volumes``: entries added or removed are marked, and attached."""

    __slots__ = ("_changes", "_kind")

    def __init__(self, changes: Changes, kind: str, data: Any = ()):
        super().__init__()
        self._changes = changes
        self._kind = kind
        for key, value in dict(data).items():
            self[key] = value

    def _mark(self, key: Any) -> None:
        self._changes.mark(self._kind, key)

    def __setitem__(self, key: Any, value: Tracked) -> None:
        super().__setitem__(key, value)
        value.attach(self._changes)
        self._mark(key)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._mark(key)

    def pop(self, key: Any, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._mark(key)
        return value

    def popitem(self) -> Any:
        key, value = super().popitem()
        self._mark(key)
        return key, value

    def clear(self) -> None:
        for key in list(self):
            self._mark(key)
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]
