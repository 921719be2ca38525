"""Run a plan: each resource's chain of steps in order, independent chains in parallel.

A scheduler on the calling thread submits a chain to the worker pool only once it may run: the
chains it depends on are done (a VM's template chain; for a template deletion, every VM chain)
and both the overall bound (``--parallelism``) and its node's bound (``--per-node``) have room.
No worker ever waits for another chain, so a slow template build never holds a worker that an
unrelated VM could use.  A failure stops only its own chain and skips the chains that depend on
it; the others finish.  A finished chain's outputs (a template's agent fact) are handed to the
chains that depend on it when they are submitted.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from phoenix.apply.steps import STEPS, ApplyRuntime, ChainContext
from phoenix.plan.model import DELETE, Plan, ResourceChange
from phoenix.plan.steps import TemplateOutputs


@dataclass
class ChainResult:
    address: str
    vmid: int
    ok: bool
    seconds: float
    error: str = ""
    skipped: bool = False
    outputs: TemplateOutputs | None = None


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

    @property
    def succeeded(self) -> set[int]:
        return {c.vmid for c in self.chains if c.ok}


def dependencies(changes: list[ResourceChange]) -> dict[int, list[int]]:
    """VMID → the VMIDs whose chains must be done first (only among ``changes``)."""
    present = {rc.vmid for rc in changes}
    vms = [rc.vmid for rc in changes if rc.kind == "vm"]
    deps: dict[int, list[int]] = {}
    for rc in changes:
        wanted = [v for v in rc.depends_on if v in present]
        if rc.kind == "template" and rc.action == DELETE:
            wanted += [v for v in vms if v != rc.vmid]
        deps[rc.vmid] = wanted
    return deps


def execute(plan: Plan, runtime: ApplyRuntime, parallelism: int = 4, per_node: int | None = None) -> ApplyResult:
    """Apply every actionable resource change of ``plan``; never raises for a failed chain."""
    started = time.monotonic()
    changes = [rc for rc in plan.resource_changes if rc.actionable]
    parallelism = max(1, parallelism)
    node_limit = max(1, per_node or parallelism)
    deps = dependencies(changes)
    # Templates first, so that their chains (which others wait for) start as early as possible.
    pending = sorted(changes, key=lambda rc: rc.kind != "template" or rc.action == DELETE)
    results: dict[int, ChainResult] = {}
    running: dict[Future[ChainResult], ResourceChange] = {}
    on_node: Counter[str] = Counter()

    def schedule(pool: ThreadPoolExecutor) -> None:
        for rc in list(pending):
            done = [results.get(v) for v in deps[rc.vmid]]
            failed = next((r for r in done if r is not None and not r.ok), None)
            if failed is not None:
                pending.remove(rc)
                runtime.reporter.chain_skipped(rc, failed.address)
                results[rc.vmid] = ChainResult(rc.address, rc.vmid, ok=False, seconds=0.0, skipped=True,
                                               error=f"skipped: {failed.address} failed")
            elif None not in done and len(running) < parallelism and on_node[rc.node] < node_limit:
                pending.remove(rc)
                inputs = {v: r.outputs for v in deps[rc.vmid] if (r := results[v]).outputs is not None}
                running[pool.submit(_run_steps, rc, runtime, inputs)] = rc
                on_node[rc.node] += 1

    def collect(finished: set[Future[ChainResult]]) -> None:
        for future in finished:
            rc = running.pop(future)
            on_node[rc.node] -= 1
            results[rc.vmid] = future.result()

    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="phoenix-apply") as pool:
        try:
            while pending or running:
                schedule(pool)
                if not running:       # nothing can ever run (a dependency outside the plan's chains)
                    break
                collect(wait(running, return_when=FIRST_COMPLETED).done)
        except KeyboardInterrupt:
            # Like Terraform: let running steps finish (their state is recorded), start nothing new.
            runtime.stop.set()
            runtime.reporter.note("Interrupted: letting running steps finish; no new step starts.")
            collect(wait(running).done)
        for rc in changes:    # not only ``pending``: Ctrl-C may land between taking a chain off it and running it
            if rc.vmid not in results:
                results[rc.vmid] = ChainResult(rc.address, rc.vmid, ok=False, seconds=0.0,
                                               error=f"interrupted before {rc.steps[0].op.value}")
    return ApplyResult(chains=[results[rc.vmid] for rc in changes], seconds=time.monotonic() - started)


def _run_steps(rc: ResourceChange, runtime: ApplyRuntime, inputs: dict[int, TemplateOutputs]) -> ChainResult:
    ctx = ChainContext(runtime=runtime, rc=rc, node=rc.node, inputs=inputs)
    started = time.monotonic()
    runtime.reporter.chain_started(rc)
    for step in rc.steps:
        if runtime.stop.is_set():
            return ChainResult(rc.address, rc.vmid, ok=False, seconds=time.monotonic() - started,
                               error=f"interrupted before {step.op.value}")
        step_started = time.monotonic()
        runtime.reporter.step_started(rc, step)
        try:
            STEPS[step.op](ctx, step)
        except Exception as exc:  # noqa: BLE001 - a chain's failure is reported, never propagated
            message = str(exc) or exc.__class__.__name__
            runtime.reporter.step_failed(rc, step, message)
            if rc.kind == "vm" and rc.action != DELETE:
                runtime.journal.taint(rc.vmid, f"{step.op.value}: {message}")
            return ChainResult(rc.address, rc.vmid, ok=False, seconds=time.monotonic() - started,
                               error=f"{step.op.value}: {message}")
        runtime.reporter.step_finished(rc, step, time.monotonic() - step_started)
    seconds = time.monotonic() - started
    if rc.kind == "vm" and rc.action != DELETE:
        runtime.journal.untaint(rc.vmid)
    runtime.reporter.chain_finished(rc, seconds)
    return ChainResult(rc.address, rc.vmid, ok=True, seconds=seconds, outputs=ctx.outputs)
