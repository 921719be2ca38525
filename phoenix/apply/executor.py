"""Run a plan: each resource's chain of steps in order, independent chains in parallel.

Parallelism is bounded overall (``--parallelism``) and per node, VM chains wait for the chain of
the template they clone from, and template deletions wait for every VM chain.  A failure stops
only its own chain (and the chains that depend on it); the others finish.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from phoenix.apply.steps import STEPS, ApplyRuntime, ChainContext
from phoenix.plan.model import DELETE, Plan, ResourceChange


@dataclass
class ChainResult:
    address: str
    vmid: int
    ok: bool
    seconds: float
    error: str = ""
    skipped: bool = False
    steps_done: list[str] = field(default_factory=list)


@dataclass
class ApplyResult:
    chains: list[ChainResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[ChainResult]:
        return [c for c in self.chains if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failed


def execute(plan: Plan, runtime: ApplyRuntime, parallelism: int = 4, per_node: int | None = None) -> ApplyResult:
    """Apply every actionable resource change of ``plan``; never raises for a failed chain."""
    started = time.monotonic()
    changes = [rc for rc in plan.resource_changes if rc.actionable]
    parallelism = max(1, parallelism)
    node_limit = max(1, per_node or parallelism)
    node_slots: dict[str, threading.BoundedSemaphore] = {}
    slots_lock = threading.Lock()
    futures: dict[int, Future[ChainResult]] = {}

    def slot(node: str) -> threading.BoundedSemaphore:
        with slots_lock:
            return node_slots.setdefault(node, threading.BoundedSemaphore(node_limit))

    def dependencies(rc: ResourceChange) -> list[Future[ChainResult]]:
        deps = [futures[v] for v in rc.depends_on if v in futures]
        if rc.kind == "template" and rc.action == DELETE:
            deps += [f for v, f in futures.items() if v != rc.vmid and _kind(changes, v) == "vm"]
        return deps

    def run_chain(rc: ResourceChange, deps: list[Future[ChainResult]]) -> ChainResult:
        for dep in deps:
            result = dep.result()
            if not result.ok:
                runtime.reporter.chain_skipped(rc, result.address)
                return ChainResult(rc.address, rc.vmid, ok=False, seconds=0.0, skipped=True,
                                   error=f"skipped: {result.address} failed")
        with slot(rc.node):
            return _run_steps(rc, runtime)

    # Templates first so that their chains get workers before the VM chains that wait on them.
    ordered = sorted(changes, key=lambda rc: (rc.kind != "template" or rc.action == DELETE, 0))
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="phoenix-apply") as pool:
        for rc in ordered:
            futures[rc.vmid] = pool.submit(run_chain, rc, dependencies(rc))
        try:
            results = [futures[rc.vmid].result() for rc in changes]
        except KeyboardInterrupt:
            # Like Terraform: let running steps finish (their state is recorded), start nothing new.
            runtime.stop.set()
            runtime.reporter.note("Interrupted: letting running steps finish; no new step starts.")
            results = [futures[rc.vmid].result() for rc in changes]
    return ApplyResult(chains=results, seconds=time.monotonic() - started)


def _run_steps(rc: ResourceChange, runtime: ApplyRuntime) -> ChainResult:
    ctx = ChainContext(runtime=runtime, rc=rc, node=rc.node)
    started = time.monotonic()
    done: list[str] = []
    runtime.reporter.chain_started(rc)
    for step in rc.steps:
        if runtime.stop.is_set():
            return ChainResult(rc.address, rc.vmid, ok=False, seconds=time.monotonic() - started,
                               error=f"interrupted before {step.op}", steps_done=done)
        step_started = time.monotonic()
        runtime.reporter.step_started(rc, step)
        try:
            STEPS[step.op](ctx, step)
        except Exception as exc:  # noqa: BLE001 - a chain's failure is reported, never propagated
            message = str(exc) or exc.__class__.__name__
            runtime.reporter.step_failed(rc, step, message)
            return ChainResult(rc.address, rc.vmid, ok=False, seconds=time.monotonic() - started,
                               error=f"{step.op}: {message}", steps_done=done)
        done.append(step.op)
        runtime.reporter.step_finished(rc, step, time.monotonic() - step_started)
    if runtime.journal.state.get(rc.vmid) is not None:
        runtime.journal.complete(rc.vmid)
    seconds = time.monotonic() - started
    runtime.reporter.chain_finished(rc, seconds)
    return ChainResult(rc.address, rc.vmid, ok=True, seconds=seconds, steps_done=done)


def _kind(changes: list[ResourceChange], vmid: int) -> str:
    return next((rc.kind for rc in changes if rc.vmid == vmid), "")
