"""The simulator's snapshot + change log: a save costs O(changed VM), replays survive crashes,
and two simulators on one data dir see each other's writes."""

from __future__ import annotations

import copy
import json

from phoenix.sim.model import Cluster
from phoenix.sim.model.vm import VM
from phoenix.sim.persist import LOG_MIN_COMPACT_BYTES, ModelStore
from phoenix.sim.simulator import Settings, Simulator


def _cluster_with(store: ModelStore, count: int) -> Cluster:
    cluster = Cluster.create(["pve1", "pve2"], store.data_dir)
    for vmid in range(100, 100 + count):
        cluster.vms[vmid] = VM(vmid=vmid, node="pve1", conf={"name": f"vm{vmid}", "cores": "2", "memory": "2048"})
        cluster.alloc_volume("local-lvm", "pve1", vmid, 2 * 1024**3, "raw")
    store.save(cluster)      # first save: the snapshot
    return cluster


def _reloaded(store: ModelStore) -> dict:
    return ModelStore(store.data_dir).load().to_json()


def test_a_save_writes_only_what_changed_whatever_the_cluster_size(tmp_path):
    written = {}
    for count in (5, 300):
        store = ModelStore(tmp_path / f"sim-{count}")
        cluster = _cluster_with(store, count)
        snapshot = store.path.read_bytes()
        before = store.bytes_written
        cluster.vms[101].conf["cores"] = "4"
        store.save(cluster)
        written[count] = store.bytes_written - before
        assert store.path.read_bytes() == snapshot            # the snapshot is not rewritten
        assert _reloaded(store) == json.loads(json.dumps(cluster.to_json()))
    assert written[5] == written[300]


def test_every_kind_of_change_reaches_the_log(tmp_path):
    store = ModelStore(tmp_path / "sim")
    cluster = _cluster_with(store, 3)
    vm = cluster.vms[100]
    vm.conf["lock"] = "clone"
    vm.pending.update({"cores": "8"})
    vm.status = "running"
    vm.conf = {"name": "renamed"}                            # replaced dicts stay tracked
    vm.conf.setdefault("memory", "4096")
    cluster.vms[101].cloudinit.clear()
    del cluster.vms[102]
    volume = cluster.volume("pve1", "local-lvm:vm-101-disk-0")
    volume.size *= 2
    cluster.rename_volume(volume, "base-101-disk-0")
    cluster.storages["local"]["content"] += ",backup"        # the header is compared, not tracked
    store.save(cluster)
    assert _reloaded(store) == json.loads(json.dumps(cluster.to_json()))
    assert not cluster.changes.vms and not cluster.changes.volumes


def test_copies_of_tracked_dicts_are_plain_and_detached(tmp_path):
    store = ModelStore(tmp_path / "sim")
    cluster = _cluster_with(store, 1)
    conf = copy.deepcopy(cluster.vms[100].conf)
    conf["cores"] = "16"
    assert type(conf) is dict and not cluster.changes.vms
    assert cluster.vms[100].conf["cores"] == "2"


def test_torn_last_line_is_ignored(tmp_path):
    store = ModelStore(tmp_path / "sim")
    cluster = _cluster_with(store, 2)
    cluster.vms[100].conf["cores"] = "3"
    store.save(cluster)
    cluster.vms[101].conf["cores"] = "5"
    store.save(cluster)
    data = store.log_path.read_bytes()
    store.log_path.write_bytes(data[:-10])                    # killed in the middle of the second append
    reloaded = _reloaded(store)
    assert reloaded["vms"]["100"]["conf"]["cores"] == "3"
    assert reloaded["vms"]["101"]["conf"]["cores"] == "2"


def test_log_is_compacted_when_it_outgrows_the_snapshot_and_replays_idempotently(tmp_path):
    store = ModelStore(tmp_path / "sim")
    cluster = _cluster_with(store, 2)
    big = "x" * 8192
    log_before_compaction = b""
    for round_ in range(LOG_MIN_COMPACT_BYTES // 8192 + 4):
        log_before_compaction = store.log_path.read_bytes() if store.log_path.exists() else b""
        cluster.vms[100].conf["description"] = f"{round_}{big}"
        store.save(cluster)
        if store.log_path.stat().st_size < len(log_before_compaction):
            break
    assert 0 < len(log_before_compaction) <= LOG_MIN_COMPACT_BYTES + 2 * len(big)
    expected = json.loads(json.dumps(cluster.to_json()))
    assert _reloaded(store) == expected
    # A crash between writing the new snapshot and emptying the log: the whole log of that moment
    # (its last line is the compacting save's) replays onto the snapshot that folded it.
    cluster.vms[100].conf["description"] = f"{round_}{big}"     # the same record, appended again
    store.save(cluster)
    store.log_path.write_bytes(log_before_compaction + store.log_path.read_bytes())
    assert _reloaded(store) == expected


def test_two_simulators_on_one_data_dir_follow_each_others_appends(tmp_path):
    data_dir = tmp_path / "sim"
    first = Simulator(Settings(nodes=["pve"], data_dir=data_dir, auth_fail_delay=0))
    second = Simulator(Settings(nodes=["pve"], data_dir=data_dir, auth_fail_delay=0))
    with first.mutex:
        first.model.vms[100] = VM(vmid=100, node="pve", conf={"name": "made-by-first"})
        first.save()
    assert second._store.changed_on_disk()
    second.refresh()
    assert second.model.vms[100].conf["name"] == "made-by-first"
    with second.mutex:
        second.model.vms[100].conf["cores"] = "4"
        second.save()
    assert not second._store.changed_on_disk()               # our own append is not a foreign write
    first.refresh()
    assert first.model.vms[100].conf == {"name": "made-by-first", "cores": "4"}
    with first.mutex:                                        # both append before either reloads
        first.model.vms[100].conf["memory"] = "1024"
        first.save()
    with second.mutex:
        second.model.vms[101] = VM(vmid=101, node="pve")
        second.save()
    assert second._store.changed_on_disk()                   # it appended after someone else: reload
    second.refresh()
    assert second.model.vms[100].conf["memory"] == "1024" and 101 in second.model.vms


def test_a_vm_written_before_is_logged_as_its_changed_fields_only(tmp_path):
    store = ModelStore(tmp_path / "sim")
    cluster = _cluster_with(store, 2)
    vm = cluster.vms[100]
    vm.ci_generated = {"user": "#cloud-config\n" + "x" * 20000}
    store.save(cluster)                                      # whole record: this store never wrote it
    size_whole = store.log_path.stat().st_size
    vm.status = "running"
    store.save(cluster)
    line = store.log_path.read_bytes()[size_whole:]
    assert json.loads(line) == {"vm_fields": {"100": {"status": "running"}}}
    assert _reloaded(store) == json.loads(json.dumps(cluster.to_json()))
    # A store that loaded the files again knows nothing of what was written: the next save is whole.
    reopened = ModelStore(store.data_dir)
    model = reopened.load()
    model.vms[100].conf["cores"] = "8"
    before = reopened.log_path.stat().st_size
    reopened.save(model)
    entry = json.loads(reopened.log_path.read_bytes()[before:])
    assert set(entry) == {"vms"} and entry["vms"]["100"]["ci_generated"] == vm.ci_generated
    assert _reloaded(store)["vms"]["100"]["conf"]["cores"] == "8"
