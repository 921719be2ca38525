"""Property tests for the config-file renderer, pending-delete lists, SHA-256 crypt and sshkeys checks."""

from __future__ import annotations

import base64
import hashlib
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenix.sim.core import PVEError
from phoenix.sim.handlers._vmutil import validate_sshkeys
from phoenix.sim.model.shacrypt import is_crypted, sha256_crypt
from phoenix.sim.model.vm import (
    format_pending_delete,
    parse_config,
    parse_pending_delete,
    render_config,
)

keys = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True).filter(lambda k: k not in ("description", "digest"))
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)
descriptions = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), min_size=1,
                       max_size=40).filter(lambda d: d.strip() == d and "%" not in d)   # PVE decodes %XX too


@given(st.dictionaries(keys, values, max_size=8), st.dictionaries(keys, values, max_size=4),
       st.one_of(st.none(), descriptions))
def test_render_parse_round_trip_and_digest(conf, pending, description):
    if description is not None:
        conf = dict(conf, description=description)
    text = render_config(conf, pending)
    assert parse_config(text)[:2] == (conf, pending)
    keys_in_file = [line.split(": ")[0] for line in render_config(conf).splitlines()
                    if not line.startswith("#")]
    assert keys_in_file == sorted(conf.keys() - {"description"})
    if pending:
        assert "\n[PENDING]\n" in text
    assert hashlib.sha1(text.encode()).hexdigest() == hashlib.sha1(render_config(conf, pending).encode()).hexdigest()


@given(st.dictionaries(st.from_regex(r"[a-z]+[0-9]?", fullmatch=True), st.booleans(), max_size=6))
def test_pending_delete_round_trip(items):
    assert parse_pending_delete(format_pending_delete(items)) == items


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=40), st.from_regex(r"[./0-9A-Za-z]{1,16}", fullmatch=True))
def test_sha256_crypt_matches_system_crypt(password, salt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        crypt = pytest.importorskip("crypt", reason="Python's crypt module is absent (Python >= 3.13)")
    if "\0" in password:
        return
    expected = crypt.crypt(password, "$5$" + salt)
    assert sha256_crypt(password, salt) == expected and is_crypted(expected)


@given(st.binary(min_size=1, max_size=64), st.sampled_from(["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]),
       st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12))
def test_sshkeys_accepts_well_formed_keys_and_rejects_mismatched_types(body, kind, comment):
    blob = len(kind).to_bytes(4, "big") + kind.encode() + body
    line = f"{kind} {base64.b64encode(blob).decode()} {comment}".strip()
    validate_sshkeys(line.replace(" ", "%20"))
    other = "ssh-dss" if kind != "ssh-dss" else "ssh-rsa"
    with pytest.raises(PVEError):
        validate_sshkeys(f"{other}%20{base64.b64encode(blob).decode()}")
