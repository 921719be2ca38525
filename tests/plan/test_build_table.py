"""build_plan as a table, in pyinfra's style: facts in (desired file, state record, what PVE reports),
steps out.  No API call happens in build_plan, so every row is pure data.

A row names its case, the change to the desired document, the facts, the options, and the action and
steps (op names, with the arguments that matter) it must produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from phoenix.desired import parse_desired
from phoenix.diff.attributes import configure_params
from phoenix.diff.views import desired_view
from phoenix.plan.build import PlanOptions, build_plan
from phoenix.plan.documents import render_documents
from phoenix.plan.steps import Step
from phoenix.pve.inventory import Inventory, VMFacts
from phoenix.pve.ownership import with_marker
from phoenix.state.model import ResourceState, State
from phoenix.template.status import AGENT_TAG

BASE = Path(__file__).resolve().parents[2] / "desired"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host"
TEMPLATE = {"vmid": 8000, "name": "noble", "image": {
    "url": "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
    "checksum_url": "https://cloud-images.ubuntu.com/noble/current/SHA256SUMS"}}


def document(**vm: Any) -> dict[str, Any]:
    base = {"vmid": 8001, "name": "web", "clone_from_vmid": 8000, "cores": 2, "memory_mb": 2048,
            "disk_size_gb": 20, "tags": ["a"], "network_config": {"ip": "10.0.0.5/24", "gw": "10.0.0.1"},
            "user_config": {"username": "ops", "ssh_public_key": KEY}}
    base.update(vm)
    return {"vm_defaults": {"node": "pve", "nameservers": ["10.0.0.1"]}, "templates": [TEMPLATE], "vms": [base]}


@dataclass
class World:
    """The facts: the template in PVE (None: absent), the VM as it was last applied (None: absent),
    changes PVE shows on top of that, its power status, and whether the state records it."""

    template: str | None = "agent"            # "agent" (tagged), "plain", or None
    vm: dict[str, Any] | None = None          # the document the VM was converged to
    pve: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    recorded: bool = True


def facts(world: World, state: State) -> Inventory:
    vms: dict[int, VMFacts] = {}
    if world.template is not None:
        config = {"template": 1, "name": "noble", "scsi0": "local-lvm:base-8000-disk-0,size=2G",
                  "tags": AGENT_TAG if world.template == "agent" else ""}
        vms[8000] = VMFacts(8000, "pve", "noble", "stopped", True, None, config)
    if world.vm is not None:
        cfg = parse_desired(world.vm, base_dir=BASE)
        vm = cfg.vms[0]
        docs = render_documents(cfg, vm, world.template == "agent")
        view = desired_view(vm, docs.cicustom, state.fingerprint(docs.fingerprint_source))
        config = configure_params({k: v for k, v in view.items()
                                   if k not in ("disk_size_gb", "power", "template", "user_data")}, {})
        config.update(scsi0=f"local-lvm:vm-8001-disk-0,size={vm.disk_size_gb}G", digest="d",
                      description=with_marker(None, state.lineage, 8001), **world.pve)   # phoenix made it
        vms[8001] = VMFacts(8001, "pve", vm.name, world.status, False, None, config)
        if world.recorded:
            state.put(ResourceState(kind="vm", vmid=8001, name=vm.name, node="pve", template_vmid=8000,
                                    attributes={k: v for k, v in view.items() if k not in ("template", "user_data")},
                                    fingerprints={"user_data": view["user_data"]}))
    return Inventory(vms=vms, nodes=["pve"])


def ops(steps: list[Step]) -> list[str]:
    return [step.op.value for step in steps]


def args_of(steps: list[Step], op: str) -> dict[str, Any]:
    return next(step.args for step in steps if step.op == op)


@dataclass
class Row:
    case: str
    desired: dict[str, Any]
    world: World
    action: str
    steps: list[str]
    options: PlanOptions = field(default_factory=PlanOptions)
    check: Callable[[Any], None] = lambda rc: None


CONVERGED = document()
ROWS = [
    Row("nothing exists: the template is built, the VM waits for its chain and learns the agent fact from it",
        document(), World(template=None), "create",
        ["clone", "resize", "deliver_user_data", "configure", "start", "wait_guest"],
        check=lambda rc: (rc.depends_on == [8000]
                          and args_of(rc.steps, "deliver_user_data")["agent_baked"] is None
                          and args_of(rc.steps, "deliver_user_data")["user_data"] == "(known after apply)")
        or pytest.fail(str(rc))),
    Row("the template exists without the agent: the fact is known at plan time",
        document(start=False), World(template="plain"), "create",
        ["clone", "resize", "deliver_user_data", "configure"],
        check=lambda rc: (not rc.depends_on and args_of(rc.steps, "deliver_user_data")["agent_baked"] is False)
        or pytest.fail(str(rc))),
    Row("converged: nothing to do", CONVERGED, World(vm=CONVERGED), "no-op", []),
    Row("cores on a running VM need a reboot: held back without --allow-reboot",
        document(cores=4), World(vm=CONVERGED), "update", [],
        check=lambda rc: ("needs a reboot" in rc.blocked) or pytest.fail(rc.blocked)),
    Row("cores with --allow-reboot: one config write, reboot, wait for the agent",
        document(cores=4), World(vm=CONVERGED), "update", ["configure", "reboot", "wait_guest"],
        options=PlanOptions(allow_reboot=True),
        check=lambda rc: args_of(rc.steps, "configure")["attributes"] == {"cores": 4} or pytest.fail(str(rc))),
    Row("cores on a stopped VM: no reboot needed; it is started as declared",
        document(cores=4), World(vm=CONVERGED, status="stopped"), "update",
        ["configure", "start", "wait_guest"]),
    Row("a cloud-init option on a booted VM: held back, the guest sees it only after a reboot",
        document(network_config={"ip": "10.0.0.6/24", "gw": "10.0.0.1"}), World(vm=CONVERGED), "update", [],
        check=lambda rc: "--allow-reboot" in rc.blocked or pytest.fail(str(rc))),
    Row("a cloud-init option with --allow-reboot: written, rebooted (PVE regenerates the drive), new seed awaited",
        document(network_config={"ip": "10.0.0.6/24", "gw": "10.0.0.1"}), World(vm=CONVERGED), "update",
        ["configure", "reboot", "wait_guest"], PlanOptions(allow_reboot=True),
        check=lambda rc: args_of(rc.steps, "configure")["attributes"] == {"ipconfig0": "ip=10.0.0.6/24,gw=10.0.0.1"}
        and rc.steps[-1].args.get("new_instance") is True or pytest.fail(str(rc))),
    Row("tags dropped from the file are removed from PVE", document(tags=[]), World(vm=CONVERGED), "update",
        ["configure"], check=lambda rc: args_of(rc.steps, "configure")["attributes"] == {"tags": None}
        or pytest.fail(str(rc))),
    Row("a bigger disk is resized (grow only)", document(disk_size_gb=30), World(vm=CONVERGED), "update",
        ["resize"], check=lambda rc: args_of(rc.steps, "resize") == {"disk": "scsi0", "size_gb": 30}
        or pytest.fail(str(rc))),
    Row("drift: someone changed the bridge in PVE; phoenix puts it back", CONVERGED,
        World(vm=CONVERGED, pve={"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr9"}), "update", ["configure"],
        check=lambda rc: args_of(rc.steps, "configure")["attributes"] == {"net0": {"bridge": "vmbr0", "model": "virtio"}}
        or pytest.fail(str(rc))),
    Row("another template means a new VM: held back without --replace", document(clone_from_vmid=9000),
        World(vm=CONVERGED), "replace", ["stop", "destroy", "clone", "resize", "deliver_user_data", "configure",
                                         "start", "wait_guest"],
        check=lambda rc: "--replace 8001" in rc.blocked or pytest.fail(rc.blocked)),
    Row("a VM that left the file is destroyed", {**document(), "vms": []}, World(vm=CONVERGED), "delete",
        ["stop", "destroy", "remove_user_data", "forget"]),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
def test_build_plan_table(row: Row):
    state = State()
    inventory = facts(row.world, state)
    existing = frozenset({8000, 9000} if row.world.template is not None else set())
    desired = dict(row.desired)
    if any(vm.get("clone_from_vmid") == 9000 for vm in desired["vms"]):
        inventory.vms[9000] = VMFacts(9000, "pve", "other", "stopped", True, None, {"template": 1})
    cfg = parse_desired(desired, base_dir=BASE, existing_templates=existing)
    plan = build_plan(cfg, state, inventory, row.options)
    rc = plan.change_for(8001)
    assert rc is not None and rc.action == row.action, plan.resource_changes
    assert ops(rc.steps) == row.steps
    row.check(rc)
    if row.world.template is None:
        template = plan.change_for(8000)
        assert template is not None and ops(template.steps) == ["provision_template"]
