"""``phoenix destroy VMID...``: what goes is shown Terraform-style, confirmed, then removed."""

from __future__ import annotations

from phoenix.commands.context import Context, read_facts
from phoenix.commands.run import run_plan
from phoenix.plan.destroy import build_destroy_plan


def destroy_command(ctx: Context, vmids: list[int], auto_approve: bool = False, force: bool = False) -> int:
    store = ctx.store()
    with store.lock("destroy"):
        state = store.read()
        with ctx.environment.connect() as conn:
            facts = read_facts(ctx, conn, state, extra_vmids=vmids)
            plan = build_destroy_plan(vmids, state, facts.inventory, force=force)
            return run_plan(ctx, plan, facts, store, conn, approve=auto_approve, parallelism=4)
