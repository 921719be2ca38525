"""``local`` backend: phoenix runs on the PVE node and writes into the storage's directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from phoenix.snippets.base import AllowedContent, StorageRoots, check_name, snippets_directory, volid_for

__all__ = ["LocalSnippets"]


class LocalSnippets:
    """Write snippet files into ``<storage path>/snippets`` on this machine (temp file + rename)."""

    def __init__(self, client, storage_roots: StorageRoots = None):
        self.client = client
        self.allowed = AllowedContent(client)
        self.storage_roots = storage_roots

    def _dir(self, node: str, storage: str) -> Path:
        self.allowed.require(node, storage, "snippets")
        return Path(snippets_directory(self.client, node, storage, self.storage_roots))

    def put(self, node: str, storage: str, name: str, content: bytes) -> str:
        directory = self._dir(node, storage)
        directory.mkdir(parents=True, exist_ok=True)
        _remove_temp_files(directory, name)
        fd, tmp = tempfile.mkstemp(prefix=f".{check_name(name)}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)          # user-data may carry a password hash
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return volid_for(storage, name)

    def remove(self, node: str, storage: str, name: str) -> None:
        directory = Path(snippets_directory(self.client, node, storage, self.storage_roots))
        (directory / check_name(name)).unlink(missing_ok=True)
        _remove_temp_files(directory, name)

    def exists(self, node: str, storage: str, name: str) -> bool:
        return (Path(snippets_directory(self.client, node, storage, self.storage_roots)) / check_name(name)).is_file()

    def read(self, node: str, storage: str, name: str) -> bytes | None:
        path = Path(snippets_directory(self.client, node, storage, self.storage_roots)) / check_name(name)
        return path.read_bytes() if path.is_file() else None


def _remove_temp_files(directory: Path, name: str) -> None:
    """Temp files of ``name`` that an interrupted write left (``.<name>.<random>``): only phoenix writes
    them, one writer per VM's snippet at a time (the state lock), so any found now is a leftover."""
    for leftover in directory.glob(f".{check_name(name)}.*"):
        leftover.unlink(missing_ok=True)
