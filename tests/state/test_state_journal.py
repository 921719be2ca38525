"""The state journal: O(1) appends per step, replay on read, folds, and every crash point."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from phoenix.errors import PhoenixError
from phoenix.state import ResourceState, StateStore
from phoenix.state.store import JOURNAL_MIN_FOLD_BYTES


def _vm(vmid: int, **attributes) -> ResourceState:
    return ResourceState(kind="vm", vmid=vmid, name=f"vm-{vmid}", node="pve", template_vmid=9000,
                         attributes={"cores": 2, **attributes})


def _journal_lines(store: StateStore) -> list[dict]:
    return [json.loads(line) for line in store.journal.path.read_text().splitlines()]


def test_record_appends_only_the_changed_records_and_read_replays_them(tmp_path):
    store = StateStore(tmp_path / "state.json")
    state = store.read()
    for vmid in (101, 102, 103):
        state.put(_vm(vmid))
    store.write(state)                                  # serial 1, in the file
    file_before = store.path.read_bytes()
    state.put(_vm(102, cores=4))
    store.record(state, [102])
    state.remove(103)
    store.record(state, [103])
    assert store.path.read_bytes() == file_before       # the state file is not rewritten per step
    lines = _journal_lines(store)
    assert [(line["serial"], [r["vmid"] for r in line["put"]], line["remove"]) for line in lines] == \
        [(2, [102], []), (3, [], [103])]
    assert stat.S_IMODE(store.journal.path.stat().st_mode) == 0o600
    again = StateStore(store.path).read()
    assert again.serial == 3 and sorted(again.resources) == ["101", "102"]
    assert again.get(102).attributes["cores"] == 4


def test_bytes_per_record_do_not_grow_with_the_state(tmp_path):
    """What one step writes is its own record, whether the state holds 10 VMs or 1,000."""
    sizes = {}
    for count in (10, 1000):
        store = StateStore(tmp_path / f"state-{count}.json")
        state = store.read()
        for vmid in range(1000, 1000 + count):
            state.put(_vm(vmid))
        store.write(state)
        before = store.bytes_written
        state.put(_vm(1000, cores=8))
        store.record(state, [1000])
        sizes[count] = store.bytes_written - before
    assert sizes[10] == sizes[1000]


def test_lock_release_folds_the_journal_into_the_state_file(tmp_path):
    store = StateStore(tmp_path / "state.json")
    with store.lock("apply"):
        state = store.read()
        state.put(_vm(101))
        store.record(state, [101])
        assert store.journal.exists() and not store.path.exists()
    assert not store.journal.exists()
    on_disk = json.loads(store.path.read_text())
    assert on_disk["serial"] == 1 and list(on_disk["resources"]) == ["101"]
    assert StateStore(store.path).read().serial == 1    # folding does not count as a change


def test_journal_folds_when_it_outgrows_the_state(tmp_path):
    store = StateStore(tmp_path / "state.json")
    state = store.read()
    state.put(_vm(101))
    store.write(state)
    big = "x" * 4096
    for round_ in range(JOURNAL_MIN_FOLD_BYTES // 4096 + 2):
        state.put(_vm(101, note=f"{round_}{big}"))
        store.record(state, [101])
    assert store.journal.size < JOURNAL_MIN_FOLD_BYTES
    assert json.loads(store.path.read_text())["serial"] > 1
    assert StateStore(store.path).read().get(101).attributes["note"].startswith(str(round_))


def test_torn_last_line_is_ignored_and_the_next_run_folds_it_away(tmp_path):
    store = StateStore(tmp_path / "state.json")
    state = store.read()
    state.put(_vm(101))
    store.record(state, [101])
    state.put(_vm(102))
    store.record(state, [102])
    store.journal.close()
    data = store.journal.path.read_bytes()
    store.journal.path.write_bytes(data[:-25])          # the crash tore the second line
    recovered = StateStore(store.path).read()
    assert sorted(recovered.resources) == ["101"] and recovered.serial == 1
    # The next run's first record writes the whole state: no new line after the torn one.
    next_store = StateStore(store.path)
    state = next_store.read()
    state.put(_vm(103))
    next_store.record(state, [103])
    assert not next_store.journal.exists()
    assert sorted(StateStore(store.path).read().resources) == ["101", "103"]


def test_damaged_line_before_complete_ones_is_refused(tmp_path):
    store = StateStore(tmp_path / "state.json")
    state = store.read()
    for vmid in (101, 102):
        state.put(_vm(vmid))
        store.record(state, [vmid])
    store.journal.close()
    lines = store.journal.path.read_bytes().split(b"\n")
    store.journal.path.write_bytes(lines[0][:20] + b"\n" + lines[1] + b"\n")
    with pytest.raises(PhoenixError, match=r"line 1 is damaged"):
        StateStore(store.path).read()


def test_journal_of_another_lineage_or_a_secret_is_refused(tmp_path):
    store = StateStore(tmp_path / "state.json")
    state = store.read()
    store.write(state)
    entry = {"format_version": 1, "lineage": "someone-else", "serial": 5, "put": [], "remove": []}
    store.journal.path.write_text(json.dumps(entry) + "\n")
    with pytest.raises(PhoenixError, match="belongs to lineage someone-else"):
        store.read()
    record = _vm(101).model_dump(mode="json")
    record["attributes"]["cipassword"] = "hunter2"
    entry.update(lineage=state.lineage, put=[record])
    store.journal.path.write_text(json.dumps(entry) + "\n")
    with pytest.raises(PhoenixError, match=r"line 1 is invalid at put.attributes") as raised:
        store.read()
    assert "hunter2" not in str(raised.value)


def test_lines_already_folded_are_skipped(tmp_path):
    """A crash between writing the folded state file and emptying the journal."""
    store = StateStore(tmp_path / "state.json")
    state = store.read()
    state.put(_vm(101))
    store.record(state, [101])
    state.remove(101)
    state.put(_vm(102))
    store.record(state, [101, 102])
    journal = store.journal.path.read_bytes()
    store.fold(state)
    store.journal.path.write_bytes(journal)              # the journal survived the fold
    again = StateStore(store.path).read()
    assert again.serial == 2 and sorted(again.resources) == ["102"]


KILLED_WRITER = textwrap.dedent("""
    import sys
    from phoenix.state import ResourceState, StateStore
    store = StateStore(sys.argv[1])
    with store.lock("apply"):
        state = store.read()
        vmid = 100
        while True:
            vmid += 1
            state.put(ResourceState(kind="vm", vmid=vmid, name=f"vm-{vmid}", node="pve"))
            store.record(state, [vmid])
            print(vmid, flush=True)
""")


@pytest.mark.parametrize("after", [1, 40, 400])
def test_sigkill_during_records_loses_nothing_that_was_reported(tmp_path, after):
    """Every record the writer reported as done before SIGKILL is there after replay (folds included)."""
    path = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        reported = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            reported = int(line)
            if reported >= 100 + after:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    store = StateStore(path)
    state = store.read()
    vmids = sorted(int(key) for key in state.resources)
    assert vmids == list(range(101, vmids[-1] + 1)) and vmids[-1] >= reported
    with store.lock("apply"):                            # the next run takes over and folds
        state = store.read()
        state.put(_vm(99))
        store.record(state, [99])
    assert not store.journal.exists()
    assert len(json.loads(path.read_text())["resources"]) == len(vmids) + 1
