"""Tasks, UPIDs, task logs and the VM flock emulation (behaviors.md §3, §5)."""

from __future__ import annotations

import threading
import time

import pytest
from proxmoxer.core import ResourceException
from proxmoxer.tools import Tasks

from phoenix.sim.core import PVEError
from phoenix.sim.tasks import UPID_RE


def _until_stopped(task) -> None:
    for _ in range(3000):
        task.sleep(0)
        time.sleep(0.01)


def _spawn_done(sim, type_="qmcreate", id_="100", work=lambda task: None, node="pve"):
    upid = sim.tasks.spawn(node, type_, id_, "root@pam!phoenix", work)
    sim.tasks.wait(upid, 5)
    return upid


def test_upids_have_pves_layout_and_unique_pids(sim_server):
    upids = [_spawn_done(sim_server.sim, "qmclone", "9000") for _ in range(5)]
    upload = _spawn_done(sim_server.sim, "imgcopy", "")
    for upid in upids + [upload]:
        assert UPID_RE.match(upid) and upid.endswith(":") and len(upid.split(":")) == 9
        assert upid.split(":")[2] == upid.split(":")[2].upper()
        decoded = Tasks.decode_upid(upid)
        assert decoded["node"] == "pve" and decoded["user"] == "root@pam"
    assert len({Tasks.decode_upid(u)["pid"] for u in upids}) == 5
    assert ":imgcopy::root@pam!phoenix:" in upload


def test_blocking_status_and_ok_log(proxmox, sim_server):
    upid = _spawn_done(sim_server.sim, work=lambda task: task.log("creating disk\nsecond line"))
    status = Tasks.blocking_status(proxmox, upid, timeout=10, polling_interval=0.05)
    assert status["status"] == "stopped" and status["exitstatus"] == "OK"
    assert {"pid", "pstart", "starttime", "type", "id", "user", "node", "upid"} <= set(status)
    assert proxmox.nodes("pve").tasks(upid).log.get() == [
        {"n": 1, "t": "creating disk"}, {"n": 2, "t": "second line"}, {"n": 3, "t": "TASK OK"}]


def test_failed_task_exitstatus_and_log(proxmox, sim_server):
    def fail(task):
        raise PVEError("clone failed: disk\nbroken\n")

    upid = _spawn_done(sim_server.sim, "qmclone", "9000", fail)
    status = proxmox.nodes("pve").tasks(upid).status.get()
    assert status["exitstatus"] == "clone failed: disk broken"
    assert proxmox.nodes("pve").tasks(upid).log.get()[-1]["t"] == "TASK ERROR: clone failed: disk broken"


def test_running_task_has_no_exitstatus_and_can_be_stopped(proxmox, sim_server):
    upid = sim_server.sim.tasks.spawn("pve", "qmstart", "100", "root@pam!phoenix", _until_stopped)
    status = proxmox.nodes("pve").tasks(upid).status.get()
    assert status["status"] == "running" and "exitstatus" not in status
    assert proxmox.nodes("pve").tasks(upid).log.get() == [{"n": 1, "t": "no content"}]
    proxmox.nodes("pve").tasks(upid).delete()
    task = sim_server.sim.tasks.wait(upid, 5)
    assert task.exitstatus == "received interrupt"


def test_log_paging_and_total(sim_server):
    import requests

    upid = _spawn_done(sim_server.sim, work=lambda task: [task.log(f"line {i}") for i in range(10)])
    response = requests.get(f"{sim_server.endpoint}/api2/json/nodes/pve/tasks/{upid}/log", params={"start": 3, "limit": 2},
                            headers={"Authorization": f"PVEAPIToken={sim_server.api_token}"},
                            verify=sim_server.ca_file, timeout=10)
    assert response.json() == {"data": [{"n": 4, "t": "line 3"}, {"n": 5, "t": "line 4"}], "total": 11}
    everything = requests.get(f"{sim_server.endpoint}/api2/json/nodes/pve/tasks/{upid}/log", params={"limit": 0},
                              headers={"Authorization": f"PVEAPIToken={sim_server.api_token}"},
                              verify=sim_server.ca_file, timeout=10).json()
    assert len(everything["data"]) == 11


def test_task_list_sources_filters_and_total(proxmox, sim_server):
    sim = sim_server.sim
    _spawn_done(sim, "qmcreate", "100")
    _spawn_done(sim, "qmclone", "9000")
    _spawn_done(sim, "qmclone", "9000", lambda task: (_ for _ in ()).throw(PVEError("boom\n")))
    _spawn_done(sim, "qmcreate", "100", node="other")
    running = sim.tasks.spawn("pve", "qmstart", "100", "root@pam!phoenix", _until_stopped)
    tasks = proxmox.nodes("pve").tasks
    assert len(tasks.get()) == 3                                   # archive: finished only, this node
    assert [t["upid"] for t in tasks.get(source="active")] == [running]
    assert len(tasks.get(source="all")) == 4
    assert {t["type"] for t in tasks.get(typefilter="qmclone")} == {"qmclone"}
    assert [t["status"] for t in tasks.get(errors=1)] == ["boom"]
    assert len(tasks.get(statusfilter="ok")) == 2
    assert len(tasks.get(vmid=9000)) == 2
    assert len(tasks.get(limit=1)) == 1
    assert all("endtime" in t for t in tasks.get())
    proxmox.nodes("pve").tasks(running).delete()
    sim.tasks.wait(running, 5)


@pytest.mark.parametrize("upid, message", [
    ("UPID:bad", "unable to parse worker upid"),
    ("UPID:pve:0003A2F1:00B3C9D4:66A1B2C3:qmclone:9000:root@pam:", "no such task"),
])
def test_bad_and_unknown_upids(proxmox, upid, message):
    for call in (lambda: proxmox.nodes("pve").tasks(upid).status.get(), lambda: proxmox.nodes("pve").tasks(upid).log.get()):
        with pytest.raises(ResourceException) as caught:
            call()
        assert caught.value.status_code == 400 and caught.value.errors == {"upid": message}


class _RecordingStop:
    """A task's stop event that records how long each ``task.sleep`` waits."""

    def __init__(self, event: threading.Event, waits: list[float]):
        self._event, self._waits = event, waits

    def wait(self, seconds: float) -> bool:
        self._waits.append(seconds)
        return self._event.wait(seconds)

    def __getattr__(self, name: str):
        return getattr(self._event, name)


def test_task_sleep_scales_with_task_scale(sim_server):
    waits: list[float] = []

    def work(task):
        task._stop = _RecordingStop(task._stop, waits)
        task.sleep(2)
        task.sleep(0.5)

    sim_server.sim.settings.task_scale = 0.1
    try:
        _spawn_done(sim_server.sim, work=work)
    finally:
        sim_server.sim.settings.task_scale = 0.0
    assert waits == [pytest.approx(0.2), pytest.approx(0.05)]


def test_finished_tasks_survive_a_restart(tmp_path, start_sim, proxmox_for):
    first = start_sim(tmp_path / "sim")
    upid = _spawn_done(first.sim, work=lambda task: task.log("kept"))
    first.stop()
    client = proxmox_for(start_sim(tmp_path / "sim"))
    assert client.nodes("pve").tasks(upid).status.get()["exitstatus"] == "OK"
    assert client.nodes("pve").tasks(upid).log.get()[0]["t"] == "kept"


def test_the_archive_is_appended_per_task_and_compacted_to_the_recent_ones(tmp_path, start_sim, proxmox_for,
                                                                           monkeypatch):
    from phoenix.sim import tasks as tasks_module
    monkeypatch.setattr(tasks_module, "MAX_PERSISTED", 5)
    server = start_sim(tmp_path / "sim")
    archive = tmp_path / "sim" / "tasks.log"
    lines_before = len(archive.read_bytes().splitlines()) if archive.exists() else 0
    first = _spawn_done(server.sim)
    assert len(archive.read_bytes().splitlines()) == lines_before + 2     # its start, then its end
    upids = [_spawn_done(server.sim, work=lambda task, n=n: task.log(f"task {n}")) for n in range(12)]
    assert len(archive.read_bytes().splitlines()) <= tasks_module.COMPACT_FACTOR * 5 + 2
    server.stop()
    client = proxmox_for(start_sim(tmp_path / "sim"))
    listed = {t["upid"] for t in client.nodes("pve").tasks.get(limit=100)}
    assert set(upids[-5:]) <= listed and first not in listed
    assert client.nodes("pve").tasks(upids[-1]).log.get()[0]["t"] == "task 11"


# --- locks --------------------------------------------------------------------------------------

def _hold(locks, vmid, shared, ready, release):
    with locks.vm(vmid, shared=shared):
        ready.set()
        release.wait(5)


def test_exclusive_lock_times_out_with_pves_message(sim_server):
    locks = sim_server.sim.locks
    ready, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(locks, 100, False, ready, release))
    holder.start()
    ready.wait(5)
    started = time.monotonic()
    with pytest.raises(PVEError) as caught:
        with locks.vm(100, timeout=0.2):
            pass
    assert time.monotonic() - started >= 0.2
    assert caught.value.message == "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout\n"
    assert caught.value.status == 500
    with locks.vm(101, timeout=0.1):                 # other VMs are not affected
        pass
    release.set()
    holder.join()
    with locks.vm(100, timeout=0.1):
        assert locks.held(100) == "exclusive"
    assert locks.held(100) is None


def test_shared_locks_coexist_but_block_exclusive(sim_server):
    locks = sim_server.sim.locks
    ready, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(locks, 9000, True, ready, release))
    holder.start()
    ready.wait(5)
    with locks.vm(9000, shared=True, timeout=0.1):
        assert locks.held(9000) == "shared"
    with pytest.raises(PVEError, match="lock-9000.conf' - got timeout"):
        with locks.vm(9000, timeout=0.1):
            pass
    release.set()
    holder.join()


def test_lock_is_reentrant_in_one_thread(sim_server):
    locks = sim_server.sim.locks
    with locks.vm(100, timeout=0.1):
        with locks.vm(100, timeout=0.1):
            with locks.vm(100, shared=True, timeout=0.1):
                pass
    assert locks.held(100) is None
