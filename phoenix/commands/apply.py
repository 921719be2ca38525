"""``phoenix apply [PLAN]``: under the state lock, read the facts, take the saved plan (checked against
today's world) or compute one, and run it."""

from __future__ import annotations

from pathlib import Path

from phoenix.commands.context import Context, Facts, read_facts
from phoenix.commands.plan import PlanRequest
from phoenix.commands.run import run_plan
from phoenix.errors import PhoenixError
from phoenix.plan.arrivals import PartsOnArrival
from phoenix.plan.build import PlanOptions, build_plan
from phoenix.plan.model import CREATE, Plan


def apply_command(ctx: Context, request: PlanRequest, plan_file: Path | None = None, auto_approve: bool = False,
                  parallelism: int = 4, per_node: int | None = None, unlock_stale: bool = False) -> int:
    from phoenix.plan.seal import check_narrowed, load_sealed

    store = ctx.store()
    with store.lock("apply"):
        state = store.read()
        # Without a saved plan, each VM's part is computed as its config arrives (phoenix.plan.arrivals).
        arrivals = PartsOnArrival(state, request.options())
        with ctx.environment.connect() as conn:
            facts = read_facts(ctx, conn, state, guest=request.guest and plan_file is None,
                               watch=arrivals.reading if plan_file is None and not request.guest else None)
            plan: Plan
            if plan_file is not None:
                plan = load_sealed(plan_file, state)      # MAC and lineage: refuses an edited plan
                check_saved_plan(plan, facts)
                rebuilt = build_plan(facts.cfg, state, facts.inventory, PlanOptions(
                    targets=set(plan.options.get("targets", [])), allow_reboot=bool(plan.options.get("allow_reboot")),
                    replace=set(plan.options.get("replace", []))), desired_fingerprint=facts.desired_fingerprint,
                    outdated_templates=facts.outdated_templates)
                check_narrowed(plan, rebuilt)             # only steps the desired file produces run
            else:
                plan = build_plan(facts.cfg, state, facts.inventory, request.options(),
                                  desired_fingerprint=facts.desired_fingerprint,
                                  outdated_templates=facts.outdated_templates, parts=arrivals.parts)
            return run_plan(ctx, plan, facts, store, conn, approve=auto_approve or plan_file is not None,
                            parallelism=parallelism, per_node=per_node, unlock_stale=unlock_stale)


def check_saved_plan(plan: Plan, facts: Facts) -> None:
    """Refuse a saved plan whose world moved on: state written since, file edited, or PVE changed."""
    state = facts.state
    never_written = plan.state_serial == 0 and state.serial == 0   # no state file then or now
    if not never_written and (plan.state_lineage != state.lineage or plan.state_serial != state.serial):
        raise PhoenixError(f"saved plan is stale: the state changed since it was made (serial "
                           f"{plan.state_serial} → {state.serial}); run 'phoenix plan' again")
    if plan.desired_fingerprint and plan.desired_fingerprint != facts.desired_fingerprint:
        raise PhoenixError("saved plan is stale: the desired-state file changed since it was made; run 'phoenix plan' again")
    for rc in plan.resource_changes:
        facts_now = facts.inventory.vms.get(rc.vmid)
        if rc.action == CREATE and facts_now is not None:
            raise PhoenixError(f"saved plan is stale: {rc.address} now exists in PVE; run 'phoenix plan' again")
        if rc.digest and (facts_now is None or facts_now.config.get("digest") != rc.digest):
            raise PhoenixError(f"saved plan is stale: {rc.address} changed in PVE since the plan was made; "
                               f"run 'phoenix plan' again")
