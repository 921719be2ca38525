"""``phoenix show [VMID…] [--json]``: the table an operator wants after an apply.

Per managed VM: node, power, template, the IPv4 the guest agent reports on the declared NIC, the
feature results (and when they ran), pending changes (``GET /pending``) and whether the last apply
failed (tainted).  Reads the inventory (N+1 calls) plus a few agent calls per running VM.
"""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from phoenix.commands.context import Context, read_facts
from phoenix.diff.guest import feature_failure_line

__all__ = ["show_command", "show_rows"]


def _features(facts: Any) -> tuple[str, list[dict[str, Any]]]:
    if facts is None:
        return "", []
    if not facts.agent:
        return f"agent: {facts.problem or 'not answering'}", []
    status = facts.status
    if status is None:
        return "no status file" if facts.problem is None else facts.problem, []
    items = [{"name": f.name, "state": f.state, "exit_code": f.exit_code, "started": f.started,
              "duration_s": f.duration_s, **({"error": feature_failure_line(f)} if f.failed else {})}
             for f in status.features]
    parts = []
    for f in status.features:
        parts.append(f"{f.name} failed (exit {f.exit_code})" if f.failed else
                     f"{f.name} ok" if f.state == "done" else f"{f.name} {f.state}")
    when = f" at {status.finished or status.started}" if (status.finished or status.started) else ""
    stale = "" if facts.features_current else " (older instance-id)"
    return (", ".join(parts) or "none") + when + stale, items


def show_rows(facts: Any, state: Any, vmids: list[int]) -> list[dict[str, Any]]:
    """One plain row per VM (the ``--json`` output)."""
    rows = []
    for vmid in vmids:
        record = state.get(vmid)
        vm_facts = facts.inventory.vms.get(vmid)
        guest = facts.inventory.guest_facts.get(vmid)
        summary, features = _features(guest)
        pending = vm_facts.pending if vm_facts is not None else None
        rows.append({
            "vmid": vmid, "name": (vm_facts.name if vm_facts else record.name if record else ""),
            "node": vm_facts.node if vm_facts else (record.node if record else None),
            "power": vm_facts.status if vm_facts else "missing",
            "template": record.template_vmid if record else None,
            "ipv4": list(guest.ipv4) if guest else [], "hostname": guest.hostname if guest else None,
            "features": features, "features_summary": summary,
            "instance_id": guest.instance_id if guest else None,
            "pending": {k: (pending.pending.get(k) if k not in pending.deletes else None)
                        for k in pending.pending_keys()} if pending else {},
            "tainted": record.tainted if record else None,
        })
    return rows


def show_command(ctx: Context, vmids: list[int], as_json: bool) -> int:
    from phoenix.pve.guest import read_guests

    state = ctx.store().read()
    managed = sorted(int(k) for k, r in state.resources.items() if r.kind == "vm")
    wanted = sorted(set(vmids)) if vmids else managed
    with ctx.environment.connect() as conn:
        facts = read_facts(ctx, conn, state, extra_vmids=wanted)
        facts.inventory.guest_facts = read_guests(conn.client, facts.inventory, wanted)
    rows = show_rows(facts, state, wanted)
    if as_json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    out = ctx.out
    if not rows:
        out.print("No VMs managed by phoenix.")
        return 0
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("VMID", "NAME", "NODE", "POWER", "TEMPLATE", "IPV4 (AGENT)"):
        table.add_column(column, no_wrap=True)
    table.add_column("FEATURES", overflow="fold")
    table.add_column("PENDING", overflow="fold")
    for row in rows:
        pending = ", ".join(f"{k}={v}" if v is not None else f"-{k}" for k, v in row["pending"].items())
        features = escape(row["features_summary"])
        if row["tainted"]:
            features += " [red](tainted: see phoenix plan)[/red]"
        table.add_row(str(row["vmid"]), escape(row["name"] or ""), escape(str(row["node"] or "")), row["power"],
                      str(row["template"] or ""), ", ".join(row["ipv4"]), features, escape(pending))
    out.print(table)
    return 0
