"""Storage usage and disk names without a scan per request.

``GET /nodes/{node}/storage`` (asked once per VM by provisioning tools) reports each storage's
``used`` bytes.  Summing every volume and stat-ing every file on each call made the request O(N)
and a large apply O(N²).  Real PVE asks ``statvfs``; the simulator keeps running totals instead:

* image volumes: a total per (storage, volume node), and the disk names per (storage, volume
  node, VMID) that ``find_free_diskname`` must avoid, both corrected for just the volumes the
  model marked as changed since the last question (:meth:`Changes.take_usage`);
* files (ISOs, snippets, imports): a sum per content directory, reused while the directory's
  inode and mtime are unchanged and that mtime is more than a second old (a change within the
  filesystem's timestamp granularity would otherwise go unseen — git's "racy" rule).  Files are
  added, replaced and removed by rename or unlink, which change the directory's mtime; a file
  rewritten in place is counted at its new size when its directory next changes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["StorageUsage"]

RACY_NS = 1_000_000_000

VolumeKey = tuple[str, str]


_DISK_NAME = re.compile(r"^(?:vm|base)-(\d+)-disk-\d+")


class StorageUsage:
    def __init__(self) -> None:
        self._used: dict[tuple[str, str], int] = {}                        # (storage, vol node) -> bytes
        self._share: dict[VolumeKey, tuple[tuple[str, str], int]] = {}      # volume -> (its bucket, bytes)
        self._names: dict[tuple[str, str, int], set[str]] = {}             # (storage, vol node, vmid) -> names
        self._named: dict[VolumeKey, tuple[tuple[str, str, int], str]] = {}
        self._folders: dict[Path, tuple[tuple[int, int], int]] = {}        # dir -> ((inode, mtime), bytes)

    def sync(self, volumes: Mapping[VolumeKey, Any], changed: Iterable[VolumeKey]) -> None:
        """Take the ``changed`` volume keys into account (present in ``volumes``: added or changed)."""
        for key in changed:
            old = self._share.pop(key, None)
            if old is not None:
                self._used[old[0]] -= old[1]
            named = self._named.pop(key, None)
            if named is not None:
                self._names[named[0]].discard(named[1])
            volume = volumes.get(key)
            if volume is None:
                continue
            if not volume.parent:
                bucket = (volume.storage, volume.node)
                self._share[key] = (bucket, int(volume.size))
                self._used[bucket] = self._used.get(bucket, 0) + int(volume.size)
            name = volume.name.split(".")[0]
            match = _DISK_NAME.match(name)
            if match:
                where = (volume.storage, volume.node, int(match.group(1)))
                self._named[key] = (where, name)
                self._names.setdefault(where, set()).add(name)

    def volumes_used(self, storage: str, vol_node: str) -> int:
        """Bytes of the volumes on ``storage`` in ``vol_node``'s namespace (linked clones use none)."""
        return self._used.get((storage, vol_node), 0)

    def disk_names(self, storage: str, vol_node: str, vmid: int) -> set[str]:
        """``vm-<vmid>-disk-N`` / ``base-<vmid>-disk-N`` names taken on ``storage`` (no extension)."""
        return set(self._names.get((storage, vol_node, vmid), ()))

    def folder_bytes(self, folder: Path, counts: Callable[[str], bool]) -> int:
        """Bytes of the regular files in ``folder`` whose names ``counts``."""
        try:
            stat = os.stat(folder)
        except FileNotFoundError:
            return 0
        signature = (stat.st_ino, stat.st_mtime_ns)
        cached = self._folders.get(folder)
        if cached is not None and cached[0] == signature and time.time_ns() - stat.st_mtime_ns > RACY_NS:
            return cached[1]
        total = 0
        with os.scandir(folder) as entries:
            for entry in entries:
                if counts(entry.name) and entry.is_file(follow_symlinks=False):
                    try:
                        total += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue
        self._folders[folder] = (signature, total)
        return total
