"""The state's secret check skips plain values and remembers names seen not to be secret; property-tested
against the plain walk it replaces (the same ValueError, or none, for any JSON-like value)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings, strategies as st
from pydantic import SecretBytes, SecretStr

from phoenix.state.model import SECRET_ATTRIBUTE_NAMES, _reject_secrets


def reference(value: Any, path: str) -> None:
    """The walk as it was: every value visited, every name lowered."""
    if isinstance(value, (SecretStr, SecretBytes)):
        raise ValueError(f"{path} is a secret; store fingerprint(...) in 'fingerprints' instead")
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() in SECRET_ATTRIBUTE_NAMES and item not in (None, ""):
                raise ValueError(f"{path}.{key} looks like a secret; store fingerprint(...) in 'fingerprints' instead")
            reference(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            reference(item, f"{path}[{index}]")


NAMES = st.sampled_from(["cores", "memory_mb", "Password", "password", "TOKEN", "secret", "net0", "cipassword",
                         "tags", "api_token", "x", "Secret_"]) | st.text(max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.sampled_from(["", "v"]) | \
    st.text(max_size=5) | st.builds(SecretStr, st.text(max_size=3)) | st.builds(SecretBytes, st.binary(max_size=3))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=5)
                      | st.dictionaries(st.integers(0, 3), inner, max_size=2), max_leaves=25)


def outcome(check, value: Any) -> str | None:
    try:
        check(value, "attributes")
    except ValueError as exc:
        return str(exc)
    return None


@settings(max_examples=400, deadline=None)
@given(values=st.lists(VALUES, min_size=1, max_size=4))
def test_fast_walk_finds_what_the_plain_walk_finds(values):
    for value in values:           # several in a row: names remembered from one must not hide a secret in the next
        assert outcome(_reject_secrets, value) == outcome(reference, value)
