"""``phoenix plan`` computes each VM's part while the other configs are still being read; what it reports
must not change: a PVE error while reading comes before the plan's problems, and the request count stays
one per VM."""

from __future__ import annotations

import json


def test_a_pve_error_while_reading_comes_before_the_plans_problems(phoenix_cli, sim_control):
    assert phoenix_cli("apply", "--auto-approve").exit_code == 0
    data = json.loads(phoenix_cli.config.read_text())
    data["vms"][0]["disk_size_gb"] = 16                     # a plan problem: PVE cannot shrink disks
    phoenix_cli.config.write_text(json.dumps(data))
    assert "cannot shrink" in phoenix_cli("plan").output     # the problem alone is reported
    sim_control.fault(endpoint="GET /nodes/{node}/qemu/{vmid}/pending", count=1, status=403,
                      message="Permission check failed (/vms/8002, VM.Audit)")
    result = phoenix_cli("plan")
    assert result.exit_code == 1
    assert "Permission check failed" in result.output and "cannot shrink" not in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output


def test_the_plan_while_reading_equals_the_plan_after_it(phoenix_cli, sim_server):
    """``plan --json`` (computed as the configs arrive) against build_plan over the read inventory."""
    from phoenix.commands.context import Context, read_facts
    from phoenix.commands.environment import RealPVE
    from phoenix.plan.build import build_plan
    from phoenix.plan.render import plan_json

    assert phoenix_cli("apply", "--auto-approve", "--target", "8000", "--target", "8001").exit_code == 0
    data = json.loads(phoenix_cli.config.read_text())
    data["vms"][0]["memory_mb"] += 512                       # 8001 changed in the file; 8002 to be created
    phoenix_cli.config.write_text(json.dumps(data))
    result = phoenix_cli("plan", "--json")
    assert result.exit_code == 0, result.output
    ctx = Context(phoenix_cli.config, phoenix_cli.state, RealPVE(phoenix_cli.env))
    state = ctx.store().read()
    with ctx.environment.connect() as conn:
        facts = read_facts(ctx, conn, state)
    expected = build_plan(facts.cfg, state, facts.inventory, desired_fingerprint=facts.desired_fingerprint,
                          outdated_templates=facts.outdated_templates)
    assert json.loads(result.output) == json.loads(plan_json(expected))
    actions = {rc["address"]: rc["action"] for rc in json.loads(result.output)["resource_changes"]}
    assert actions["vm.8001"] == "update" and actions["vm.8002"] == "create"

