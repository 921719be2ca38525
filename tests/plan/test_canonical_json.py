"""The user-data fingerprint's canonical JSON, with its memoised ``write_files``, is exactly
``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from phoenix.plan.documents import _FILES_PLACEHOLDER, canonical_json

_text = st.one_of(st.text(max_size=10), st.sampled_from([_FILES_PLACEHOLDER, "é\n\"\\", "#!/bin/sh\necho hi\n"]))
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), _text)
_entry = st.dictionaries(st.sampled_from(["path", "permissions", "owner", "content"]), _scalar, max_size=4)
_files = st.one_of(st.lists(_entry, max_size=3), st.lists(st.lists(_scalar, max_size=2), max_size=2), _scalar)
_documents = st.fixed_dictionaries({"write_files": _files}, optional={
    "hostname": _text, "users": st.lists(st.dictionaries(_text, _scalar, max_size=3), max_size=2),
    "runcmd": st.lists(st.lists(_text, max_size=3), max_size=2), "zz": _scalar, "a": _scalar})


def _plain(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=400)
@given(_documents)
def test_canonical_json_is_json_dumps(document):
    assert canonical_json(document) == _plain(document)
    assert canonical_json(document) == _plain(document)      # second time from the memo


def test_equal_but_differently_typed_files_are_not_confused():
    for value in (1, True, 1.0):
        document = {"write_files": [{"permissions": value}]}
        assert canonical_json(document) == _plain(document)
