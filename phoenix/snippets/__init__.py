"""Delivering a VM's cloud-init documents to its node: ``local``, ``sftp`` or ``iso`` backends.

``make_backend`` picks one from the desired state's ``vm_defaults.snippets_backend``.
"""

from __future__ import annotations


__all__ = ["make_backend"]


def make_backend(kind: str, client, *, sftp_settings=None, storage_roots=None):
    """A snippet backend by name; ``storage_roots`` overrides storage directories (simulator, tests)."""
    if kind == "local":
        from phoenix.snippets.local import LocalSnippets

        return LocalSnippets(client, storage_roots)
    if kind == "sftp":
        from phoenix.snippets.sftp import SftpSnippets, SftpTarget

        target = SftpTarget.from_settings(sftp_settings) if sftp_settings is not None else SftpTarget()
        return SftpSnippets(client, target, storage_roots)
    if kind == "iso":
        from phoenix.snippets.iso import IsoSnippets

        return IsoSnippets(client)
    from phoenix.errors import PhoenixError

    raise PhoenixError(f"vm_defaults.snippets_backend: unknown backend {kind!r} (use local, sftp or iso)")
