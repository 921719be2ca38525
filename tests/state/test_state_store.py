"""StateStore: atomic writes, backups, permissions, and that secrets never reach the file."""

from __future__ import annotations

import json
import stat
import uuid

import pytest
from pydantic import SecretStr

from phoenix.errors import PhoenixError
from phoenix.state import ResourceState, State, StateStore, fingerprint


def _vm(vmid: int = 8001, **extra) -> ResourceState:
    return ResourceState(kind="vm", vmid=vmid, name=f"vm-{vmid}", node="pve", template_vmid=8000,
                         attributes={"cores": 2, "memory_mb": 2048, **extra})


def test_missing_file_reads_as_empty_state_with_fresh_lineage(tmp_path):
    store = StateStore(tmp_path / "phoenix.tfstate")
    first, second = store.read(), store.read()
    assert first.resources == {} and first.serial == 0
    assert uuid.UUID(first.lineage) and first.lineage != second.lineage


def test_write_round_trips_and_increments_serial(tmp_path):
    store = StateStore(tmp_path / "deep" / "dir" / "state.json")
    state = store.read()
    state.put(_vm())
    store.write(state)
    assert state.serial == 1
    again = store.read()
    assert again.serial == 1 and again.lineage == state.lineage
    assert again.get(8001).attributes == {"cores": 2, "memory_mb": 2048}
    store.write(again)
    assert store.read().serial == 2


def test_files_are_private(tmp_path):
    store = StateStore(tmp_path / "state.json")
    state = store.read()
    store.write(state)
    store.write(state)
    for path in (store.path, store.backup_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_previous_state_is_kept_as_backup(tmp_path):
    store = StateStore(tmp_path / "state.json")
    state = store.read()
    state.put(_vm(8001))
    store.write(state)
    state.put(_vm(8002))
    store.write(state)
    backup = json.loads(store.backup_path.read_text())
    assert backup["serial"] == 1 and set(backup["resources"]) == {"8001"}
    assert set(json.loads(store.path.read_text())["resources"]) == {"8001", "8002"}


def test_failed_write_leaves_previous_state_and_no_temp_files(tmp_path):
    store = StateStore(tmp_path / "state.json")
    state = store.read()
    state.put(_vm())
    store.write(state)
    before = store.path.read_bytes()
    state.resources["8001"].attributes["nested"] = {"cipassword": "hunter2"}  # sneaks past put()
    with pytest.raises(PhoenixError, match="cipassword"):
        store.write(state)
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_refuses_to_overwrite_other_lineage_or_newer_serial(tmp_path):
    store = StateStore(tmp_path / "state.json")
    mine = store.read()
    store.write(mine)
    with pytest.raises(PhoenixError, match="lineage"):
        store.write(State())
    stale = store.read()
    store.write(mine)  # serial 2 on disk now
    with pytest.raises(PhoenixError, match="written meanwhile"):
        store.write(stale)


def test_secrets_never_land_in_the_file(tmp_path):
    store = StateStore(tmp_path / "state.json")
    password_hash = "$6$rounds=4096$saltsalt$" + "x" * 40
    token = "root@pam!phoenix=" + str(uuid.uuid4())
    state = store.read()
    vm = _vm()
    vm.fingerprints = {"password_hash": state.fingerprint(password_hash), "user_data": state.fingerprint(token)}
    state.put(vm)
    store.write(state)
    text = store.path.read_text()
    assert password_hash not in text and token not in text
    assert "saltsalt" not in text and token.split("=")[1] not in text
    stored = store.read().get(8001).fingerprints
    assert stored["password_hash"] == fingerprint(password_hash, state.lineage)


@pytest.mark.parametrize("attributes", [
    {"password_hash": "$6$abc$def"},
    {"user": {"password": "plain"}},
    {"secret_thing": SecretStr("s3cret")},
    {"list": [{"api_token": "x"}]},
])
def test_secret_attributes_are_refused(attributes):
    with pytest.raises(ValueError) as excinfo:
        ResourceState(kind="vm", vmid=1, name="a", node="pve", attributes=attributes)
    assert "s3cret" not in str(excinfo.value) and "plain" not in str(excinfo.value)


def test_fingerprint_is_keyed_by_lineage_and_stable():
    assert fingerprint("pw", "a") == fingerprint("pw", "a")
    assert fingerprint("pw", "a") != fingerprint("pw", "b")
    assert fingerprint("pw", "a") != fingerprint("pw2", "a")
    assert fingerprint("pw", "a").startswith("hmac-sha256:") and "pw" not in fingerprint("pw", "a")[12:]


def test_corrupt_state_is_a_one_line_error_naming_the_file(tmp_path):
    store = StateStore(tmp_path / "state.json")
    store.path.write_text('{"format_version": 1, "lineage": "x", "serial": "many"}')
    with pytest.raises(PhoenixError) as excinfo:
        store.read()
    assert "state.json" in str(excinfo.value) and "serial" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_newer_format_is_refused(tmp_path):
    store = StateStore(tmp_path / "state.json")
    store.path.write_text(json.dumps({"format_version": 99, "lineage": "x", "serial": 1, "resources": {}}))
    with pytest.raises(PhoenixError, match="format_version 99"):
        store.read()


def test_resource_key_must_match_vmid():
    with pytest.raises(ValueError, match="keys must be the vmid"):
        State(resources={"1": _vm(2)})


def test_remove_and_get():
    state = State()
    state.put(_vm(5))
    assert state.get(5).name == "vm-5"
    assert state.remove(5).vmid == 5 and state.get(5) is None and state.remove(5) is None


def test_put_refuses_a_record_that_gained_a_secret():
    state = State()
    record = _vm().model_copy(update={"attributes": {"cipassword": "hunter2"}})  # model_copy skips validation
    with pytest.raises(PhoenixError) as excinfo:
        state.put(record)
    assert "cipassword" in str(excinfo.value) and "hunter2" not in str(excinfo.value)
    assert state.get(8001) is None


WRITER = """
import sys
from phoenix.state import ResourceState, StateStore
store = StateStore(sys.argv[1])
state = store.read()
for i in range(60):
    state.put(ResourceState(kind="vm", vmid=100 + i, name="x" * 200, node="pve"))
    store.write(state)
"""


def test_readers_never_see_a_torn_state_while_another_process_writes(tmp_path):
    import os
    import subprocess
    import sys

    store = StateStore(tmp_path / "state.json")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store.path)],
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    serials = []
    try:
        while writer.poll() is None:
            state = store.read()  # raises PhoenixError on a half-written file
            serials.append(state.serial)
            assert len(state.resources) == state.serial
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert serials == sorted(serials) and store.read().serial == 60


def test_taking_the_lock_removes_temp_files_an_interrupted_write_left(tmp_path):
    store = StateStore(tmp_path / "phoenix.state.json")
    store.write(State())
    leftovers = [tmp_path / ".phoenix.state.json.k2j3h4.tmp", tmp_path / ".phoenix.state.json.backup.4242.tmp"]
    others = [tmp_path / ".other.state.json.x.tmp", tmp_path / "phoenix.state.json.backup"]
    for path in leftovers + others:
        path.write_text("{}")
    with store.lock("apply"):
        assert [p for p in leftovers if p.exists()] == []
    assert all(p.exists() for p in others)
