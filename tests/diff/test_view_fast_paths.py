"""The views' and the engine's fast paths against the plain forms they replaced (same result, same
key order), on random configs and values."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings, strategies as st

from phoenix.diff.attributes import ATTRIBUTES
from phoenix.diff.codecs import DISK_SLOTS, Observed
from phoenix.diff.engine import _identical
from phoenix.diff.views import actual_view


def _identical_reference(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical_reference(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_identical_reference(x, y) for x, y in zip(a, b))
    return bool(a == b)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(-2, 2), st.just(float("nan")),
                     st.sampled_from(["a", "b", ""]))
_nested = st.recursive(_scalars, lambda c: st.one_of(st.lists(c, max_size=3), st.lists(c, max_size=3).map(tuple),
                                                    st.dictionaries(st.sampled_from("xyz"), c, max_size=3)),
                       max_leaves=10)


@settings(max_examples=500)
@given(_nested, _nested)
def test_identical_agrees_with_the_plain_recursion(a, b):
    assert _identical(a, b) == _identical_reference(a, b)
    assert _identical(a, a) == _identical_reference(a, a)


def _actual_reference(config: dict[str, Any], status: str | None) -> dict[str, Any]:
    observed = Observed(config, status)
    view: dict[str, Any] = {}
    for entry in ATTRIBUTES:
        if entry.read is not None and not (entry.sparse and entry.pve_keys[0] not in config):
            value = entry.read(observed)
            if value is not None:
                view[entry.name] = value
    return view


_keys = st.sampled_from(["cores", "memory", "scsi0", "name", "tags", "agent", "cpu", "onboot", "serial0", "vga",
                         "ipconfig0", "ipconfig3", "net0", "net2", "net31", "scsi1", "virtio4", "sata5", "ide2",
                         "description", "boot", "nameserver", "cicustom", "machine", "bios", "startup"])
_config_values = st.sampled_from(["1", "2048", "local-lvm:vm-1-disk-0,size=16G", "virtio=BC:24:11:00:00:01,bridge=vmbr0",
                                  "ip=10.0.0.5/24,gw=10.0.0.1", "a;b", "enabled=1", "host", "socket", "serial0",
                                  "user=local:snippets/x.yaml", "q35", "order=1,up=5", "", "x"])


@settings(max_examples=300)
@given(st.dictionaries(_keys, _config_values, max_size=12), st.sampled_from([None, "running", "stopped"]))
def test_actual_view_agrees_with_the_full_registry_walk(config, status):
    try:
        expected: Any = _actual_reference(config, status)
    except Exception as exc:  # noqa: BLE001 - a garbage value: both must fail alike
        expected = type(exc)
    try:
        got: Any = actual_view(config, status)
    except Exception as exc:  # noqa: BLE001
        got = type(exc)
    assert got == expected
    if isinstance(got, dict):
        assert list(got) == list(expected)


def test_every_numbered_key_is_visited():
    config = {slot: "local:1,size=1G" for slot in DISK_SLOTS}
    assert list(actual_view(config, None)) == list(_actual_reference(config, None))
