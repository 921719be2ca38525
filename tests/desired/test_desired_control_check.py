"""The control-character check's quick pass (one regex over every string) agrees with the walk that
names each value's JSON path: same problems, in the same order."""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import given, settings, strategies as st

from phoenix.desired.loader import ROOT, _control_walk, control_problems

_text = st.one_of(st.text(max_size=12), st.sampled_from(["ok", "a\x00b", "\x7f", "\x85x", "\ud800", "line\nbreak", "tab\t"]))
_keys = st.one_of(_text, st.sampled_from(["description", "name", "vms", "bad\x1bkey"]))
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _text),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4)),
    max_leaves=25)


@settings(max_examples=500)
@given(_values)
def test_quick_pass_agrees_with_the_walk(data):
    assert control_problems(data) == _control_walk(data, ROOT)


def test_a_description_may_hold_newlines_but_not_its_key_path_elsewhere():
    data = {"vms": [{"description": "two\nlines", "name": "web\n"}]}
    assert [str(p) for p in control_problems(data)] == [
        "vms[0].name: contains the control character U+000A at position 3; control characters are not allowed"]
    assert control_problems({"vms": [{"description": "two\nlines"}]}) == []


def test_unusual_containers_take_the_walk():
    data = OrderedDict(name="a\x00")
    assert control_problems(data) == _control_walk(data, ROOT) != []
    assert control_problems([OrderedDict(name="ok")]) == []
