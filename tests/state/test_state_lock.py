"""The state lock across real processes: contention fails at once, crashes leave no block."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time
import types

import pytest

from phoenix.errors import PhoenixError
from phoenix.state import StateStore
from phoenix.state import lock as lock_module

HOLDER = textwrap.dedent("""
    import sys, time
    from phoenix.state import StateStore
    store = StateStore(sys.argv[1])
    with store.lock(sys.argv[2]) as info:
        print(info.id, flush=True)
        if sys.argv[3] == "crash":
            import os; os._exit(3)
        time.sleep(60)
""")


def _start_holder(path, operation="apply", mode="hold"):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), operation, mode],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    lock_id = proc.stdout.readline().strip()
    assert lock_id, "holder process did not take the lock"
    return proc, lock_id


@pytest.fixture
def holder(tmp_path):
    procs = []

    def start(mode="hold"):
        proc, lock_id = _start_holder(tmp_path / "state.json", mode=mode)
        procs.append(proc)
        return proc, lock_id

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_second_holder_fails_at_once_naming_the_first(tmp_path, holder, monkeypatch):
    proc, lock_id = holder()
    store = StateStore(tmp_path / "state.json")
    # "At once": every flock the second holder tries is non-blocking (observed, not timed).
    flags: list[int] = []
    monkeypatch.setattr(lock_module, "fcntl", types.SimpleNamespace(
        **{name: getattr(fcntl, name) for name in dir(fcntl) if not name.startswith("_") and name != "flock"},
        flock=lambda fd, op: (flags.append(op), fcntl.flock(fd, op))[1]))
    with pytest.raises(PhoenixError) as excinfo:
        with store.lock("plan"):
            pass
    assert flags and all(op & fcntl.LOCK_NB for op in flags if op != fcntl.LOCK_UN)
    message = str(excinfo.value)
    assert lock_id in message and f"pid {proc.pid}" in message and "'apply'" in message and "@" in message
    assert store.lock_holder().id == lock_id


def test_lock_is_free_after_holder_exits_normally(tmp_path):
    store = StateStore(tmp_path / "state.json")
    with store.lock("apply") as info:
        assert store.lock_holder() == info
        assert os.stat(store.lock_path).st_mode & 0o777 == 0o600
    assert not store.lock_path.exists()
    with store.lock("apply"):
        pass


def test_crashed_holder_leaves_a_stale_note_that_is_taken_over(tmp_path, holder, caplog):
    proc, lock_id = holder(mode="crash")
    assert proc.wait(timeout=10) == 3
    store = StateStore(tmp_path / "state.json")
    assert store.lock_holder().id == lock_id  # the note survived the crash
    with caplog.at_level("WARNING"):
        with store.lock("apply") as info:
            assert info.id != lock_id
    assert lock_id in caplog.text and "stale" in caplog.text


def test_force_unlock_needs_the_matching_id_and_frees_a_hung_holder(tmp_path, holder):
    proc, lock_id = holder()
    store = StateStore(tmp_path / "state.json")
    with pytest.raises(PhoenixError, match="does not match"):
        store.force_unlock("not-the-id")
    assert store.force_unlock(lock_id).pid == proc.pid
    with store.lock("apply") as info:  # the hung process still holds a lock on the unlinked file
        assert store.lock_holder() == info
    with pytest.raises(PhoenixError, match="no lock"):
        store.force_unlock(lock_id)


def test_same_process_cannot_nest_the_lock(tmp_path):
    store = StateStore(tmp_path / "state.json")
    with store.lock("apply") as info:
        with pytest.raises(PhoenixError, match=info.id):
            with store.lock("apply"):
                pass
