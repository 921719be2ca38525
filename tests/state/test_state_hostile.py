"""Hostile or broken state files (issue 14): each is a one-line error or handled, never a traceback."""

from __future__ import annotations

import json
import os
import stat

import pytest

from phoenix.errors import PhoenixError
from phoenix.state import ResourceState, State, StateStore


def _vm(vmid: int = 8001) -> ResourceState:
    return ResourceState(kind="vm", vmid=vmid, name=f"vm-{vmid}", node="pve")


def _written(tmp_path) -> StateStore:
    store = StateStore(tmp_path / "phoenix.state.json")
    state = State()
    state.put(_vm())
    store.write(state)
    return store


@pytest.mark.parametrize("version", [0, -1, "1", 1.5, None, 99])
def test_unknown_format_versions_are_refused(tmp_path, version):
    store = _written(tmp_path)
    data = json.loads(store.path.read_text())
    data["format_version"] = version
    store.path.write_text(json.dumps(data))
    with pytest.raises(PhoenixError, match="format_version") as info:
        StateStore(store.path).read()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("lineage", ["", "a/b", "x" * 65, "lin\neage"])
def test_malformed_lineage_is_refused(tmp_path, lineage):
    store = _written(tmp_path)
    data = json.loads(store.path.read_text())
    data["lineage"] = lineage
    store.path.write_text(json.dumps(data))
    with pytest.raises(PhoenixError, match="is invalid at lineage"):
        StateStore(store.path).read()


@pytest.mark.parametrize("encoding, expect", [("utf-16", r"not UTF-8 text \(it looks like UTF-16\)"),
                                              ("binary", "not UTF-8 text"), ("nul", "holds NUL bytes")])
def test_binary_and_utf16_state_files_are_clear_errors(tmp_path, encoding, expect):
    store = _written(tmp_path)
    text = store.path.read_text()
    raw = {"utf-16": text.encode("utf-16"), "binary": bytes(range(256)) * 4,
           "nul": text.encode().replace(b"{", b"{\x00", 1)}[encoding]
    store.path.write_bytes(raw)
    for action in (lambda: StateStore(store.path).read(), lambda: StateStore(store.path).write(State())):
        with pytest.raises(PhoenixError, match=expect):
            action()


def test_lock_path_that_is_a_directory_is_a_clear_error(tmp_path):
    store = StateStore(tmp_path / "phoenix.state.json")
    store.lock_path.mkdir()
    with pytest.raises(PhoenixError, match=r"cannot take the state lock .*phoenix.state.json.lock: it is a directory"):
        with store.lock("apply"):
            pass


def test_state_symlink_is_written_through(tmp_path):
    real_dir = tmp_path / "vault"
    real_dir.mkdir()
    store = _written(real_dir)
    link = tmp_path / "phoenix.state.json"
    os.symlink(store.path, link)
    via_link = StateStore(link)
    state = via_link.read()
    state.put(_vm(8002))
    via_link.write(state)
    assert link.is_symlink() and os.readlink(link) == str(store.path)
    assert sorted(StateStore(store.path).read().resources) == ["8001", "8002"]
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_dangling_state_symlink_is_refused(tmp_path):
    link = tmp_path / "phoenix.state.json"
    os.symlink(tmp_path / "nowhere" / "state.json", link)
    with pytest.raises(PhoenixError, match="is a symbolic link to .*not a regular file"):
        StateStore(link).write(State())
