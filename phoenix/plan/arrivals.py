"""Each VM's part of the plan computed as its config arrives, while the other configs are still read.

Reading a fleet's configs is mostly waiting for PVE: one thread keeps dozens of requests in flight
(``PVEClient.read_each``) and turns each answer into facts as it comes.  That same thread computes the
VM's part of the plan right then (a few hundred µs), instead of all of them after the last answer; the
requests in flight are served meanwhile.  No second thread: next to the reading one it would only
trade the interpreter lock.

A part needs the VM's facts and its template's (and whether this plan builds that template), so a VM
that arrives before its template waits for it.  Anything not computed here (a VM not read, one whose
template was not read, one whose part raised) is computed by ``build_plan`` in the file's order, from
the same facts: what the plan says, and the order of its problems, do not depend on what arrived when.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from phoenix.plan.build import PlanBuilder, PlanOptions, VMPart

if TYPE_CHECKING:
    from phoenix.desired.spec import DesiredConfig, TemplateSpec, VMSpec
    from phoenix.pve.inventory import Inventory, OnFacts, VMFacts
    from phoenix.state.model import State


class PartsOnArrival:
    """Collects the parts (:class:`VMPart`) for ``build_plan(parts=...)``: :meth:`reading` is ``read_facts``'s
    ``watch``, the callable it returns ``read_inventory``'s ``on_facts``."""

    def __init__(self, state: "State", options: PlanOptions):
        self.state, self.options = state, options
        self.parts: dict[int, VMPart] = {}
        self._reading: set[int] = set()          # the VMIDs whose configs are asked for (and listed)
        self._arrived: dict[int, "VMFacts"] = {}
        self._waiting: dict[int, list["VMSpec"]] = {}      # template vmid -> VMs that arrived before it
        self._creates: dict[int, bool] = {}
        self._vms: dict[int, "VMSpec"] = {}
        self._templates: dict[int, "TemplateSpec"] = {}
        self._cfg: "DesiredConfig | None" = None
        self._builder: PlanBuilder | None = None
        self._given_up = False

    def reading(self, cfg: "DesiredConfig", vmids: Iterable[int]) -> "OnFacts":
        """Start: ``cfg`` is the desired file, ``vmids`` the VMs whose configs are about to be read."""
        self._cfg, self._reading = cfg, set(vmids)
        self._vms = {vm.vmid: vm for vm in cfg.vms if not self.options.targets or vm.vmid in self.options.targets}
        self._templates = {spec.vmid: spec for spec in cfg.templates}
        return self.arrived

    def arrived(self, inventory: "Inventory", facts: "VMFacts") -> None:
        """One VM's facts: its part, and those of the VMs that waited for it as their template.  Never
        raises into the reading: whatever fails here is left to build_plan, which reports it in order."""
        if self._given_up:
            return
        try:
            self._arrive(inventory, facts)
        except Exception:      # noqa: BLE001 - e.g. the features directory unreadable: build_plan says so
            self._given_up = True

    def _arrive(self, inventory: "Inventory", facts: "VMFacts") -> None:
        if self._builder is None:              # the listing (nodes, guests) is complete before any config
            assert self._cfg is not None
            self._builder = PlanBuilder(self._cfg, self.state, inventory, self.options, facts_of=self._arrived.get)
            self._builder.features             # the feature scripts, listed once
            self._reading = {vmid for vmid in self._reading if inventory.guests.get(vmid, ("",))[0] == "qemu"}
        self._arrived[facts.vmid] = facts
        vm = self._vms.get(facts.vmid)
        if vm is not None:
            if self._settled(vm.clone_from_vmid):
                self._compute(vm)
            else:
                self._waiting.setdefault(vm.clone_from_vmid, []).append(vm)
        for waiting in self._waiting.pop(facts.vmid, []):
            self._compute(waiting)

    def _settled(self, vmid: int) -> bool:
        """Its facts are in, or it is not read at all (then it has none, here as after the reading)."""
        return vmid in self._arrived or vmid not in self._reading

    def _compute(self, vm: "VMSpec") -> None:
        assert self._builder is not None
        template = vm.clone_from_vmid
        try:
            if template not in self._creates:
                spec = self._templates.get(template)
                self._creates[template] = spec is not None and self._builder.template_creates(spec)
            self.parts[vm.vmid] = self._builder.vm_part(vm, {template} if self._creates[template] else set())
        except Exception:      # noqa: BLE001 - build_plan computes it again, in the file's order, and reports it
            self.parts.pop(vm.vmid, None)
