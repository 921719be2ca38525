"""Compute the plan: desired (file) × recorded (state) × actual (inventory) → ordered resource changes.

Pure computation over facts already read: no API calls happen here, so a plan costs exactly what
the inventory cost.  Each resource gets an ordered chain of idempotent steps; chains of VMs
depend on their template's chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import AbstractSet, Any, Callable, Mapping

from phoenix.desired.features import available_features
from phoenix.desired.spec import DesiredConfig, TemplateSpec, VMSpec
from phoenix.pve.inventory import Inventory, VMFacts
from phoenix.state.model import ResourceState, State

from phoenix.diff.attributes import (BY_NAME, CLOUDINIT, CONFIGURED, REMOVABLE, RESIZABLE, disk_change_problem,
                                     disk_only_grew)
from phoenix.diff.codecs import GIB, disk_size_bytes
from phoenix.diff.engine import AttributeChange, diff_resource
from phoenix.diff.views import actual_view, desired_view, narrowed
from phoenix.plan.documents import KNOWN_AFTER_APPLY, render_documents
from phoenix.plan.destroy import destroy_change, recorded_view
from phoenix.plan.model import CREATE, NOOP, REPLACE, UPDATE, Drift, Plan, PlanError, ResourceChange
from phoenix.diff.guest import guest_drift
from phoenix.plan import guest_rules
from phoenix.plan.steps import (Clone, Configure, DeliverUserData, Destroy, ProvisionTemplate, Reboot,
                                RegenerateCloudinit, Resize, RevertPending, Start, Step, Stop, WaitGuest)
from phoenix.plan.recovery import destroy_problem, missing_vm_note, template_verdict, vm_verdict
from phoenix.template.status import agent_baked



@dataclass
class PlanOptions:
    targets: set[int] = field(default_factory=set)
    allow_reboot: bool = False
    replace: set[int] = field(default_factory=set)
    guest_timeout: int | None = None          # --guest-timeout; else the VM's guest_timeout_s, else 900 s


def build_plan(cfg: DesiredConfig, state: State, inventory: Inventory, options: PlanOptions | None = None,
               desired_fingerprint: str = "", outdated_templates: dict[int, str] | None = None,
               parts: Mapping[int, "VMPart"] | None = None) -> Plan:
    """``outdated_templates`` (vmid → reason) become warnings: phoenix never rebuilds a template silently.

    ``parts``: VMs' parts already computed from these same facts while they were read
    (``phoenix.plan.arrivals``); the others are computed here."""
    options = options or PlanOptions()
    builder = PlanBuilder(cfg, state, inventory, options, parts=parts)
    plan = Plan(state_lineage=getattr(state, "lineage", ""), state_serial=getattr(state, "serial", 0),
                desired_fingerprint=desired_fingerprint,
                options={"targets": sorted(options.targets), "allow_reboot": options.allow_reboot,
                         "replace": sorted(options.replace)})
    builder.run(plan)
    plan.guest_drift = builder.guest_drift
    for vmid, reason in sorted((outdated_templates or {}).items()):
        plan.warnings.append(f"template.{vmid} is outdated: {reason}. phoenix does not rebuild it; to rebuild, "
                             f"destroy it (after its clones) and apply, or declare a new template vmid")
    return plan


@dataclass
class VMPart:
    """One declared VM's share of the plan, with the problems it found (reported in the file's order)."""

    change: ResourceChange
    drift: Drift | None
    problems: list[str]
    guest_drift: list[dict[str, Any]]


class PlanBuilder:
    """The plan of one desired file over one set of facts (``build_plan``; ``phoenix.plan.arrivals`` uses it
    VM by VM while the facts arrive)."""

    def __init__(self, cfg: DesiredConfig, state: State, inventory: Inventory, options: PlanOptions,
                 facts_of: Callable[[int], VMFacts | None] | None = None, parts: Mapping[int, VMPart] | None = None):
        self.cfg, self.state, self.inv, self.options = cfg, state, inventory, options
        self.facts_of = facts_of or inventory.vms.get
        self.parts = parts or {}
        self.records: dict[int, ResourceState] = {int(k): v for k, v in (getattr(state, "resources", {}) or {}).items()}
        self.nodes = sorted(getattr(inventory, "nodes", []) or [])
        self.lineage = getattr(state, "lineage", "")
        self.problems: list[str] = []
        self.guest_drift: list[dict[str, Any]] = []
        self.guest_facts: dict[int, Any] = getattr(inventory, "guest_facts", {}) or {}

    @cached_property
    def features(self) -> dict[str, Path]:
        """The feature scripts, listed once per plan (not twice per VM: a directory stat each)."""
        return available_features(self.cfg.base_dir)

    def guest_timeout(self, vm: Any) -> int:
        return int(self.options.guest_timeout or getattr(vm, "guest_timeout_s", None)
                   or guest_rules.DEFAULT_GUEST_TIMEOUT_S)

    def fingerprint(self, text: str) -> str:
        return text if text == KNOWN_AFTER_APPLY else self.state.fingerprint(text)

    def wanted(self, vmid: int) -> bool:
        return not self.options.targets or vmid in self.options.targets

    # --- top level ---------------------------------------------------------------------------
    def run(self, plan: Plan) -> None:
        declared_templates = {t.vmid: t for t in self.cfg.templates}
        declared_vms = {v.vmid: v for v in self.cfg.vms}
        creating_templates: set[int] = set()
        for spec in self.cfg.templates:
            rc = self.template_change(spec)
            if rc and self.wanted(spec.vmid):
                if rc.action == CREATE:
                    creating_templates.add(spec.vmid)
                plan.resource_changes.append(rc)
        for vm in self.cfg.vms:
            if not self.wanted(vm.vmid):
                continue
            part = self.parts.get(vm.vmid) or self.vm_part(vm, creating_templates)
            plan.resource_changes.append(part.change)
            if part.drift:
                plan.resource_drift.append(part.drift)
            self.problems.extend(part.problems)
            self.guest_drift.extend(part.guest_drift)
        # Resources phoenix manages that left the file: destroy (VMs before templates).
        orphans = [vmid for vmid in self.records if vmid not in declared_vms and vmid not in declared_templates]
        orphans.sort(key=lambda v: (self.records[v].kind == "template", v))
        for vmid in orphans:
            if self.wanted(vmid):
                problem = destroy_problem(vmid, self.facts_of(vmid), self.lineage, force=False)
                if problem:
                    self.problems.append(problem)
                    continue
                rc = destroy_change(vmid, self.records[vmid], self.facts_of(vmid))
                if rc:
                    plan.resource_changes.append(rc)
        if self.problems:
            raise PlanError("; ".join(self.problems))

    # --- templates ---------------------------------------------------------------------------
    def template_node(self, spec: TemplateSpec | None) -> str:
        """Where a template is (to be) built: its declared node, else the cluster's first node."""
        return (spec.node if spec is not None else None) or (self.nodes[0] if self.nodes else "pve")

    def template_change(self, spec: TemplateSpec) -> ResourceChange | None:
        facts = self.facts_of(spec.vmid)
        node = facts.node if facts else self.template_node(spec)
        rc = ResourceChange(address=f"template.{spec.vmid}", vmid=spec.vmid, kind="template", name=spec.name,
                            node=node, action=NOOP)
        if facts is None:
            rc.action = CREATE
            rc.changes = [AttributeChange("name", None, spec.name), AttributeChange("node", None, node),
                          AttributeChange("image", None, spec.image.url)]
            rc.steps = [ProvisionTemplate(vmid=spec.vmid)]
        else:
            verdict, note = template_verdict(spec, facts, self.records.get(spec.vmid), self.lineage)
            if verdict == "problem":
                self.problems.append(f"templates: {note}")
            elif verdict == "finish":
                rc.action = CREATE
                rc.notes.append(note)
                rc.changes = [AttributeChange("image", None, spec.image.url)]
                rc.steps = [ProvisionTemplate(vmid=spec.vmid)]
        return rc

    # --- VMs ---------------------------------------------------------------------------------
    def vm_part(self, vm: VMSpec, creating_templates: set[int]) -> VMPart:
        """:meth:`vm_change` with problems and guest drift of its own (parts may be computed out of order)."""
        own = self._own()
        change, drift = own.vm_change(vm, creating_templates)
        return VMPart(change, drift, own.problems, own.guest_drift)

    def template_creates(self, spec: TemplateSpec) -> bool:
        """Whether this plan builds (or finishes) the declared template ``spec``: its VMs then wait for it."""
        change = self._own().template_change(spec)
        return change is not None and self.wanted(spec.vmid) and change.action == CREATE

    def _own(self) -> "PlanBuilder":
        """This builder with problems and guest drift of its own, the rest shared (read only)."""
        own = object.__new__(PlanBuilder)
        own.__dict__.update(self.__dict__)
        own.problems, own.guest_drift = [], []
        return own

    def vm_change(self, vm: VMSpec, creating_templates: set[int]) -> tuple[ResourceChange, Drift | None]:
        facts = self.facts_of(vm.vmid)
        record = self.records.get(vm.vmid)
        template_facts = self.facts_of(vm.clone_from_vmid)
        template_pending = vm.clone_from_vmid in creating_templates
        if template_facts is None and not template_pending:
            self.problems.append(f"VM {vm.vmid} ({vm.name}): template {vm.clone_from_vmid} does not exist "
                                 f"and is not declared in 'templates'")
        elif template_facts is not None and not template_facts.template and not template_pending:
            self.problems.append(f"VM {vm.vmid} ({vm.name}): clone_from_vmid {vm.clone_from_vmid} is a VM, "
                                 f"not a template")
        template_node = template_facts.node if template_facts else self.template_node(self.cfg.template_for(vm))
        node = facts.node if facts else (vm.node or template_node)
        if self.nodes and node not in self.nodes:
            self.problems.append(f"VM {vm.vmid} ({vm.name}): node '{node}' is not in the cluster "
                                 f"(nodes: {', '.join(self.nodes)})")
        # The template's agent fact: read from PVE now, or the output of its chain (None) when it is to be built.
        baked = None if template_pending else agent_baked(template_facts.config if template_facts else {})
        docs = render_documents(self.cfg, vm, baked, self.features)
        desired = desired_view(vm, docs.cicustom, self.fingerprint(docs.fingerprint_source))
        rc = ResourceChange(address=f"vm.{vm.vmid}", vmid=vm.vmid, kind="vm", name=vm.name, node=node,
                            action=NOOP, depends_on=[vm.clone_from_vmid] if template_pending else [])
        if template_pending:
            template_facts = None        # a half-made template's disk says nothing about the finished one
        if facts is None:
            rc.action = CREATE
            rc.changes = [AttributeChange(k, None, v) for k, v in desired.items()]
            rc.steps = self.create_steps(vm, node, template_node, template_facts, desired, baked)
            drift = None
            if record is not None:
                note, is_drift = missing_vm_note(record)
                rc.notes.append(note)
                if is_drift:
                    drift = Drift(rc.address, vm.vmid, [AttributeChange("exists", True, False)])
            return rc, drift
        verdict, note = vm_verdict(vm, facts, record, self.lineage)
        if verdict == "problem":
            self.problems.append(note)
            return rc, None
        if record is None:                 # ours by its marker, the record lost (e.g. a restored state)
            record = ResourceState(kind="vm", vmid=vm.vmid, name=vm.name, node=facts.node)
        if facts.template:
            self.problems.append(f"VM {vm.vmid} ({vm.name}) is a template in PVE; it cannot be managed as a VM")
            return rc, None
        if verdict == "in_progress" or facts.lock in ("clone", "create"):
            # A clone phoenix started is still running (or was cut off): its config is a stub until the
            # lock clears. The clone step waits for it; the rest of the chain then completes the VM.
            rc.action = CREATE
            rc.changes = [AttributeChange(k, None, v) for k, v in desired.items()]
            rc.steps = self.create_steps(vm, node, template_node, template_facts, desired, baked, resume=True)
            rc.notes.append(note or "a clone of this VM is still in progress; phoenix waits for it, then completes the VM")
            return rc, None
        rc.digest = facts.config.get("digest")
        recorded = recorded_view(record)
        for key in [k for k in recorded if k in REMOVABLE and k not in desired]:
            if recorded[key] not in (None, [], ""):
                desired[key] = None          # phoenix set it before and the file dropped it: remove it
        actual = narrowed(actual_view(facts.config, facts.status), desired)
        recorded = narrowed(recorded, desired)
        diff = diff_resource(desired, actual, recorded)
        drift = Drift(rc.address, vm.vmid, diff.drift) if diff.drift else None
        pending = facts.pending
        pending_actual = (narrowed(actual_view(pending.merged(), facts.status), desired)
                          if pending and pending.has_pending else actual)
        waiting, reverts = guest_rules.pending_cases(desired, actual, pending_actual, diff.changed_attributes)
        guest = self.guest_problems(vm, facts, diff.changed_attributes)
        # A VM declared stopped has no guest to check: its taint needs no action of its own.
        tainted = getattr(record, "tainted", None) if vm.start else None
        rc.changes = diff.changes + guest_rules.revert_changes(reverts)
        if reverts:     # a pending value someone else set is a change outside phoenix, too
            outside = [AttributeChange(c.attribute, c.after, c.before) for c in guest_rules.revert_changes(reverts)]
            drift = Drift(rc.address, vm.vmid, (drift.changes if drift else []) + outside)
        if not rc.changes and not guest and not tainted:
            return rc, drift
        if not diff.changes:
            rc.action = UPDATE
            notes: list[str] = []
            rc.steps, rc.blocked = [], ""
            self.finish(vm, rc, facts, actual, desired, notes, reverts, guest, tainted)
            return rc, drift
        if "template" in diff.changed_attributes:
            rc.action = REPLACE
            if vm.vmid not in self.options.replace:
                rc.blocked = f"clone_from_vmid changed: replacing destroys the VM; run with --replace {vm.vmid}"
            rc.steps = ([Stop(), Destroy()]
                        + self.create_steps(vm, vm.node or template_node, template_node, template_facts, desired, baked))
            return rc, drift
        if "disk_size_gb" in diff.changed_attributes and actual.get("disk_size_gb", 0) > vm.disk_size_gb:
            self.problems.append(f"VM {vm.vmid} ({vm.name}): disk_size_gb {vm.disk_size_gb} is smaller than the "
                                 f"current disk ({actual['disk_size_gb']} GiB); PVE cannot shrink disks")
            return rc, drift
        disk_problems = [p for k in sorted(diff.changed_attributes & RESIZABLE)
                         if (p := disk_change_problem(k, actual.get(k), desired.get(k)))]
        if disk_problems:
            self.problems.extend(f"VM {vm.vmid} ({vm.name}): {p}" for p in disk_problems)
            return rc, drift
        rc.action = UPDATE
        rc.steps, rc.blocked, notes = self.update_steps(vm, diff.changed_attributes, actual, desired, baked, waiting)
        self.finish(vm, rc, facts, actual, desired, notes, reverts, guest, tainted)
        return rc, drift

    def guest_problems(self, vm: Any, facts: Any, changed: set[str]) -> list[Any]:
        """Guest drift of a running VM read with ``--guest`` (also recorded for rendering)."""
        found = self.guest_facts.get(vm.vmid)
        if found is None or facts.status != "running":
            return []
        problems = guest_drift(vm, found, next_boot_has_it=not (changed & guest_rules.CLOUDINIT_CHANGES))
        self.guest_drift.extend(guest_rules.guest_entries(f"vm.{vm.vmid}", vm.vmid, problems))
        return problems

    def finish(self, vm: Any, rc: ResourceChange, facts: Any, actual: dict[str, Any], desired: dict[str, Any],
               notes: list[str], reverts: dict[str, Any], guest: list[Any], tainted: str | None) -> None:
        """Reverts first; then, for a tainted VM or guest drift, end the chain with ``wait_guest``."""
        if reverts:
            rc.steps.insert(0, RevertPending(keys=guest_rules.revert_keys(reverts)))
            notes.append(f"{', '.join(sorted(reverts))}: a pending value set outside phoenix is reverted; the running "
                         f"value stays (no reboot)")
        running = actual.get("power") == "running" or any(isinstance(s, Start) for s in rc.steps)
        wants_running = desired.get("power") == "running"
        seed = [g for g in guest if g.kind == "seed"]
        if seed and not self.options.allow_reboot and not any("cloud-init changes" in n for n in notes):
            notes.append(f"the guest runs an older cloud-init seed ({', '.join(g.attribute for g in seed)}); "
                         f"rebooting applies it: run with --allow-reboot")
        if tainted:
            notes.append(f"tainted: the last apply failed ({tainted}); phoenix checks the guest again")
        if wants_running and (tainted or guest or any(isinstance(s, (Start, Reboot)) for s in rc.steps)):
            reboot = bool(seed) and self.options.allow_reboot
            if tainted or [g for g in guest if g.kind != "seed"] or reboot or not running:
                rc.steps = guest_rules.finish_with_guest(rc.steps, self.guest_timeout(vm), rerun=True,
                                                         reboot=reboot, start=not running)
        rc.blocked = "" if rc.steps else "; ".join(notes)
        if not rc.blocked:
            rc.notes.extend(notes)

    def create_steps(self, vm: VMSpec, node: str, template_node: str, template_facts: VMFacts | None,
                     desired: dict[str, Any], baked: bool | None, resume: bool = False) -> list[Step]:
        steps: list[Step] = [Clone(source=vm.clone_from_vmid, source_node=template_node, newid=vm.vmid, name=vm.name,
                                   full=bool(vm.full_clone), target=node if node != template_node else None,
                                   storage=vm.storage_pool if vm.full_clone else None, resume=resume)]
        template_size = disk_size_bytes(template_facts.config) if template_facts else None
        if template_size is not None and template_size > vm.disk_size_gb * GIB:
            self.problems.append(f"VM {vm.vmid} ({vm.name}): disk_size_gb {vm.disk_size_gb} is smaller than its "
                                 f"template's disk ({template_size >> 30} GiB); PVE cannot shrink disks")
        if template_size is None or template_size != vm.disk_size_gb * GIB:
            steps.append(Resize(disk="scsi0", size_gb=vm.disk_size_gb))
        declared = [k for k in CONFIGURED if k in desired]
        steps.extend(self.config_steps(vm, desired, declared, baked, deliver=True, running=False))
        inherited = template_facts.config if template_facts else {}
        steps.extend(Resize(disk=k, size_gb=desired[k]["size_gb"]) for k in sorted(RESIZABLE)
                     if k in desired and inherited.get(k))          # a disk the clone brought along grows
        if vm.start:
            steps = guest_rules.finish_with_guest(steps, self.guest_timeout(vm), start=True)
        return steps

    def config_steps(self, vm: VMSpec, desired: dict[str, Any], attributes: list[str], baked: bool | None,
                     deliver: bool, running: bool) -> list[Step]:
        """Deliver the user-data first (``cicustom`` must name an existing snippet), then one config
        write for every configured attribute; a running VM's cloud-init drive is regenerated so the
        change is there at its next boot."""
        steps: list[Step] = []
        if deliver:
            steps.append(DeliverUserData(template_vmid=vm.clone_from_vmid, agent_baked=baked,
                                         user_data=desired.get("user_data")))
        if attributes:
            destroy = [k for k in attributes if k in RESIZABLE and desired.get(k) is None
                       and vm.removed_disks == "delete"]
            steps.append(Configure(attributes={k: desired.get(k) for k in attributes}, destroy_volumes=destroy))
        if running and (deliver or set(attributes) & CLOUDINIT):
            steps.append(RegenerateCloudinit(note="takes effect at the next boot"))
        return steps

    def update_steps(self, vm: VMSpec, changed: set[str], actual: dict[str, Any], desired: dict[str, Any],
                     baked: bool | None, waiting: AbstractSet[str] = frozenset()) -> tuple[list[Step], str, list[str]]:
        """``waiting``: changed attributes whose declared value is already pending (not written again)."""
        running = actual.get("power") == "running"
        notes: list[str] = []
        grown = sorted(k for k in changed & RESIZABLE if disk_only_grew(actual.get(k), desired.get(k)))
        configured = [k for k in CONFIGURED if k in changed and k not in waiting and k not in grown]
        needs_reboot = sorted({k for k in configured if BY_NAME[k].needs_reboot(actual.get(k), desired.get(k))}
                              | waiting) if running else []
        cloudinit = guest_rules.reboot_for_cloudinit(changed, running)
        deliver = bool({"user_data", "cicustom"} & changed)
        if waiting and running:
            notes.append(f"{', '.join(sorted(waiting))}: already written, waiting for a reboot of the running VM")
        if needs_reboot and not self.options.allow_reboot:
            configured = [k for k in configured if k not in needs_reboot]
            notes.append(f"{', '.join(needs_reboot)}: applying needs a reboot of the running VM; "
                         f"run with --allow-reboot")
        if cloudinit and not self.options.allow_reboot:
            configured = [k for k in configured if k not in cloudinit]
            deliver = False
            notes.append(f"{', '.join(cloudinit)}: the guest applies cloud-init changes only at its next boot "
                         f"(a new instance-id); run with --allow-reboot")
        for k in configured:
            if k in RESIZABLE and desired.get(k) is None:
                notes.append(f"{k}: detached; " + ("its volume is destroyed" if vm.removed_disks == "delete" else
                                                    "PVE keeps its volume as unusedN (removed_disks: delete "
                                                    "destroys it)"))
        steps: list[Step] = []
        if "disk_size_gb" in changed:
            steps.append(Resize(disk="scsi0", size_gb=vm.disk_size_gb))
        reboot = bool(needs_reboot or cloudinit) and self.options.allow_reboot and desired.get("power") == "running"
        steps.extend(self.config_steps(vm, desired, configured, baked, deliver=deliver,
                                       running=running and not reboot))
        steps.extend(Resize(disk=k, size_gb=desired[k]["size_gb"]) for k in grown)
        timeout = self.guest_timeout(vm)
        if reboot:
            steps = guest_rules.finish_with_guest(steps + [Reboot()], timeout)
            if cloudinit:
                steps[-1] = WaitGuest(timeout=timeout, new_instance=True)
        elif "power" in changed and desired.get("power") == "running":
            steps = guest_rules.finish_with_guest(steps, timeout, start=True)
        blocked = "" if steps else "; ".join(notes)
        return steps, blocked, notes
