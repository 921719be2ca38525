"""``sftp`` backend: write snippets into the node's storage directory over SSH (paramiko).

The node's host key must already be in known_hosts: an unknown host is an error that says how to
add the key after checking it, never a silent accept (that would hand user-data with password
hashes to whoever answers on the address).  Authentication uses ssh-agent or a key file.
"""

from __future__ import annotations

import posixpath
import socket
import uuid
from pathlib import Path

import paramiko
from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_EXCL, SFTP_FLAG_WRITE

from phoenix.errors import PhoenixError
from phoenix.snippets.base import AllowedContent, StorageRoots, check_name, snippets_directory, volid_for

__all__ = ["SftpSnippets", "SftpTarget"]


class SftpTarget:
    """Where and how to log in: ``host`` None means the node's own name."""

    def __init__(self, host: str | None = None, port: int = 22, username: str = "root",
                 key_file: str | Path | None = None, known_hosts: str | Path | None = None, timeout: float = 15.0):
        self.host = host
        self.port = port
        self.username = username
        self.key_file = str(Path(key_file).expanduser()) if key_file else None
        self.known_hosts = Path(known_hosts or "~/.ssh/known_hosts").expanduser()
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings) -> "SftpTarget":
        """From the desired state's ``vm_defaults.sftp`` (host, port, username, key_file, known_hosts)."""
        return cls(settings.host, settings.port, settings.username, settings.key_file, settings.known_hosts)


class SftpSnippets:
    """One SSH connection per node, opened on first use; close with :meth:`close`."""

    def __init__(self, client, target: SftpTarget, storage_roots: StorageRoots = None):
        self.client = client
        self.allowed = AllowedContent(client)
        self.target = target
        self.storage_roots = storage_roots
        self._ssh: dict[str, paramiko.SSHClient] = {}

    # --- connection ---------------------------------------------------------------------------

    def _sftp(self, node: str) -> paramiko.SFTPClient:
        if node not in self._ssh:
            self._ssh[node] = self._connect(self.target.host or node)
        return self._ssh[node].open_sftp()

    def _connect(self, host: str) -> paramiko.SSHClient:
        target = self.target
        shown = host if target.port == 22 else f"[{host}]:{target.port}"
        ssh = paramiko.SSHClient()
        if target.known_hosts.exists():
            ssh.load_host_keys(str(target.known_hosts))
        ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        keyscan = f"ssh-keyscan -p {target.port} {host}" if target.port != 22 else f"ssh-keyscan {host}"
        try:
            ssh.connect(host, port=target.port, username=target.username, key_filename=target.key_file,
                        allow_agent=True, look_for_keys=target.key_file is None, timeout=target.timeout,
                        banner_timeout=target.timeout, auth_timeout=target.timeout)
        except paramiko.BadHostKeyException:
            ssh.close()
            raise PhoenixError(f"sftp: the host key of {shown} does not match the one in {target.known_hosts}; "
                               "if the node was reinstalled, remove the old entry (ssh-keygen -R) and add the new "
                               "one after verifying it") from None
        except paramiko.SSHException as exc:
            ssh.close()
            if "not found in known_hosts" in str(exc):
                raise PhoenixError(f"sftp: host {shown} is not in {target.known_hosts}; verify its key and add it "
                                   f"with: {keyscan} >> {target.known_hosts}") from None
            if isinstance(exc, paramiko.AuthenticationException):
                raise PhoenixError(f"sftp: authentication as {target.username}@{shown} failed (key file: "
                                   f"{target.key_file or 'ssh-agent / ~/.ssh keys'})") from None
            raise PhoenixError(f"sftp: cannot connect to {shown}: {exc}") from None
        except (OSError, socket.timeout) as exc:
            ssh.close()
            raise PhoenixError(f"sftp: cannot connect to {shown}: {exc.strerror or type(exc).__name__}") from None
        return ssh

    def close(self) -> None:
        for ssh in self._ssh.values():
            ssh.close()
        self._ssh.clear()

    def __enter__(self) -> "SftpSnippets":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- backend interface ------------------------------------------------------------------------

    def _remote_path(self, node: str, storage: str, name: str) -> str:
        return posixpath.join(snippets_directory(self.client, node, storage, self.storage_roots), check_name(name))

    def put(self, node: str, storage: str, name: str, content: bytes) -> str:
        self.allowed.require(node, storage, "snippets")
        path = self._remote_path(node, storage, name)
        directory = posixpath.dirname(path)
        tmp = posixpath.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        with self._sftp(node) as sftp:
            _mkdirs(sftp, directory)
            _remove_temp_files(sftp, directory, name)
            try:
                with _create_private(sftp, tmp) as handle:
                    handle.write(content)
                    handle.flush()
                sftp.posix_rename(tmp, path)
            except BaseException:
                try:
                    sftp.remove(tmp)
                except OSError:
                    pass
                raise
        return volid_for(storage, name)

    def remove(self, node: str, storage: str, name: str) -> None:
        path = self._remote_path(node, storage, name)
        with self._sftp(node) as sftp:
            try:
                sftp.remove(path)
            except FileNotFoundError:
                pass
            _remove_temp_files(sftp, posixpath.dirname(path), name)

    def exists(self, node: str, storage: str, name: str) -> bool:
        with self._sftp(node) as sftp:
            try:
                sftp.stat(self._remote_path(node, storage, name))
                return True
            except FileNotFoundError:
                return False

    def read(self, node: str, storage: str, name: str) -> bytes | None:
        with self._sftp(node) as sftp:
            try:
                with sftp.open(self._remote_path(node, storage, name), "rb") as handle:
                    return handle.read()
            except FileNotFoundError:
                return None


def _create_private(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPFile:
    """Create ``path`` new (never an existing file or link) with mode 0600 from the start.

    ``SFTPClient.open`` sends no permissions, so the file would exist with the server's default
    (often 0644) until a later chmod — and a reader who opened it in between keeps reading what
    is written after, password hash included.  This is ``open`` with the permissions attribute
    set; the handle is chmod'ed as well, for servers that ignore the attribute, before any byte.
    """
    attributes = paramiko.SFTPAttributes()
    attributes.st_mode = 0o600
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
    kind, message = sftp._request(CMD_OPEN, path, flags, attributes)  # type: ignore[attr-defined]  # paramiko: no public call sends attrs
    if kind != CMD_HANDLE:
        raise PhoenixError(f"sftp: the server did not open {path}")
    handle = paramiko.SFTPFile(sftp, message.get_binary(), "wb", -1)
    try:
        handle.chmod(0o600)
    except BaseException:
        handle.close()
        raise
    return handle


def _mkdirs(sftp: paramiko.SFTPClient, directory: str) -> None:
    """``mkdir -p`` over SFTP (the snippets directory may not exist on a fresh storage)."""
    parts: list[str] = []
    current = directory
    while current not in ("", "/"):
        try:
            sftp.stat(current)
            break
        except FileNotFoundError:
            parts.append(current)
            current = posixpath.dirname(current)
    for path in reversed(parts):
        sftp.mkdir(path)


def _remove_temp_files(sftp: paramiko.SFTPClient, directory: str, name: str) -> None:
    """``.<name>.<hex>.tmp`` files an interrupted put left (see :meth:`SftpSnippets.put`)."""
    prefix = f".{check_name(name)}."
    try:
        entries = sftp.listdir(directory)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            try:
                sftp.remove(posixpath.join(directory, entry))
            except FileNotFoundError:
                pass
