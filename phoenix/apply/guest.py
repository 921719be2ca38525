"""The steps that make "converged" mean converged inside the VM: wait for the guest, reboot, revert pending.

``wait_guest`` ends a VM's chain whenever it started or rebooted the VM (and for a tainted VM): it
waits, bounded, for the agent, cloud-init and the feature runner (``phoenix.pve.guest``), reports
every feature, and fails the chain — which taints the VM in the state — when a feature failed or
the guest does not run as declared.  ``reboot`` is PVE's ``status/reboot`` (which applies pending
changes and regenerates the cloud-init drive), falling back to shutdown and start.
"""

from __future__ import annotations

import time
from typing import Any

from phoenix.diff.guest import guest_drift
from phoenix.errors import PhoenixError
from phoenix.guest.runner import INSTANCE_ID_PATH
from phoenix.plan.steps import RevertPending, Step, WaitGuest
from phoenix.pve import propstr
from phoenix.pve.client import PVEApiError
from phoenix.pve.guest import read_file, rerun_features, wait_for_guest

__all__ = ["wait_guest", "reboot", "revert_pending"]

REBOOT_START_WAIT_S = 60


def _mac(ctx: Any) -> str | None:
    net0 = ctx.config().get("net0")
    return (propstr.parse_net(net0).get("macaddr") or None) if net0 else None


def _feature_lines(facts: Any) -> list[str]:
    if facts.status is None:
        return []
    return [f"feature {f.name} ok after {f.duration_s} s" for f in facts.status.features
            if f.state == "done" and not f.failed]


def wait_guest(ctx: Any, step: WaitGuest) -> None:
    vm = ctx.vm()
    timeout = float(step.timeout)
    not_instance = ctx.instance_before_reboot if step.new_instance else None
    mac = _mac(ctx)
    facts = wait_for_guest(ctx.client, ctx.node, ctx.rc.vmid, timeout=timeout, progress=ctx.progress, mac=mac,
                           not_instance=not_instance, learn_as=",".join(vm.features))
    problems = guest_drift(vm, facts, next_boot_has_it=True)
    if step.rerun and any(p.kind == "features" for p in problems):
        ctx.progress("running the features again")
        facts = rerun_features(ctx.client, ctx.node, ctx.rc.vmid, list(vm.features), timeout=timeout,
                               progress=ctx.progress, mac=mac)
        problems = guest_drift(vm, facts, next_boot_has_it=True)
    for line in _feature_lines(facts):
        ctx.progress(line)
    failures = [p for p in problems if p.kind in ("features", "agent")]
    if failures:
        raise PhoenixError("; ".join(f"{vm.name}: {p.note or p.attribute + ' ' + str(p.actual)}" for p in failures))
    seed = [p for p in problems if p.kind == "seed"]
    if seed:
        raise PhoenixError("; ".join(f"{vm.name}: the guest reports {p.attribute} {p.actual}, declared {p.desired}"
                                     for p in seed))
    ctx.done({"power": "running"})


def reboot(ctx: Any, step: Step) -> None:
    """``status/reboot`` (pending changes applied, cloud-init drive regenerated at the new start);
    a VM that is not running is simply started, and a refused reboot becomes shutdown + start."""
    from phoenix.apply.steps import start, stop

    if ctx.status() != "running":
        start(ctx, step)
        return
    try:
        text = read_file(ctx.client, ctx.node, ctx.rc.vmid, INSTANCE_ID_PATH)
        ctx.instance_before_reboot = text.strip()[:200] if text else None
    except PVEApiError:
        ctx.instance_before_reboot = None
    ctx.progress("rebooting")
    try:
        ctx.client.run_task("POST", f"{ctx.path}/status/reboot")
    except PVEApiError as exc:
        ctx.progress(f"reboot refused ({exc.message}); shutting down and starting instead")
        stop(ctx, step)
    ctx.known_status = None
    if not _running_again(ctx):          # the reboot's own start is a separate task; it did not come
        start(ctx, step)
    ctx.known_status = "running"
    ctx.known_config = None


def _running_again(ctx: Any, timeout: float = REBOOT_START_WAIT_S) -> bool:
    """After ``qmreboot`` ends (the VM is down), PVE starts it in a separate ``qmstart`` task."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if ctx.status() == "running":
            return True
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    return False


def revert_pending(ctx: Any, step: RevertPending) -> None:
    """``revert=<keys>``: the current values stay, no reboot needed."""
    ctx.progress(f"reverting pending {', '.join(step.keys)}")
    ctx.client.put(f"{ctx.path}/config", revert=",".join(step.keys))
    ctx.known_config = None
