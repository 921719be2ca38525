"""Plan rules for what runs inside the VM: pending values, cloud-init reboots, tainted VMs, guest drift.

* Pending values (``GET /pending``): desired = current but a pending value differs → revert it (no
  reboot); desired = pending ≠ current → written already, it waits for a reboot; else write it.
* A cloud-init change (``ipconfig0``, keys, user, DNS, user-data) reaches a VM that has booted only
  at its next boot, with a new instance-id: like a CPU change it is held back unless
  ``--allow-reboot``; with it the VM is rebooted and phoenix waits for the new instance's results.
* A tainted VM (its last apply failed) and guest drift (``plan --guest``) end the chain with
  ``wait_guest``, which re-runs failed features; an older seed in the guest needs a reboot.
"""

from __future__ import annotations

from typing import Any

from phoenix.diff.attributes import BY_NAME, CLOUDINIT, STATE_TRACKED
from phoenix.diff.engine import AttributeChange
from phoenix.plan.steps import Reboot, Start, Step, WaitGuest

__all__ = ["pending_cases", "reboot_for_cloudinit", "finish_with_guest", "guest_entries", "DEFAULT_GUEST_TIMEOUT_S"]

DEFAULT_GUEST_TIMEOUT_S = 900
CLOUDINIT_CHANGES = CLOUDINIT | {"user_data"}


def pending_cases(desired: dict[str, Any], actual: dict[str, Any], pending_actual: dict[str, Any],
                  changed: set[str]) -> tuple[set[str], dict[str, tuple[Any, Any]]]:
    """``(waiting, reverts)``: changed attributes whose declared value is already pending (they wait
    for a reboot), and unchanged ones with a different pending value (attribute → (pending, current)).
    ``pending_actual`` is ``actual`` itself when nothing is pending: then there are none of either."""
    if pending_actual is actual:
        return set(), {}
    waiting = {k for k in changed if k not in STATE_TRACKED and k in BY_NAME and BY_NAME[k].pve_keys
               and pending_actual.get(k) == desired.get(k) and actual.get(k) != desired.get(k)}
    reverts = {k: (pending_actual.get(k), actual.get(k)) for k in desired
               if k not in changed and k in BY_NAME and BY_NAME[k].pve_keys and k not in STATE_TRACKED
               and pending_actual.get(k) != actual.get(k)}
    return waiting, reverts


def revert_keys(reverts: dict[str, tuple[Any, Any]]) -> list[str]:
    return sorted({key for name in reverts for key in BY_NAME[name].pve_keys})


def revert_changes(reverts: dict[str, tuple[Any, Any]]) -> list[AttributeChange]:
    return [AttributeChange(f"{name} (pending)", pending, current) for name, (pending, current) in sorted(reverts.items())]


def reboot_for_cloudinit(changed: set[str], running: bool) -> list[str]:
    """The cloud-init attributes of a running VM's change: the guest sees them only after a reboot."""
    return sorted(changed & CLOUDINIT_CHANGES) if running else []


def _last_wait(steps: list[Step]) -> WaitGuest | None:
    return steps[-1] if steps and isinstance(steps[-1], WaitGuest) else None


def finish_with_guest(steps: list[Step], timeout: int, *, rerun: bool = False, reboot: bool = False,
                      start: bool = False) -> list[Step]:
    """End a chain with one ``wait_guest`` (merging what the callers asked for)."""
    last = _last_wait(steps)
    new_instance = bool(last and last.new_instance)
    rerun = rerun or bool(last and last.rerun)
    if last is not None:
        steps = steps[:-1]
    if reboot and not any(isinstance(s, Reboot) for s in steps):
        steps = steps + [Reboot()]
        new_instance = True
    elif start and not any(isinstance(s, (Start, Reboot)) for s in steps):
        steps = steps + [Start()]
    return steps + [WaitGuest(timeout=timeout, rerun=rerun, new_instance=new_instance)]


def guest_entries(address: str, vmid: int, drift: list[Any]) -> list[dict[str, Any]]:
    """Plain entries for the plan's ``guest_drift`` (rendered, saved with ``--out``)."""
    return [{"address": address, "vmid": vmid, **d.to_json()} for d in drift]
