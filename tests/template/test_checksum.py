"""Checksum parsing: literals and sums files (property-tested), resolution from an ImageSpec."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from phoenix.template.checksum import (DIGEST_LENGTHS, ChecksumError, image_source_name, is_loopback_url, parse_literal,
                                       parse_sums, resolve_checksum)

hexdigits = st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=130)
file_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,40}", fullmatch=True)


@given(st.sampled_from(sorted(DIGEST_LENGTHS)), st.data())
def test_literal_round_trip(algorithm, data):
    digest = data.draw(st.text(alphabet="0123456789abcdef", min_size=DIGEST_LENGTHS[algorithm],
                               max_size=DIGEST_LENGTHS[algorithm]))
    assert parse_literal(digest.upper(), algorithm).value == digest
    prefixed = parse_literal(f"{algorithm}:{digest}")
    assert (prefixed.algorithm, prefixed.value, prefixed.label) == (algorithm, digest, f"{algorithm}:{digest}")


@given(hexdigits)
def test_literal_of_wrong_length_is_a_one_line_error_naming_the_field(text):
    if len(text) == 64:
        return
    with pytest.raises(ChecksumError) as err:
        parse_literal(text, "sha256", where="templates[0].image.checksum")
    assert str(err.value).startswith("templates[0].image.checksum: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [("sha999:abc", "unknown checksum algorithm"), ("zz" * 32, "hexadecimal"),
                                           ("", "hexadecimal")])
def test_literal_rejects(text, message):
    with pytest.raises(ChecksumError, match=message):
        parse_literal(text)


@given(st.lists(st.tuples(file_names, st.binary(max_size=20)), min_size=1, max_size=8, unique_by=lambda t: t[0]),
       st.sampled_from(["gnu", "gnu-binary", "bsd", "dot-slash"]), st.data())
def test_sums_file_finds_each_entry(entries, style, data):
    lines = ["-----BEGIN PGP SIGNED MESSAGE-----", "Hash: SHA256", ""]
    for name, content in entries:
        digest = hashlib.sha256(content).hexdigest()
        lines.append({"gnu": f"{digest}  {name}", "gnu-binary": f"{digest} *{name}",
                      "bsd": f"SHA256 ({name}) = {digest}", "dot-slash": f"{digest}  ./{name}"}[style])
    text = "\n".join(lines) + "\n"
    name, content = data.draw(st.sampled_from(entries))
    assert parse_sums(text, name) == hashlib.sha256(content).hexdigest()
    assert parse_sums(text, name + ".missing") is None


def test_sums_file_ignores_other_algorithms_and_lengths():
    sha512 = "a" * 128
    text = f"SHA512 (x.img) = {sha512}\n{'b' * 64}  x.img\n"
    assert parse_sums(text, "x.img", "sha256") == "b" * 64
    assert parse_sums(text, "x.img", "sha512") == sha512


def test_resolve_from_sums_url_and_missing_entry():
    image = SimpleNamespace(url="https://example.invalid/noble/a.img", checksum=None,
                            checksum_url="https://example.invalid/noble/SHA256SUMS", checksum_algorithm="sha256")
    assert image_source_name(image) == "a.img"
    found = resolve_checksum(image, fetch=lambda url: f"{'c' * 64} *a.img\n")
    assert (found.value, found.source) == ("c" * 64, image.checksum_url)
    with pytest.raises(ChecksumError, match=r"lists no sha256 checksum for 'a.img'"):
        resolve_checksum(image, fetch=lambda url: f"{'c' * 64} *b.img\n", where="templates[0].image")


def test_loopback_detection():
    assert is_loopback_url("http://127.0.0.1:8080/x.img")
    assert is_loopback_url("http://localhost/x") and is_loopback_url("http://[::1]:9/x")
    assert not is_loopback_url("https://cloud-images.ubuntu.com/noble/current/x.img")
