"""``phoenix plan``: read the facts once, compute the plan, render it (and save it with ``--out``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from phoenix.commands.context import Context, read_facts
from phoenix.commands.gcpause import gc_paused
from phoenix.plan.arrivals import PartsOnArrival
from phoenix.plan.build import PlanOptions, build_plan
from phoenix.plan.model import Plan
from phoenix.plan.render import plan_json, render_plan
from phoenix.text import markup_safe


@dataclass
class PlanRequest:
    """What ``plan`` and ``apply`` (without a saved plan) are asked for."""

    targets: list[int] = field(default_factory=list)
    allow_reboot: bool = False
    replace: list[int] = field(default_factory=list)
    guest: bool = False                  # also read the running VMs' guest agents
    guest_timeout: int | None = None     # how long apply waits for a started VM's guest

    def options(self) -> PlanOptions:
        return PlanOptions(targets=set(self.targets), allow_reboot=self.allow_reboot, replace=set(self.replace),
                           guest_timeout=self.guest_timeout)


def plan_command(ctx: Context, request: PlanRequest, out: Path | None = None, as_json: bool = False,
                 detailed_exitcode: bool = False) -> int:
    from phoenix.plan.seal import save_sealed, sealed_state

    store = ctx.store()
    with gc_paused():
        state = store.read() if out is None else sealed_state(store)   # a saved plan needs the state's key on disk
    # Each VM's part of the plan is computed as its config arrives (not with --guest: the agents are read
    # after the configs); build_plan computes the rest and puts it all in order.
    arrivals = PartsOnArrival(state, request.options())
    with ctx.environment.connect() as conn:
        facts = read_facts(ctx, conn, state, guest=request.guest, watch=None if request.guest else arrivals.reading)
    with gc_paused():
        plan: Plan = build_plan(facts.cfg, state, facts.inventory, request.options(),
                                desired_fingerprint=facts.desired_fingerprint,
                                outdated_templates=facts.outdated_templates, parts=arrivals.parts)
    if as_json:
        print(plan_json(plan))
    else:
        render_plan(plan, ctx.out)
    if out is not None:
        save_sealed(plan, out, state)
        if not as_json:
            ctx.out.print(f"\nSaved the plan to {markup_safe(out)}. Apply exactly it with: "
                          f"phoenix apply {markup_safe(out)}")
    return 2 if detailed_exitcode and plan.has_changes else 0
