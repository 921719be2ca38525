"""What a plan costs in API calls, and that no secret ever reaches output, plan files or state."""

from __future__ import annotations

import json


def test_plan_costs_n_plus_a_few_requests(phoenix_cli, sim_control):
    assert phoenix_cli("apply", "--auto-approve").exit_code == 0
    sim_control.reset_stats()
    result = phoenix_cli("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    stats = sim_control.stats()
    managed = 3                                                   # template 8000, VMs 8001 and 8002
    assert stats["total"] == managed + 1, stats                   # one /cluster/resources + one config each
    assert stats["by_endpoint"].get("GET /cluster/resources") == 1
    # GET /pending: the current and the pending values in the one call a config costs
    assert stats["by_endpoint"].get("GET /nodes/{node}/qemu/{vmid}/pending") == managed
    sim_control.reset_stats()
    assert phoenix_cli("plan", "--guest", "--detailed-exitcode").exit_code == 0
    assert sim_control.stats()["total"] == managed + 1 + 5 * 2    # + 5 agent calls per running VM


def test_no_secret_in_output_plan_or_state(phoenix_cli, sim_server, tmp_path):
    secret = sim_server.api_token.split("=", 1)[1]
    password_hash = json.loads(phoenix_cli.config.read_text())["vms"][0]["user_config"]["password_hash"]
    plan_file = tmp_path / "plan.json"
    outputs = [phoenix_cli("plan", "--out", str(plan_file)).output,
               phoenix_cli("plan", "--json").output,
               phoenix_cli("apply", str(plan_file)).output,
               phoenix_cli("destroy", "8002", "--auto-approve").output]
    files = [plan_file.read_text(), phoenix_cli.state.read_text(),
             phoenix_cli.state.with_name(phoenix_cli.state.name + ".backup").read_text()]
    for text in outputs + files:
        assert secret not in text
        assert password_hash not in text
        assert password_hash.split("$")[-1] not in text
    assert (phoenix_cli.state.stat().st_mode & 0o777) == 0o600
