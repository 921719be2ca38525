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
