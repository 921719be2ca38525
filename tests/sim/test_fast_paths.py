"""The simulator's fast paths for reads (``phoenix plan`` at 10,000 VMs) give what the slow paths give.

Each fast path keeps its slow original next to it (or here, as it was) as the reference.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from phoenix.sim.handlers.config import _pending_items
from phoenix.sim.model.vm import _config_types, _encode_chars, encode_text, typed_config
from phoenix.sim.schema import Router, _format_kind

# --- encode_text -------------------------------------------------------------------------------

texts = st.one_of(
    st.text(),
    st.text(st.sampled_from("abc :%#\t\r\x7f\x80é€\U0001f600-_=/"), max_size=40),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
)


@given(texts)
def test_encode_text_fast_path_equals_the_character_loop(text):
    assert encode_text(text) == _encode_chars(text)


# --- typed_config ------------------------------------------------------------------------------

def _typed_config_reference(conf: dict[str, Any]) -> dict[str, Any]:
    """typed_config as it was: a type lookup (regex for indexed keys) and a regex per key per call."""
    types = _config_types()
    result: dict[str, Any] = {}
    for key, value in conf.items():
        if key in types:
            kind = types[key]
        else:
            match = re.fullmatch(r"([a-z]+)\d+", key)
            kind = types.get(f"{match.group(1)}[n]", "string") if match else "string"
        if kind in ("integer", "boolean") and re.fullmatch(r"-?\d+", str(value)):
            result[key] = int(value)
        else:
            result[key] = str(value)
    return result


config_keys = st.one_of(st.sampled_from(sorted(_config_types())),
                        st.from_regex(r"(net|scsi|numa|ipconfig|unused|ide|hostpci|foo)[0-9]{1,3}", fullmatch=True),
                        st.text(max_size=12))
config_values = st.one_of(st.from_regex(r"-?[0-9]{1,6}", fullmatch=True), st.text(max_size=12), st.integers())


@given(st.dictionaries(config_keys, config_values, max_size=12))
def test_typed_config_equals_the_uncached_lookup(conf):
    typed = typed_config(conf)
    assert typed == _typed_config_reference(conf)
    assert [type(v) for v in typed.values()] == [type(v) for v in _typed_config_reference(conf).values()]


# --- GET .../pending of a VM without pending changes -----------------------------------------------

@given(st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), st.integers()), max_size=12))
def test_pending_without_changes_is_the_general_listing(conf):
    fast = [{"key": key, "value": value} for key, value in sorted(conf.items())]   # get_pending's short cut
    assert fast == _pending_items(conf, {}, {})


# --- Router ------------------------------------------------------------------------------------

ROUTER = Router()
segments = st.one_of(st.sampled_from(["nodes", "pve", "qemu", "100", "config", "pending", "storage", "local",
                                      "content", "local:iso", "snapshot", "s1", "tasks", "status", "current",
                                      "agent", "exec", "version", "cluster", "resources", "access", "ticket",
                                      "", "%2F", "a%20b", "\n", "x\ny"]),
                     st.text(max_size=6))


@given(st.lists(segments, max_size=9), st.booleans(), st.sampled_from(["", "/", "\n", "//"]))
def test_router_alternation_equals_trying_each_template(parts, leading, tail):
    path = ("/" if leading else "") + "/".join(parts) + tail
    assert ROUTER._match(path) == ROUTER._match_each(path)


def test_router_alternation_on_every_template():
    for _regex, template, _methods in ROUTER._routes:
        path = re.sub(r"\{(\w+)\}", lambda m: "local:iso/a/b.iso" if m.group(1) == "volume" else f"{m.group(1)}-1",
                      template)
        assert ROUTER._match(path) == ROUTER._match_each(path)
        assert ROUTER._match(path)[0] == template


@given(st.text(max_size=20))
def test_format_kind_equals_the_regex(fmt):
    def outcome(parse):
        try:
            return parse()
        except AttributeError as exc:          # no match: a format with a newline in it
            return str(exc)
    match = re.match(r"^(.*?)(?:-(list|opt))?$", fmt)
    assert outcome(lambda: _format_kind(fmt)) == outcome(lambda: (match.group(1), match.group(2) or "none"))
