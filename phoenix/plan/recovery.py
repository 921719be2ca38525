"""Ownership and interruptions, as the plan sees them (pure: facts already read, no API calls).

For each VMID the desired file or the state names, PVE's config says whose it is
(:mod:`phoenix.pve.ownership`).  The plan touches only VMs carrying this state's marker; a
create/clone placeholder (no marker possible yet) counts as ours only when this state recorded
starting it.  Anything else stops the plan with an error naming the VM and ``phoenix import``.
"""

from __future__ import annotations

from typing import Any, Literal

from phoenix.pve.ownership import not_owned_message, ownership

__all__ = ["template_verdict", "vm_verdict", "destroy_problem", "missing_vm_note", "FINISH_NOTE", "IN_PROGRESS_NOTE"]

FINISH_NOTE = ("a previous provisioning did not finish; phoenix finishes it (or rebuilds it) before the VMs that "
               "clone it")
IN_PROGRESS_NOTE = ("a create or clone of this VM did not finish; phoenix waits for its task (or names it if it "
                    "died), then completes the VM")


def template_verdict(spec: Any, facts: Any, record: Any, lineage: str) -> tuple[Literal["ok", "finish", "problem"], str]:
    """A declared template whose VMID exists: use it, finish it, or stop (with the message)."""
    owned = ownership(facts.config, lineage, facts.vmid)
    if facts.template:
        if owned.verdict == "other":
            return "problem", not_owned_message(spec.vmid, facts.name, facts.node, owned)
        return "ok", ""                    # ours, or a template made by hand that phoenix only clones from
    if owned.ours or (owned.verdict == "stub" and record is not None):
        return "finish", FINISH_NOTE
    return "problem", not_owned_message(spec.vmid, facts.name, facts.node, owned)


def vm_verdict(vm: Any, facts: Any, record: Any, lineage: str) -> tuple[Literal["managed", "in_progress", "problem"], str]:
    """A declared VM whose VMID exists: manage it, wait for its unfinished create, or stop."""
    owned = ownership(facts.config, lineage, facts.vmid)
    if owned.ours:
        return "managed", ""
    if owned.verdict == "stub" and record is not None:
        return "in_progress", IN_PROGRESS_NOTE
    return "problem", not_owned_message(vm.vmid, facts.name or vm.name, facts.node, owned)


def destroy_problem(vmid: int, facts: Any, lineage: str, force: bool) -> str | None:
    """Deleting ``vmid``: only ours, unless ``--force`` (the explicit way to remove a foreign VM)."""
    if facts is None or force:
        return None
    owned = ownership(facts.config, lineage, facts.vmid)
    if owned.ours or owned.verdict == "stub":
        return None
    return not_owned_message(vmid, facts.name, facts.node, owned)


def missing_vm_note(record: Any) -> tuple[str, bool]:
    """A declared VM PVE does not have, with a state record: (note, is_drift).

    Only a VM that was made (its record holds applied attributes) can have been deleted outside
    phoenix; a record with none is a create that never finished (failed clone, killed run)."""
    if record is not None and getattr(record, "attributes", None):
        return "deleted outside phoenix; it is created again", True
    return "its creation did not finish last time; it is created now", False
