"""Keeping the simulated cluster on disk.

The model is one JSON document in the data dir, replaced atomically (temp file, fsync, rename)
so a crash never leaves half a cluster behind.  Several processes may serve the same data dir
one after another (``phoenix sim serve`` restarted, tests opening a second server); each notices
a file written by someone else (inode/mtime/size changed) and reloads before the next request.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_json", "atomic_write_text", "ModelStore", "cluster_class"]

MODEL_FILE = "cluster.json"


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
    """Loads, saves and notices outside changes of the cluster file in one data dir."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / MODEL_FILE
        self._known: tuple[int, int, int] | None = None

    def load_or_create(self, nodes: list[str]) -> Any:
        if self.path.exists():
            return self.load()
        model = cluster_class().create(list(nodes), self.data_dir)
        self.save(model)
        return model

    def load(self) -> Any:
        with open(self.path, encoding="utf-8") as handle:
            stat = os.fstat(handle.fileno())
            data = json.load(handle)
        self._known = _signature(stat)
        return cluster_class().from_json(data, self.data_dir)

    def save(self, model: Any) -> None:
        # Compact: the whole model is written after every mutation, under the model mutex, so
        # indenting it (3x the dump time) slowed every request of a busy simulator.
        text = json.dumps(model.to_json(), separators=(",", ":"), sort_keys=True) + "\n"
        stat = atomic_write_text(self.path, text)
        self._known = _signature(stat)

    def changed_on_disk(self) -> bool:
        """True when another process replaced the file since we last read or wrote it."""
        try:
            current = _signature(os.stat(self.path))
        except FileNotFoundError:
            return False
        return current != self._known
