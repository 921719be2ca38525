"""Guest drift: what the guest reports against the declared VM."""

from __future__ import annotations

from pathlib import Path

from phoenix.desired import load_desired
from phoenix.diff.guest import NEXT_BOOT, feature_failure_line, guest_drift
from phoenix.guest.runner import parse_status
from phoenix.pve.guest import GuestFacts

EXAMPLE = Path(__file__).resolve().parents[2] / "desired" / "phoenix_vm_configs.json"


def status(*features: tuple[str, int], instance: str = "iid-1") -> str:
    import json

    return json.dumps({"format": 1, "instance_id": instance, "state": "done", "started": "t", "finished": "t",
                       "exit_code": 1 if any(c for _, c in features) else 0,
                       "features": [{"name": n, "state": "done", "exit_code": c, "started": "t", "duration_s": 165,
                                     "log_tail": ["x", "curl: (6) Could not resolve host: download.docker.com"]}
                                    for n, c in features]})


def facts(**overrides) -> GuestFacts:
    values = dict(vmid=8001, agent=True, hostname="docker-vm-01", ipv4=("10.0.0.101/24",), instance_id="iid-1",
                  cloud_init_done=True, status=parse_status(status(("base", 0), ("docker", 0))))
    values.update(overrides)
    return GuestFacts(**values)


def vm():
    return load_desired(EXAMPLE).vm(8001)


def test_a_converged_guest_has_no_drift():
    assert guest_drift(vm(), facts()) == []


def test_an_old_address_takes_effect_at_the_next_boot():
    (drift,) = guest_drift(vm(), facts(ipv4=("10.0.0.111/24",)))
    assert (drift.attribute, drift.actual, drift.desired, drift.kind, drift.note) == (
        "ipv4", "10.0.0.111/24", "10.0.0.101/24", "seed", NEXT_BOOT)


def test_a_failed_feature_names_exit_code_duration_and_log_tail():
    (drift,) = guest_drift(vm(), facts(status=parse_status(status(("base", 0), ("docker", 6)))))
    assert drift.kind == "features" and drift.note == (
        "feature docker failed (exit 6) after 165 s — curl: (6) Could not resolve host: download.docker.com")
    assert feature_failure_line(parse_status(status(("docker", 6))).features[0]) == drift.note


def test_a_silent_agent_and_an_old_instance():
    (drift,) = guest_drift(vm(), facts(agent=False, problem="QEMU guest agent is not running"))
    assert drift.kind == "agent" and drift.note == "QEMU guest agent is not running"
    (drift,) = guest_drift(vm(), facts(instance_id="iid-2"))
    assert drift.kind == "features" and "older instance-id" in drift.actual
