"""What every snippet backend shares: the interface, file names, and the storage checks.

``cicustom`` can only point at a file on a storage with ``snippets`` content, and PVE's API has
no way to upload one, so each backend reaches the node's storage directory its own way
(``local``: phoenix runs on the node; ``sftp``: over SSH; ``iso``: no snippet at all, a NoCloud
ISO uploaded as ``iso`` content instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Protocol, Union

from phoenix.errors import PhoenixError

# A storage's root directory on the node, when GET /storage's ``path`` is not where it is reachable
# (the simulator keeps its storages under its data dir): a {storage: root} map or fn(node, storage).
StorageRoots = Union[Mapping[str, Union[Path, str]], Callable[[str, str], Union[Path, str]], None]

__all__ = ["StorageRoots", "SnippetBackend", "user_snippet_name", "cidata_iso_name", "volid_for", "storage_entry",
           "require_content", "AllowedContent", "snippets_directory", "check_name"]


class SnippetBackend(Protocol):
    """``put`` writes atomically and returns the volid; ``remove`` is a no-op for a missing file."""

    def put(self, node: str, storage: str, name: str, content: bytes) -> str: ...

    def remove(self, node: str, storage: str, name: str) -> None: ...

    def exists(self, node: str, storage: str, name: str) -> bool: ...

    def read(self, node: str, storage: str, name: str) -> bytes | None: ...


def user_snippet_name(vmid: int) -> str:
    """One user-data snippet per VM (the name plan, apply and destroy agree on)."""
    return f"phoenix-{vmid}-user.yaml"


def cidata_iso_name(vmid: int) -> str:
    return f"phoenix-{vmid}-cidata.iso"


def volid_for(storage: str, name: str, content: str = "snippets") -> str:
    return f"{storage}:{content}/{name}"


def check_name(name: str) -> str:
    """Snippet names are plain file names: no directories, nothing hidden."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or name in ("..",):
        raise PhoenixError(f"snippet name {name!r} must be a plain file name")
    return name


def storage_entry(client, node: str, storage: str) -> dict:
    """The storage as the node sees it (``GET /nodes/{node}/storage``), or a clear error."""
    for entry in client.get_list(f"/nodes/{node}/storage"):
        if entry.get("storage") == storage:
            return entry
    raise PhoenixError(f"storage '{storage}' does not exist on node '{node}'")


def require_content(client, node: str, storage: str, content: str) -> dict:
    """Fail with the exact ``pvesm set`` command when ``storage`` lacks ``content``."""
    entry = storage_entry(client, node, storage)
    current = [c for c in str(entry.get("content", "")).split(",") if c]
    if content not in current:
        wanted = ",".join(sorted([*current, content]))
        raise PhoenixError(f"storage '{storage}' on node '{node}' does not allow '{content}' content "
                           f"(it has: {','.join(current) or 'none'}); enable it with: "
                           f"pvesm set {storage} --content {wanted}")
    return entry


class AllowedContent:
    """:func:`require_content`, asked once per node, storage and content type in a run: a storage's
    content types do not change under an apply, and asking for each VM cost a request per VM."""

    def __init__(self, client) -> None:
        self.client = client
        self._allowed: set[tuple[str, str, str]] = set()

    def require(self, node: str, storage: str, content: str) -> None:
        key = (node, storage, content)
        if key not in self._allowed:
            require_content(self.client, node, storage, content)
            self._allowed.add(key)


def snippets_directory(client, node: str, storage: str, overrides: StorageRoots = None) -> str:
    """``<storage path>/snippets`` from ``GET /storage``, unless ``overrides`` knows the root."""
    if callable(overrides):
        return str(Path(overrides(node, storage)) / "snippets")
    if overrides and storage in overrides:
        return str(Path(overrides[storage]) / "snippets")
    for entry in client.get_list("/storage"):
        if entry.get("storage") == storage:
            if not entry.get("path"):
                raise PhoenixError(f"storage '{storage}' has no directory (type {entry.get('type', '?')}); "
                                   "snippets need a file-based storage such as 'local'")
            return str(entry["path"]).rstrip("/") + "/snippets"
    raise PhoenixError(f"storage '{storage}' does not exist")
