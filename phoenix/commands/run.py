"""Show a plan, ask for ``yes``, execute it and print the summary (``apply`` and ``destroy``)."""

from __future__ import annotations

import sys

from rich.console import Console

from phoenix.apply.delivery import SnippetDelivery
from phoenix.apply.executor import execute
from phoenix.apply.journal import Journal
from phoenix.apply.report import ApplyReporter
from phoenix.apply.steps import ApplyRuntime
from phoenix.commands.context import Context, Facts
from phoenix.commands.environment import Connection
from phoenix.desired.spec import TemplateSpec
from phoenix.plan.model import Plan
from phoenix.plan.render import render_plan
from phoenix.pve.client import PVEClient
from phoenix.state.store import StateStore
from phoenix.template.provision import TemplateResult, provision_for_plan
from phoenix.text import printable


def run_plan(ctx: Context, plan: Plan, facts: Facts, store: StateStore, conn: Connection, approve: bool,
             parallelism: int, per_node: int | None = None, unlock_stale: bool = False) -> int:
    """The exit code: 0 when every chain succeeded (or there was nothing to do)."""
    from phoenix.apply.recovery import sweep_template_leftovers

    out = ctx.out
    render_plan(plan, out)
    if plan.operation != "destroy":
        sweep_template_leftovers(conn.client, facts.cfg, facts.inventory, facts.state.lineage,
                                 lambda line: out.print(f"[dim]{line}[/dim]"))
    if not any(rc.actionable for rc in plan.resource_changes):
        return 0
    if not approve and not confirm(out, plan.operation):
        out.print("\nDestroy cancelled." if plan.operation == "destroy" else "\nApply cancelled.")
        return 1
    out.print()

    def provision(client: PVEClient, spec: TemplateSpec, reporter: object) -> TemplateResult:
        return provision_for_plan(client, spec, reporter, owner=facts.state.lineage, stand_ins=conn.stand_ins)

    runtime = ApplyRuntime(client=conn.client, cfg=facts.cfg, journal=Journal(store, facts.state),
                           reporter=ApplyReporter(out),
                           snippets=SnippetDelivery(facts.cfg, conn.client, conn.storage_roots),
                           provision_template=provision, unlock_stale=unlock_stale)
    result = execute(plan, runtime, parallelism=parallelism, per_node=per_node)
    counts = plan.counts(only=result.succeeded)
    verb = "Destroy" if plan.operation == "destroy" else "Apply"
    if result.ok:
        out.print(f"\n[bold green]{verb} complete![/bold green] Resources: {counts['add']} added, "
                  f"{counts['change']} changed, {counts['destroy']} destroyed. [{result.seconds:.1f}s]")
        return 0
    out.print(f"\n[bold red]{verb} finished with errors[/bold red] ({len(result.failed)} failed). Resources: "
              f"{counts['add']} added, {counts['change']} changed, {counts['destroy']} destroyed.")
    for chain in result.failed:
        ctx.err.print(f"error: {chain.address}: {printable(chain.error)}", markup=False)
    return 1


def confirm(out: Console, operation: str) -> bool:
    what = "destroy these resources" if operation == "destroy" else "perform these actions"
    out.print(f"\nDo you want to {what}? Only 'yes' will be accepted.")
    if not sys.stdin.isatty() and sys.stdin.closed:
        return False
    try:
        answer = input("  Enter a value: ")
    except EOFError:
        return False
    return answer.strip() == "yes"
