"""The plan's parts computed VM by VM as the configs arrive (phoenix.plan.arrivals, while the inventory is
read) against build_plan over the finished inventory alone, its reference: the same plan, or the same PlanError.

Pure data, like test_build_table: the facts are what PVE would report for a fleet phoenix converged, with
some VMs changed; they arrive in a random order (templates after their VMs too), some never (gone between
the listing and the read), and the parts see an inventory holding only the listing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from phoenix.desired import parse_desired
from phoenix.diff.attributes import configure_params
from phoenix.diff.views import desired_view
from phoenix.plan.arrivals import PartsOnArrival
from phoenix.plan.build import PlanError, PlanOptions, build_plan
from phoenix.plan.documents import render_documents
from phoenix.pve.inventory import Inventory, VMFacts
from phoenix.pve.ownership import with_marker
from phoenix.state.model import ResourceState, State
from phoenix.template.status import AGENT_TAG

BASE = Path(__file__).resolve().parents[2] / "desired"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host"
TEMPLATE = {"vmid": 8000, "name": "noble", "image": {
    "url": "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
    "checksum_url": "https://cloud-images.ubuntu.com/noble/current/SHA256SUMS"}}
# What can be true of one VM: as converged, or changed on one side.
KINDS = ["converged", "pve_cores", "pve_bridge", "pve_tags", "stopped", "missing", "unrecorded", "file_memory",
         "file_cloudinit", "shrink", "orphan", "left_file"]


def vm_doc(vmid: int, **change: Any) -> dict[str, Any]:
    doc = {"vmid": vmid, "name": f"web-{vmid}", "clone_from_vmid": 8000, "cores": 2, "memory_mb": 2048,
           "disk_size_gb": 20, "tags": ["a"],
           "network_config": {"ip": f"10.{vmid // 250 % 250}.{vmid % 250}.5/8", "gw": "10.0.0.1"},
           "user_config": {"username": "ops", "ssh_public_key": KEY}}
    doc.update(change)
    return doc


def document(vms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"vm_defaults": {"node": "pve", "nameservers": ["10.0.0.1"]}, "templates": [TEMPLATE], "vms": vms}


def world(kinds: list[str]) -> tuple[Any, State, Inventory]:
    """The desired config, the state and the facts of a fleet whose VM i is ``kinds[i]``."""
    state = State()
    template = {"template": 1, "name": "noble", "scsi0": "local-lvm:base-8000-disk-0,size=2G", "tags": AGENT_TAG}
    inventory = Inventory(vms={8000: VMFacts(8000, "pve", "noble", "stopped", True, None, template)}, nodes=["pve"])
    converged = parse_desired(document([vm_doc(8001 + i) for i in range(len(kinds))]), base_dir=BASE)
    declared = []
    for i, (kind, vm) in enumerate(zip(kinds, converged.vms)):
        vmid = vm.vmid
        docs = render_documents(converged, vm, True)
        view = desired_view(vm, docs.cicustom, state.fingerprint(docs.fingerprint_source))
        config = configure_params({k: v for k, v in view.items()
                                   if k not in ("disk_size_gb", "power", "template", "user_data")}, {})
        size = 30 if kind == "shrink" else vm.disk_size_gb
        config.update(scsi0=f"local-lvm:vm-{vmid}-disk-0,size={size}G", digest=f"d{vmid}",
                      description=with_marker(None, state.lineage, vmid))
        config.update({"pve_cores": {"cores": 4}, "pve_bridge": {"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr9"},
                       "pve_tags": {"tags": "other"}}.get(kind, {}))
        if kind != "missing":
            inventory.vms[vmid] = VMFacts(vmid, "pve", vm.name, "stopped" if kind == "stopped" else "running", False,
                                          None, config)
        if kind != "unrecorded":
            state.put(ResourceState(kind="vm", vmid=vmid, name=vm.name, node="pve", template_vmid=8000,
                                    attributes={k: v for k, v in view.items() if k not in ("template", "user_data")},
                                    fingerprints={"user_data": view["user_data"]}))
        change = {"file_memory": {"memory_mb": 4096},
                  "file_cloudinit": {"network_config": {"ip": f"10.9.{i % 250}.7/8", "gw": "10.0.0.1"}}}
        if kind not in ("orphan", "left_file"):
            declared.append(vm_doc(vmid, **change.get(kind, {})))
        if kind == "orphan":          # recorded, gone from the file and from PVE
            inventory.vms.pop(vmid, None)
    cfg = parse_desired(document(declared), base_dir=BASE, existing_templates=frozenset({8000}))
    return cfg, state, inventory


def reference(cfg: Any, state: State, inventory: Inventory, options: PlanOptions) -> dict[str, Any] | str:
    try:
        return build_plan(cfg, state, inventory, options, desired_fingerprint="f").to_json()
    except PlanError as exc:
        return f"PlanError: {exc}"


def while_reading(cfg: Any, state: State, inventory: Inventory, options: PlanOptions, order: list[int],
                  skip: set[int] = frozenset()) -> dict[str, Any] | str:
    """Parts computed as the facts arrive in ``order`` (those in ``skip`` never do: a VM gone between the
    listing and its read), then build_plan with them over the finished inventory."""
    listing = Inventory(nodes=list(inventory.nodes),
                        guests={vmid: ("qemu", "pve") for vmid in inventory.vms})
    wanted = sorted(set(inventory.vms) | {vm.vmid for vm in cfg.vms} | {int(k) for k in state.resources})
    arrivals = PartsOnArrival(state, options)
    arrived = arrivals.reading(cfg, wanted)
    for vmid in order:
        if vmid in inventory.vms and vmid not in skip:
            arrived(listing, inventory.vms[vmid])
    finished = Inventory(vms={vmid: facts for vmid, facts in inventory.vms.items() if vmid not in skip},
                         nodes=list(inventory.nodes), guests=dict(listing.guests))
    try:
        return build_plan(cfg, state, finished, options, desired_fingerprint="f", parts=arrivals.parts).to_json()
    except PlanError as exc:
        return f"PlanError: {exc}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=8), data=st.data(),
       allow_reboot=st.booleans(), target=st.booleans())
def test_the_plan_computed_while_reading_is_the_plan(kinds, data, allow_reboot, target):
    cfg, state, inventory = world(kinds)
    vmids = sorted({8000, *(8001 + i for i in range(len(kinds)))})
    order = data.draw(st.permutations(vmids))
    skip = set(data.draw(st.lists(st.sampled_from(vmids), max_size=2)))
    options = PlanOptions(allow_reboot=allow_reboot, targets={8001} if target else set())
    finished = Inventory(vms={v: f for v, f in inventory.vms.items() if v not in skip}, nodes=list(inventory.nodes),
                         guests={vmid: ("qemu", "pve") for vmid in inventory.vms})
    expected = reference(cfg, state, finished, options)
    assert while_reading(cfg, state, inventory, options, order, skip) == expected


def test_one_changed_vm_in_a_thousand_is_found_as_before():
    """A converged fleet of 1,000 with one VM changed in PVE and one in the file: the plan computed while
    reading names exactly those two, as build_plan over the whole inventory does."""
    kinds = ["converged"] * 1000
    kinds[417], kinds[804] = "pve_bridge", "file_memory"
    cfg, state, inventory = world(kinds)
    options = PlanOptions()
    expected = reference(cfg, state, inventory, options)
    got = while_reading(cfg, state, inventory, options, list(reversed(sorted(inventory.vms))))
    assert got == expected
    assert isinstance(got, dict)
    changed = [rc for rc in got["resource_changes"] if rc["action"] != "no-op"]
    assert [(rc["vmid"], rc["action"], [c["attribute"] for c in rc["changes"]]) for rc in changed] == [
        (8418, "update", ["net0"]), (8805, "update", ["memory_mb"])]
    assert [d["vmid"] for d in got["resource_drift"]] == [8418]


def test_problems_are_reported_in_the_files_order_whatever_arrived_first():
    cfg, state, inventory = world(["shrink", "converged", "shrink"])
    expected = reference(cfg, state, inventory, PlanOptions())
    assert isinstance(expected, str) and expected.index("VM 8001") < expected.index("VM 8003")
    assert while_reading(cfg, state, inventory, PlanOptions(), [8003, 8002, 8001, 8000]) == expected


def test_every_vm_read_gets_its_part_while_reading_even_before_its_template():
    """The fast path is taken: VMs arriving before their template wait for it, then all have parts."""
    cfg, state, inventory = world(["converged", "pve_tags", "missing", "converged"])
    arrivals = PartsOnArrival(state, PlanOptions())
    arrived = arrivals.reading(cfg, sorted(inventory.vms))
    listing = Inventory(nodes=["pve"], guests={vmid: ("qemu", "pve") for vmid in inventory.vms})
    for vmid in (8004, 8002, 8001):
        arrived(listing, inventory.vms[vmid])
    assert arrivals.parts == {}                      # all wait for template 8000
    arrived(listing, inventory.vms[8000])
    assert sorted(arrivals.parts) == [8001, 8002, 8004]        # 8003 was never read: build_plan computes it
    assert arrivals.parts[8002].change.action == "update" and arrivals.parts[8001].change.action == "no-op"


def test_a_failure_while_reading_is_left_to_build_plan():
    """Nothing raises into the reading: when the parts cannot be computed (here the features cannot be
    listed) they give up, and build_plan raises the error itself, after the reading."""
    cfg, state, inventory = world(["converged"])
    cfg.base_dir = 42                                    # Path(42): TypeError where the features are listed
    arrivals = PartsOnArrival(state, PlanOptions())
    arrived = arrivals.reading(cfg, sorted(inventory.vms))
    for vmid in sorted(inventory.vms):
        arrived(Inventory(nodes=["pve"], guests={v: ("qemu", "pve") for v in inventory.vms}), inventory.vms[vmid])
    assert arrivals.parts == {}
    with pytest.raises(TypeError):
        build_plan(cfg, state, inventory, PlanOptions(), parts=arrivals.parts)
