"""Delivering each VM's cloud-init documents through the configured snippet backend.

``local``/``sftp`` put the user-data snippet that ``cicustom`` points at; ``iso`` builds a NoCloud
seed ISO and attaches it in place of PVE's cloud-init drive.  When the environment says the node's
storage directories are on this host (a simulator's), the ``local`` backend writes there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phoenix.plan.documents import VMDocuments, snippets_backend
from phoenix.snippets import make_backend
from phoenix.snippets.base import StorageRoots, cidata_iso_name, user_snippet_name

if TYPE_CHECKING:
    from phoenix.apply.steps import ChainContext
    from phoenix.desired.spec import DesiredConfig, VMSpec
    from phoenix.pve.client import PVEClient


class SnippetDelivery:
    """The configured backend for this run; ``storage_roots`` points the ``local`` backend at a
    simulator's storage directories (see ``phoenix.commands.environment.Connection``)."""

    def __init__(self, cfg: "DesiredConfig", client: "PVEClient", storage_roots: StorageRoots = None):
        self.kind = snippets_backend(cfg)
        self.storage = cfg.defaults.snippets_storage
        self.backend = make_backend(self.kind, client, sftp_settings=getattr(cfg.defaults, "sftp", None),
                                    storage_roots=storage_roots)

    def deliver(self, ctx: "ChainContext", vm: "VMSpec", docs: VMDocuments) -> None:
        if self.kind == "iso":
            from phoenix.snippets.iso import attach_cidata

            volid = self.backend.deliver(ctx.node, vm.snippets_storage, vm.vmid, docs.user_data, docs.meta_data,
                                         docs.network_config)
            attach_cidata(ctx.client, ctx.node, vm.vmid, volid)
        else:
            self.backend.put(ctx.node, vm.snippets_storage, user_snippet_name(vm.vmid), docs.user_data.encode())

    def remove(self, ctx: "ChainContext", vmid: int) -> None:
        vm = ctx.runtime.cfg.vm(vmid)
        storage = vm.snippets_storage if vm else self.storage
        name = cidata_iso_name(vmid) if self.kind == "iso" else user_snippet_name(vmid)
        self.backend.remove(ctx.node, storage, name)
