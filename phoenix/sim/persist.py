"""Keeping the simulated cluster on disk, at a cost per save of what changed.

The model is a snapshot, ``cluster.json`` (replaced atomically: temp file, fsync, rename), plus
an append-only log, ``cluster.log``: each save appends one JSON line with the VMs and volumes that
changed since the previous save (``Cluster.take_changes``; a VM this process wrote before as just
its changed top-level fields) and the small cluster header when it changed, so a save costs
O(changed VM), not O(cluster).  When the log outgrows the snapshot a
save writes a fresh snapshot and empties the log.  Loading replays the log onto the snapshot;
every line holds whole records or whole top-level fields, so replaying a line twice is harmless (a crash between a new
snapshot and emptying the log), and a torn last line (a process killed mid-write) is ignored.

Several processes may serve the same data dir (``phoenix sim serve`` and tests opening a second
server): writers hold an exclusive ``flock`` on ``cluster.lock``, readers a shared one; each
process notices a snapshot or log changed by someone else (inode/mtime/size) and reloads before
the next request.  Appends are not fsynced (they survive a killed process, not a power cut).
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_json", "atomic_write_text", "ModelStore", "cluster_class"]

MODEL_FILE = "cluster.json"
LOG_FILE = "cluster.log"
LOCK_FILE = "cluster.lock"
LOG_MIN_COMPACT_BYTES = 1024 * 1024   # the log is compacted past this or the snapshot's size

log = logging.getLogger("phoenix.sim.persist")


def atomic_write_text(path: Path, text: str, mode: int = 0o600) -> os.stat_result:
    """Replace ``path`` with ``text`` atomically; return the stat of the file now in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            stat = os.fstat(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return stat


def atomic_write_json(path: Path, payload: Any, mode: int = 0o600) -> os.stat_result:
    return atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True) + "\n", mode)


class PlainCluster:
    """Stand-in used only while ``phoenix.sim.model`` does not exist: a JSON dict with node names."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    @classmethod
    def create(cls, nodes: list[str], data_dir: Path) -> "PlainCluster":
        return cls({"nodes": list(nodes)})

    @classmethod
    def from_json(cls, data: dict[str, Any], data_dir: Path) -> "PlainCluster":
        return cls(dict(data))

    def to_json(self) -> dict[str, Any]:
        return self.data


def cluster_class() -> Any:
    """sim-model's ``Cluster`` when its package exists (import errors inside it propagate)."""
    if importlib.util.find_spec("phoenix.sim.model") is None:
        return PlainCluster
    module = importlib.import_module("phoenix.sim.model")
    return getattr(module, "Cluster", PlainCluster)


def _signature(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class ModelStore:
    """Loads, saves and notices outside changes of the cluster snapshot + log in one data dir."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / MODEL_FILE
        self.log_path = self.data_dir / LOG_FILE
        self.lock_path = self.data_dir / LOCK_FILE
        self._path_text, self._log_path_text = str(self.path), str(self.log_path)
        self._known: tuple[Any, Any] | None = None     # (snapshot, log) signatures we last saw or wrote
        self._header: Any = None                        # header as last persisted
        self._snapshot_size = 0
        # Per VM, a hash of each top-level field as this process last wrote it to the log (reset on
        # every load and snapshot: after someone else's writes only a whole record is safe).
        self._vm_digests: dict[str, dict[str, int]] = {}
        self.bytes_written = 0                          # snapshot + log bytes (bench figures)

    def load_or_create(self, nodes: list[str]) -> Any:
        if self.path.exists():
            return self.load()
        model = cluster_class().create(list(nodes), self.data_dir)
        self.save(model)
        return model

    def load(self) -> Any:
        with self._flock(fcntl.LOCK_SH):
            with open(self.path, encoding="utf-8") as handle:
                snapshot_sig = _signature(os.fstat(handle.fileno()))
                data = json.load(handle)
            self._snapshot_size = snapshot_sig[2]
            self._vm_digests = {}
            log_sig = self._replay(data)
            self._known = (snapshot_sig, log_sig)
        model = cluster_class().from_json(data, self.data_dir)
        if hasattr(model, "take_changes"):
            model.take_changes()                         # loading is not a change
            self._header = model.header_json()
        return model

    def _replay(self, data: dict[str, Any]) -> Any:
        """Apply the log's complete lines to the snapshot dict; the log's signature."""
        try:
            with open(self.log_path, "rb") as handle:
                log_sig = _signature(os.fstat(handle.fileno()))
                raw = handle.read()
        except FileNotFoundError:
            return None
        lines = raw.split(b"\n")
        lines.pop()                                      # b"" after the last newline, or a torn line
        if not lines:
            return log_sig
        vms = data.setdefault("vms", {})
        volumes = {(v["node"], f"{v['storage']}:{v['volname']}"): v for v in data.get("volumes", [])}
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except ValueError:
                log.warning("%s line %d is damaged; ignoring it and the lines after it", self.log_path, number)
                break
            if entry.get("header"):
                data.update(entry["header"])
            for vmid, vm in (entry.get("vms") or {}).items():
                if vm is None:
                    vms.pop(vmid, None)
                else:
                    vms[vmid] = vm
            for vmid, changed in (entry.get("vm_fields") or {}).items():
                if vmid in vms:
                    vms[vmid].update(changed)
            for node, volid, volume in entry.get("volumes") or []:
                if volume is None:
                    volumes.pop((node, volid), None)
                else:
                    volumes[(node, volid)] = volume
        data["volumes"] = list(volumes.values())
        return log_sig

    def save(self, model: Any) -> None:
        """Persist what changed in ``model`` since the last save (call with the model's mutex held)."""
        with self._flock(fcntl.LOCK_EX):
            if not hasattr(model, "take_changes") or self._known is None or not self.path.exists():
                self._snapshot(model)
                return
            vms, volumes = model.take_changes()
            header = model.header_json()
            entry: dict[str, Any] = {}
            if header != self._header:
                entry["header"] = header
            whole, changed = self._vm_deltas(vms)
            if whole:
                entry["vms"] = whole
            if changed:
                entry["vm_fields"] = changed
            if volumes:
                entry["volumes"] = volumes
            if not entry:
                return
            data = (json.dumps(entry, separators=(",", ":"), sort_keys=True) + "\n").encode("utf-8")
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                before = _signature(os.fstat(fd))
                os.write(fd, data)
                after = _signature(os.fstat(fd))
            finally:
                os.close(fd)
            self.bytes_written += len(data)
            self._header = header
            snapshot_sig = self._known[0]
            # Someone else appended since we last looked: leave our view stale, so the next
            # refresh reloads (and replays their lines and ours).
            ours = before == self._known[1] or (self._known[1] is None and before[2] == 0)
            self._known = (snapshot_sig, after if ours else None)
            if after[2] > max(LOG_MIN_COMPACT_BYTES, self._snapshot_size):
                self._snapshot(model)

    def _vm_deltas(self, vms: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Changed VMs as whole records (new, removed, or not written by this process yet) and as
        only their changed top-level fields: a VM's record carries its cloud-init documents and
        guest files (~12 KB), while most saves change its status or one config key."""
        whole: dict[str, Any] = {}
        changed: dict[str, dict[str, Any]] = {}
        for vmid, record in vms.items():
            if record is None:
                self._vm_digests.pop(vmid, None)
                whole[vmid] = None
                continue
            digests = {key: hash(json.dumps(value, separators=(",", ":"), sort_keys=True))
                       for key, value in record.items()}
            known = self._vm_digests.get(vmid)
            self._vm_digests[vmid] = digests
            if known is None or known.keys() != digests.keys():
                whole[vmid] = record
                continue
            fields = {key: record[key] for key, digest in digests.items() if known[key] != digest}
            if fields:
                changed[vmid] = fields
        return whole, changed

    def _snapshot(self, model: Any) -> None:
        """Write the whole model as the snapshot and empty the log (lock held)."""
        self._vm_digests = {}                          # the next save of each VM writes it whole
        if hasattr(model, "take_changes"):
            model.take_changes()
            self._header = model.header_json()
        # Compact: indenting it tripled the dump time of a large cluster.
        text = json.dumps(model.to_json(), separators=(",", ":"), sort_keys=True) + "\n"
        stat = atomic_write_text(self.path, text)
        self.bytes_written += len(text)
        self._snapshot_size = len(text)
        log_sig = None
        if self.log_path.exists():
            os.truncate(self.log_path, 0)
            log_sig = _signature(os.stat(self.log_path))
        self._known = (_signature(stat), log_sig)

    def _current(self) -> tuple[Any, Any]:
        # asked before every request: str paths spare os.stat the Path conversion
        return (_stat_signature(self._path_text), _stat_signature(self._log_path_text))

    def changed_on_disk(self) -> bool:
        """True when another process wrote the snapshot or the log since we last read or wrote them."""
        current = self._current()
        if current[0] is None:
            return False
        return current != self._known

    @contextmanager
    def _flock(self, operation: int) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)


def _stat_signature(path: Path | str) -> tuple[int, int, int] | None:
    try:
        return _signature(os.stat(path))
    except FileNotFoundError:
        return None
