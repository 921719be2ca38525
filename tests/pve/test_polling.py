"""Poll intervals that learn: the schedule around an expected duration, and what a wait records."""

from __future__ import annotations

from itertools import islice

import pytest
from hypothesis import given, strategies as st

from phoenix.pve import polling
from phoenix.pve.client import PVEClient
from phoenix.pve.guest import wait_for_guest
from phoenix.pve.polling import EARLY, FINE, FINE_MIN, FIRST, GROWTH, MAX_INTERVAL, DurationLearner, LearnedWait
from tests.pve.conftest import create_guest_vm


def test_nothing_learned_polls_geometrically():
    sleeps = list(islice(DurationLearner().intervals("qmclone"), 40))
    assert sleeps[0] == FIRST
    assert all(b == pytest.approx(min(a * GROWTH, MAX_INTERVAL)) for a, b in zip(sleeps, sleeps[1:]))
    assert sleeps[-1] == MAX_INTERVAL


def test_one_duration_is_not_yet_an_expectation():
    learner = DurationLearner()
    learner.record("qmstart", 2.0)
    assert learner.expected("qmstart") is None
    learner.record("qmstart", 4.0)
    assert learner.expected("qmstart") == 3.0


def test_learned_schedule_looks_just_before_then_finely():
    learner = DurationLearner()
    for seconds in (1.0, 1.0, 1.0):
        learner.record("qmclone", seconds)
    sleeps = list(islice(learner.intervals("qmclone"), 20))
    assert sleeps[0] == pytest.approx(EARLY)
    assert sleeps[1:5] == [pytest.approx(FINE)] * 4


@given(expected=st.floats(0.06, 600), elapsed=st.floats(0, 900), max_interval=st.floats(0.5, 5))
def test_learned_schedule_covers_the_expectation_then_falls_back(expected, elapsed, max_interval):
    """Whatever was learned and however long ago the thing started: every sleep is positive and at
    most ``max_interval`` (a wait that ends far sooner than the learned ones is still noticed as soon
    as without learning), the polls pass 1.5x the expectation and then grow geometrically from FIRST."""
    learner = DurationLearner()
    learner.record("k", expected)
    learner.record("k", expected)
    waited, sleeps = elapsed, []
    for sleep in learner.intervals("k", elapsed=elapsed, max_interval=max_interval):
        assert 0 < sleep <= max_interval
        sleeps.append(sleep)
        waited += sleep
        if waited >= 1.5 * expected and sleep == FIRST:
            break
        assert len(sleeps) < 100 + 3 * expected / FINE_MIN    # it ends
    assert waited >= 1.5 * expected


def test_a_wait_records_the_midpoint_of_its_last_miss_and_its_hit(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(polling.time, "monotonic", lambda: now[0])
    learner = DurationLearner()
    for last_miss, hit in ((1.0, 1.2), (0.7, 0.8)):     # ended within 1.0-1.2 s, then 0.7-0.8 s
        start = now[0]
        wait = LearnedWait(learner, "resize")
        now[0] = start + last_miss
        wait.missed()
        now[0] = start + hit
        wait.hit()
    assert learner.expected("resize") == pytest.approx((1.1 + 0.75) / 2)


def test_done_at_the_first_look_teaches_nothing():
    learner = DurationLearner()
    for _ in range(3):
        LearnedWait(learner, "qmstart").hit()
    assert learner.expected("qmstart") is None


def test_waiting_for_guests_learns_the_agent_and_cloud_init_per_feature_set(fresh_sim, token_settings):
    """Two VMs started one after the other: the agent's and cloud-init's durations are remembered,
    cloud-init's under the features the guest runs, so a guest with other features is not
    expected to take as long.  (Features take 2 s x 0.1 each here: cloud-init is never done at
    the first look after the agent answered, which teaches nothing.)"""
    with fresh_sim(task_scale=0.1) as server, PVEClient.connect(token_settings(server)) as client:
        for vmid in (101, 102):
            create_guest_vm(client, server, vmid, ipconfig0="ip=dhcp")
            client.run_task("POST", f"/nodes/pve/qemu/{vmid}/status/start")
            wait_for_guest(client, "pve", vmid, timeout=30, learn_as="base,docker")
        agent = client.durations.expected("guest agent")
        assert agent is not None and 0 < agent < 2.0        # the agent answers 3 s x 0.1 after start
        cloud_init = client.durations.expected("cloud-init base,docker")
        assert cloud_init is not None and 0.2 < cloud_init < 3.0
        assert client.durations.expected("cloud-init base") is None
