"""Plans are plain data: they round-trip through JSON, count like Terraform, and render without secrets."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from phoenix.diff.engine import AttributeChange
from phoenix.errors import PhoenixError
from phoenix.plan.model import CREATE, DELETE, FORMAT_VERSION, NOOP, REPLACE, UPDATE, Plan, ResourceChange
from phoenix.plan.steps import Clone, Configure, DeliverUserData, Destroy, Forget, ProvisionTemplate, WaitGuest
from phoenix.plan.render import plan_json, render_plan


def sample_plan() -> Plan:
    return Plan(
        state_lineage="lineage-1", state_serial=3, desired_fingerprint="abc",
        resource_changes=[
            ResourceChange("template.8000", 8000, "template", "tpl", "pve", CREATE,
                           [AttributeChange("name", None, "tpl")], [ProvisionTemplate(vmid=8000)]),
            ResourceChange("vm.8001", 8001, "vm", "web", "pve", UPDATE,
                           [AttributeChange("cores", 2, 4), AttributeChange("user_data", "hmac-sha256:a", "hmac-sha256:b")],
                           [Configure(attributes={"cores": 4, "tags": None})], digest="d1"),
            ResourceChange("vm.8002", 8002, "vm", "db", "pve", REPLACE, [AttributeChange("template", 8000, 9000)],
                           [Destroy(), Clone(source=9000, source_node="pve", newid=8002, name="db", full=True,
                                             storage="local-lvm"),
                            DeliverUserData(template_vmid=9000, agent_baked=None, user_data="(known after apply)"),
                            WaitGuest(timeout=30)], blocked="run with --replace 8002"),
            ResourceChange("vm.8003", 8003, "vm", "old", "pve", DELETE, [AttributeChange("exists", True, False)],
                           [Destroy(), Forget(note="state only")]),
            ResourceChange("vm.8004", 8004, "vm", "same", "pve", NOOP),
        ],
    )


def test_plan_round_trips_through_json():
    plan = sample_plan()
    again = Plan.from_json(json.loads(plan_json(plan)))
    assert again == plan


def test_json_has_terraform_like_fields():
    data = json.loads(plan_json(sample_plan()))
    assert data["format_version"] == FORMAT_VERSION == "2.0"
    by_address = {rc["address"]: rc for rc in data["resource_changes"]}
    assert by_address["vm.8002"]["actions"] == ["delete", "create"]
    assert by_address["vm.8001"]["before"]["cores"] == 2 and by_address["vm.8001"]["after"]["cores"] == 4
    assert data["summary"] == {"add": 1, "change": 1, "destroy": 1}   # the blocked replace is not counted


def test_render_masks_user_data_and_prints_summary():
    buffer = io.StringIO()
    render_plan(sample_plan(), Console(file=buffer, width=120, color_system=None))
    text = buffer.getvalue()
    assert "Plan: 1 to add, 1 to change, 1 to destroy." in text
    assert "user_data = (sensitive) -> (sensitive)" in text
    assert "hmac-sha256" not in text
    assert re.search(r"~ cores +?= 2 -> 4", text)
    assert "held back: run with --replace 8002" in text
    assert "# vm.8004" not in text


def test_converged_plan_says_no_changes():
    buffer = io.StringIO()
    render_plan(Plan(resource_changes=[ResourceChange("vm.1", 100, "vm", "a", "pve", NOOP)]),
                Console(file=buffer, color_system=None))
    assert "No changes." in buffer.getvalue()


def test_loading_garbage_is_a_one_line_error(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text("{not json")
    with pytest.raises(PhoenixError, match="not a phoenix plan file"):
        Plan.load(bad)
    with pytest.raises(PhoenixError, match="no such plan file"):
        Plan.load(tmp_path / "missing.json")


def test_steps_are_typed_on_disk_and_back():
    data = json.loads(plan_json(sample_plan()))
    steps = {rc["address"]: rc["steps"] for rc in data["resource_changes"]}
    assert steps["vm.8002"][2] == {"op": "deliver_user_data", "note": "",
                                   "args": {"template_vmid": 9000, "agent_baked": None,
                                            "user_data": "(known after apply)"}}
    again = Plan.from_json(data)
    assert isinstance(again.change_for(8002).steps[1], Clone) and again.change_for(8002).steps[1].target is None


def test_a_plan_of_another_format_version_is_refused_cleanly(tmp_path):
    """A plan saved by the phoenix before typed steps (format 1.0) is refused, never misread."""
    old = json.loads(plan_json(sample_plan()))
    old["format_version"] = "1.0"
    for rc in old["resource_changes"]:
        rc["steps"] = [{"op": s["op"], "args": {}, "note": ""} for s in rc["steps"]]
    path = tmp_path / "old.plan.json"
    path.write_text(json.dumps(old))
    with pytest.raises(PhoenixError, match=r"format_version '1.0' is not 2.0 .*run 'phoenix plan' again"):
        Plan.load(path)


def test_a_step_with_an_unknown_op_or_argument_is_not_a_plan(tmp_path):
    data = json.loads(plan_json(sample_plan()))
    for bad in ({"op": "set_cloudinit", "args": {}}, {"op": "resize", "args": {"disk": "scsi0"}}):
        data["resource_changes"][0]["steps"] = [bad]
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(data))
        with pytest.raises(PhoenixError, match="not a phoenix plan file"):
            Plan.load(path)
