"""Property tests of the diff engine: only declared keys count, and drift is separate from change."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from phoenix.diff.engine import compare, diff_resource

keys = st.sampled_from(["cores", "memory_mb", "disk_size_gb", "name", "ipconfig0", "nameserver", "tags", "power"])
values = st.one_of(st.integers(-5, 5000), st.text(max_size=8), st.lists(st.text(max_size=4), max_size=3),
                   st.booleans())
views = st.dictionaries(keys, values, max_size=8)
inherited = st.dictionaries(st.sampled_from(["boot", "scsihw", "ostype", "vmgenid", "smbios1", "meta", "ide2"]),
                            st.text(max_size=12), max_size=7)


@given(views)
def test_a_view_never_differs_from_itself(view):
    assert compare(view, view) == []


@given(views, views)
def test_compare_names_exactly_the_keys_that_differ(before, after):
    changed = {c.attribute for c in compare(before, after)}
    expected = {k for k in set(before) | set(after)
                if (k in before) != (k in after) or before.get(k) != after.get(k)}
    assert changed == expected
    for change in compare(before, after):
        assert change.before == before.get(change.attribute)
        assert change.after == after.get(change.attribute)


@given(views, inherited)
def test_keys_a_clone_inherits_never_cause_a_diff(desired, extra):
    actual = {**extra, **desired}
    result = diff_resource(desired, actual, recorded=desired)
    assert result.changes == []
    assert result.drift == []


@given(views, views)
def test_drift_compares_only_what_phoenix_recorded(desired, actual):
    recorded = dict(desired)
    result = diff_resource(desired, actual, recorded)
    drifted = {c.attribute for c in result.drift}
    assert drifted <= set(recorded)
    assert drifted == {k for k in recorded if actual.get(k) != recorded[k]}


@settings(max_examples=50)
@given(views)
def test_missing_resource_means_everything_is_added(desired):
    result = diff_resource(desired, None, None)
    assert {c.attribute for c in result.changes} == set(desired)
    assert all(c.before is None for c in result.changes)


def test_integer_and_float_sizes_are_equal():
    assert compare({"disk_size_gb": 32}, {"disk_size_gb": 32.0}) == []


def test_state_tracked_user_data_is_compared_with_the_record_not_pve():
    desired = {"cores": 2, "user_data": "hmac-sha256:new"}
    actual = {"cores": 2}
    result = diff_resource(desired, actual, {"cores": 2, "user_data": "hmac-sha256:old"})
    assert [(c.attribute, c.before, c.after) for c in result.changes] == [
        ("user_data", "hmac-sha256:old", "hmac-sha256:new")]
