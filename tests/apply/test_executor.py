"""The executor against the simulator: a chain is submitted only once its dependencies are done, so a
template being built never holds a worker an unrelated VM could use; a template chain's output (is the
guest agent in its image) reaches the VM chains that clone it through the plan's typed steps.

No wall-clock assertion: the template build *waits* until the unrelated VM's chain has started. An
executor that parked the dependent VM chain in the second worker would never start it, and the wait
would give up (the test then fails on the recorded timeout, not on a duration).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import yaml

from phoenix.apply.delivery import SnippetDelivery
from phoenix.apply.executor import execute
from phoenix.apply.journal import Journal
from phoenix.apply.steps import STEPS, ApplyRuntime
from phoenix.desired import load_desired
from phoenix.plan.build import build_plan
from phoenix.plan.steps import DeliverUserData, Op
from phoenix.pve.inventory import read_inventory
from phoenix.state.store import StateStore
from phoenix.template.provision import ensure_template
from phoenix.template.report import RecordingReporter
from phoenix.template.simulated import OfflineStandIns

from tests.template.test_provision import make_spec

GIVE_UP_S = 60


class Events:
    """Records chain events in order; ``started(address)`` can be awaited."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._started: dict[str, threading.Event] = {}

    def started(self, address: str) -> threading.Event:
        with self._lock:
            return self._started.setdefault(address, threading.Event())

    def _add(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def chain_started(self, rc):
        self._add(f"start {rc.address}")
        self.started(rc.address).set()

    def chain_finished(self, rc, seconds):
        self._add(f"done {rc.address}")

    def chain_skipped(self, rc, because):
        self._add(f"skip {rc.address}")

    def step_failed(self, rc, step, message):
        self._add(f"fail {rc.address} {step.op}: {message}")

    def step_started(self, rc, step): ...
    def step_finished(self, rc, step, seconds): ...
    def progress(self, rc, message): ...
    def note(self, message): ...

SOMEONE = "0f0f0f0f-0000-4000-8000-0000000000aa"      # the state (or person) that built template 9000

def test_every_op_has_a_handler():
    assert set(STEPS) == set(Op)


def test_a_slow_template_build_does_not_hold_back_an_unrelated_vm(sim_server, client, tmp_path):
    # Template 9000 exists already (built by PVE's own download: no agent in the image); 8000 is built
    # by this apply (customised: agent baked).  vm.8001 clones 8000, vm.8002 clones 9000.
    ensure_template(client, make_spec("https://example.invalid/noble.img", checksum="ab" * 32, delivery="pve"),
                    cache_dir=tmp_path / "cache", reporter=RecordingReporter(), stand_ins=OfflineStandIns(), owner=SOMEONE)
    config = _desired(tmp_path)
    cfg = load_desired(config, existing_templates=frozenset({9000}))
    store = StateStore(tmp_path / "state" / "phoenix.state.json")
    state = store.read()
    wanted = [8000, 8001, 8002, 9000]
    plan = build_plan(cfg, state, read_inventory(client, wanted))
    deliver = {rc.vmid: next(s for s in rc.steps if isinstance(s, DeliverUserData)) for rc in plan.resource_changes
               if rc.kind == "vm"}
    assert deliver[8001].agent_baked is None and deliver[8002].agent_baked is False   # known after / known now

    events = Events()
    waited: list[bool] = []

    def provision(client_, spec, reporter):
        waited.append(events.started("vm.8002").wait(GIVE_UP_S))
        return ensure_template(client_, spec, cache_dir=tmp_path / "cache", reporter=reporter,
                               stand_ins=OfflineStandIns(), owner=state.lineage)

    model = sim_server.sim.model
    runtime = ApplyRuntime(client=client, cfg=cfg, journal=Journal(store, state), reporter=events,
                           snippets=SnippetDelivery(cfg, client, lambda node, storage: model.storage_root(storage, node)),
                           provision_template=provision)
    result = execute(plan, runtime, parallelism=2)

    assert result.ok, [c.error for c in result.chains]
    assert waited == [True], "vm.8002 never started while template.8000 was being built"
    lines = events.lines
    assert lines.index("start vm.8002") < lines.index("done template.8000") < lines.index("start vm.8001")
    snippets = model.storage_root("local", "pve") / "snippets"
    user_data = {vmid: yaml.safe_load((snippets / f"phoenix-{vmid}-user.yaml").read_text()) for vmid in (8001, 8002)}
    assert "packages" not in user_data[8001]                       # template.8000's chain said: baked
    assert user_data[8002]["packages"] == ["qemu-guest-agent"]     # template 9000's tags said: not baked


def test_a_failed_template_skips_its_vms_and_not_the_others(sim_server, client, tmp_path):
    ensure_template(client, make_spec("https://example.invalid/noble.img", checksum="ab" * 32, delivery="pve"),
                    cache_dir=tmp_path / "cache", reporter=RecordingReporter(), stand_ins=OfflineStandIns(), owner=SOMEONE)
    cfg = load_desired(_desired(tmp_path), existing_templates=frozenset({9000}))
    store = StateStore(tmp_path / "state" / "phoenix.state.json")
    state = store.read()
    plan = build_plan(cfg, state, read_inventory(client, [8000, 8001, 8002, 9000]))
    events = Events()

    def provision(client_, spec, reporter):
        raise RuntimeError("image server unreachable")

    model = sim_server.sim.model
    runtime = ApplyRuntime(client=client, cfg=cfg, journal=Journal(store, state), reporter=events,
                           snippets=SnippetDelivery(cfg, client, lambda node, storage: model.storage_root(storage, node)),
                           provision_template=provision)
    result = execute(plan, runtime, parallelism=1)
    by_vmid = {c.vmid: c for c in result.chains}
    assert by_vmid[8000].error == "provision_template: image server unreachable"
    assert by_vmid[8001].skipped and by_vmid[8001].error == "skipped: template.8000 failed"
    assert by_vmid[8002].ok


def _desired(tmp_path: Path) -> Path:
    example = Path(__file__).resolve().parents[2] / "desired"
    data = json.loads((example / "phoenix_vm_configs.json").read_text())
    for vm in data["vms"]:
        vm["start"] = False
    data["vms"][1]["clone_from_vmid"] = 9000
    target = tmp_path / "desired"
    target.mkdir()
    (target / "phoenix_vm_configs.json").write_text(json.dumps(data))
    if (example / "features").is_dir():
        import shutil

        shutil.copytree(example / "features", target / "features")
    return target / "phoenix_vm_configs.json"
