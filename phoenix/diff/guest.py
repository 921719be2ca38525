"""Drift inside the guest: what the VM runs with, against what the file declares.

PVE's config can match the file while the guest still runs an older cloud-init seed (a changed
``ipconfig0`` reaches the guest only at its next boot) or while a feature failed.  These are
compared here from :class:`phoenix.pve.guest.GuestFacts`: the IPv4 address on the NIC with the
declared MAC, the host name, and the feature runner's results for the current instance-id.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from phoenix.guest.runner import FeatureResult

__all__ = ["GuestDrift", "guest_drift", "feature_failure_line", "NEXT_BOOT"]

NEXT_BOOT = "takes effect at the next boot"


@dataclass(frozen=True)
class GuestDrift:
    """One difference inside the guest.  ``kind``: ``seed`` (needs a boot with the current drive),
    ``features`` (run the feature runner again), ``agent`` (the guest did not answer)."""

    attribute: str
    actual: Any
    desired: Any
    kind: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def feature_failure_line(feature: FeatureResult) -> str:
    """``feature docker failed (exit 6) after 165 s — curl: (6) Could not resolve host: …``"""
    tail = feature.last_line
    after = f" after {feature.duration_s} s" if feature.duration_s is not None else ""
    return f"feature {feature.name} failed (exit {feature.exit_code}){after}" + (f" — {tail}" if tail else "")


def guest_drift(vm: Any, facts: Any, *, next_boot_has_it: bool = True) -> list[GuestDrift]:
    """Differences between ``vm`` (a ``VMSpec``) and what its guest reports (``GuestFacts``).

    ``next_boot_has_it``: PVE's config already holds the declared cloud-init values, so a reboot
    alone brings them into the guest (the note says so)."""
    if not facts.agent:
        return [GuestDrift("agent", "not answering", "answering", "agent", facts.problem or "")]
    note = NEXT_BOOT if next_boot_has_it else ""
    drift: list[GuestDrift] = []
    if facts.hostname is not None and facts.hostname != vm.hostname:
        drift.append(GuestDrift("hostname", facts.hostname, vm.hostname, "seed", note))
    if not vm.network.is_dhcp and vm.network.ip not in facts.ipv4:
        drift.append(GuestDrift("ipv4", facts.ipv4[0] if len(facts.ipv4) == 1 else list(facts.ipv4) or None,
                                vm.network.ip, "seed", note))
    if facts.problem:
        drift.append(GuestDrift("features", facts.problem, "all succeeded", "features"))
        return drift
    status = facts.status
    if not facts.cloud_init_done:
        drift.append(GuestDrift("cloud-init", "running", "done", "features"))
    elif status is None or not facts.features_current:
        ran = "never" if status is None else "under an older instance-id"
        drift.append(GuestDrift("features", f"runner {ran}", "all succeeded", "features"))
    elif not status.done:
        drift.append(GuestDrift("features", "runner did not finish", "all succeeded", "features"))
    else:
        for feature in status.failed:
            drift.append(GuestDrift(f"feature {feature.name}", "failed", "succeeded", "features",
                                    feature_failure_line(feature)))
        missing = [name for name in dict.fromkeys(vm.features) if name not in {f.name for f in status.features}]
        if missing:
            drift.append(GuestDrift("features", f"not run: {', '.join(missing)}", "all succeeded", "seed", note))
        # The runner's own failure shows in cloud-init's errors as scripts_user/runcmd; once the runner
        # succeeded (run again through the agent) only the other modules' errors still count.
        others = [e for e in facts.cloud_init_errors if "scripts_user" not in e and "runcmd" not in e]
        if not status.failed and others:
            drift.append(GuestDrift("cloud-init", "error", "done", "features", others[0]))
    return drift
