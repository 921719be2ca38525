"""``phoenix import VMID``: adopt an existing VM into the state without changing its settings; the next
plan shows how it differs from the file.

Adoption writes this state's ownership marker into the VM's description (the only change), so from
then on phoenix may change or delete it; a VM another phoenix state owns is refused."""

from __future__ import annotations

from typing import Literal

from phoenix.commands.context import Context, read_facts
from phoenix.diff.views import actual_view
from phoenix.errors import PhoenixError
from phoenix.pve.ownership import not_owned_message, ownership, with_marker
from phoenix.state.model import ResourceState
from phoenix.text import markup_safe


def import_command(ctx: Context, vmid: int) -> int:
    store = ctx.store()
    with store.lock("import"):
        state = store.read()
        with ctx.environment.connect() as conn:
            facts = read_facts(ctx, conn, state, extra_vmids=[vmid])
            vm_facts = facts.inventory.vms.get(vmid)
            if vm_facts is None:
                raise PhoenixError(f"VM {vmid} does not exist in the cluster")
            owned = ownership(vm_facts.config, state.lineage, vmid)
            if owned.ours and state.get(vmid) is not None:
                raise PhoenixError(f"VM {vmid} is already managed by phoenix")
            if owned.verdict == "other":
                raise PhoenixError(not_owned_message(vmid, vm_facts.name, vm_facts.node, owned)
                                   + "; phoenix import does not take a VM from another state")
            if vm_facts.lock:
                raise PhoenixError(f"VM {vmid} is locked ({vm_facts.lock}); import it once its task has finished")
            if state.serial == 0:
                store.write(state)           # the marker names this state's lineage: keep it on disk first
            if not owned.ours:
                conn.client.put(f"/nodes/{vm_facts.node}/qemu/{vmid}/config",
                                description=with_marker(vm_facts.config.get("description"), state.lineage, vmid))
        kind: Literal["template", "vm"] = "template" if vm_facts.template else "vm"
        declared = facts.cfg.vm(vmid)
        template_vmid = declared.clone_from_vmid if declared else None
        attributes = actual_view(vm_facts.config, vm_facts.status) if kind == "vm" else {"name": vm_facts.name}
        state.put(ResourceState(kind=kind, vmid=vmid, name=vm_facts.name or str(vmid), node=vm_facts.node,
                                template_vmid=template_vmid, attributes=attributes))
        store.write(state)
    ctx.out.print(f"Imported {kind} {vmid} ({markup_safe(vm_facts.name)}) on node {markup_safe(vm_facts.node)}. "
                  f"Run 'phoenix plan' to see how it differs from the file.")
    return 0
