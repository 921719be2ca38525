"""The chains that remove what phoenix owns: ``phoenix destroy VMID…`` and a resource that left the file.

A VM or template is stopped if running, destroyed, its snippet removed and its state record
forgotten, each step idempotent; one already gone from PVE keeps only the clean-up, so an interrupted
destroy finishes when run again.  Whether phoenix may touch it at all is ``plan.recovery``'s call.
"""

from __future__ import annotations

from typing import Any, Iterable

from phoenix.diff.engine import AttributeChange
from phoenix.plan.model import DELETE, Plan, PlanError, ResourceChange
from phoenix.plan.recovery import destroy_problem
from phoenix.plan.steps import Destroy, Forget, RemoveUserData, Stop
from phoenix.pve.inventory import Inventory, VMFacts
from phoenix.state.model import ResourceState, State


def recorded_view(record: ResourceState) -> dict[str, Any]:
    """What the state says phoenix applied, in the views' vocabulary (fingerprints included)."""
    view = dict(record.attributes)
    if "user_data" in record.fingerprints:
        view["user_data"] = record.fingerprints["user_data"]
    if record.template_vmid is not None:
        view["template"] = record.template_vmid
    return view


def destroy_change(vmid: int, record: ResourceState | None, facts: VMFacts | None) -> ResourceChange | None:
    """The chain that removes one managed VM or template (``facts`` None: already gone from PVE)."""
    kind = getattr(record, "kind", "vm") if record is not None else ("template" if facts and facts.template else "vm")
    name = (facts.name if facts else None) or getattr(record, "name", "") or str(vmid)
    node = facts.node if facts else getattr(record, "node", "")
    gone = recorded_view(record) if record is not None else {"name": name}
    if facts is not None and "power" in gone:
        gone["power"] = "running" if facts.status == "running" else "stopped"
    rc = ResourceChange(address=f"{kind}.{vmid}", vmid=vmid, kind=kind, name=name, node=node, action=DELETE,
                        changes=[AttributeChange(k, v, None) for k, v in gone.items()])
    if facts is not None:
        rc.digest = facts.config.get("digest")
        if facts.status == "running":
            rc.steps.append(Stop())
        rc.steps.append(Destroy())
    else:
        rc.notes.append("already destroyed; its state record and snippet are cleaned up")
    if kind == "vm":
        rc.steps.append(RemoveUserData())
    rc.steps.append(Forget())
    return rc


def build_destroy_plan(vmids: Iterable[int], state: State, inventory: Inventory, force: bool = False) -> Plan:
    """``phoenix destroy VMID...``: refuses VMs phoenix does not own unless ``force``; a VM already
    gone is "already destroyed" (so an interrupted destroy finishes when run again)."""
    records = {int(k): v for k, v in (getattr(state, "resources", {}) or {}).items()}
    plan = Plan(state_lineage=getattr(state, "lineage", ""), state_serial=getattr(state, "serial", 0),
                operation="destroy")
    problems = []
    for vmid in vmids:
        record, facts = records.get(vmid), inventory.vms.get(vmid)
        if record is None and facts is None:
            plan.warnings.append(f"VM {vmid} is already destroyed; nothing to do")
            continue
        if record is None and not force:
            problems.append(f"VM {vmid} is not managed by phoenix; use --force to destroy it anyway")
            continue
        problem = destroy_problem(vmid, facts, getattr(state, "lineage", ""), force)
        if problem:
            problems.append(f"{problem}; --force destroys it anyway")
            continue
        rc = destroy_change(vmid, record, facts)
        if rc:
            plan.resource_changes.append(rc)
    if problems:
        raise PlanError("; ".join(problems))
    plan.resource_changes.sort(key=lambda rc: (rc.kind == "template", rc.vmid))
    return plan
