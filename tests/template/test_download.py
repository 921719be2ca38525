"""Streaming download against a real local HTTP server: verify, cache, resume, refuse bad checksums."""

from __future__ import annotations

import pytest

from phoenix.template.checksum import Checksum, ChecksumError
from phoenix.template.download import download_verified


def test_downloads_verifies_and_reuses_the_cache(image_server, small_qcow2, tmp_path):
    dest = tmp_path / "img.qcow2"
    seen = []
    download_verified(image_server.url(image_server.image_path), dest, Checksum("sha256", image_server.digest),
                      progress=lambda done, total: seen.append((done, total)))
    assert dest.read_bytes() == small_qcow2
    assert seen[-1] == (len(small_qcow2), len(small_qcow2))
    assert not (tmp_path / "img.qcow2.part").exists()
    before = len(image_server.requests)
    download_verified(image_server.url(image_server.image_path), dest, Checksum("sha256", image_server.digest))
    assert len(image_server.requests) == before, "a verified cached image must not be fetched again"


def test_bad_checksum_is_a_clear_error_and_leaves_nothing(image_server, tmp_path):
    dest = tmp_path / "img.qcow2"
    with pytest.raises(ChecksumError) as err:
        download_verified(image_server.url(image_server.image_path), dest, Checksum("sha256", "0" * 64))
    assert f"checksum mismatch for {image_server.url(image_server.image_path)}" in str(err.value)
    assert image_server.digest in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_with_range(image_server, small_qcow2, tmp_path):
    image_server.truncate_next = 1
    resumed = []
    dest = download_verified(image_server.url(image_server.image_path), tmp_path / "img.qcow2",
                             Checksum("sha256", image_server.digest), on_resume=resumed.append)
    assert dest.read_bytes() == small_qcow2
    ranges = [r for _, _, r in image_server.requests]
    assert ranges[0] is None and ranges[1] == f"bytes={len(small_qcow2) // 2}-"
    assert resumed == [len(small_qcow2) // 2]


def test_partial_file_from_an_earlier_run_is_hashed_then_completed(image_server, small_qcow2, tmp_path):
    part = tmp_path / "img.qcow2.part"
    part.write_bytes(small_qcow2[:1000])
    download_verified(image_server.url(image_server.image_path), tmp_path / "img.qcow2",
                      Checksum("sha256", image_server.digest))
    assert (tmp_path / "img.qcow2").read_bytes() == small_qcow2
    assert image_server.requests[0][2] == "bytes=1000-"


def test_server_ignoring_range_restarts_cleanly(image_server, small_qcow2, tmp_path):
    image_server.ignore_range = True
    (tmp_path / "img.qcow2.part").write_bytes(b"garbage that is not the image")
    download_verified(image_server.url(image_server.image_path), tmp_path / "img.qcow2",
                      Checksum("sha256", image_server.digest))
    assert (tmp_path / "img.qcow2").read_bytes() == small_qcow2


def test_a_part_from_an_earlier_run_that_does_not_add_up_is_fetched_again_from_the_start(image_server, small_qcow2,
                                                                                           tmp_path):
    """What an operating-system crash can leave (no fsync): a .part whose bytes are not the image's.
    The resumed download does not match the checksum; the part is dropped and fetched whole once."""
    (tmp_path / "img.qcow2.part").write_bytes(b"\0" * 1000)        # right length, wrong bytes
    download_verified(image_server.url(image_server.image_path), tmp_path / "img.qcow2",
                      Checksum("sha256", image_server.digest))
    assert (tmp_path / "img.qcow2").read_bytes() == small_qcow2
    assert [r for _, _, r in image_server.requests] == ["bytes=1000-", None]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.qcow2"]


def test_a_bad_checksum_after_starting_over_is_still_the_clear_error(image_server, small_qcow2, tmp_path):
    (tmp_path / "img.qcow2.part").write_bytes(small_qcow2[:1000])
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        download_verified(image_server.url(image_server.image_path), tmp_path / "img.qcow2", Checksum("sha256", "0" * 64))
    assert [r for _, _, r in image_server.requests] == ["bytes=1000-", None]      # one fresh try, not a loop
    assert list(tmp_path.iterdir()) == []


def test_a_cached_image_that_a_crash_left_short_is_fetched_again(image_server, small_qcow2, tmp_path):
    """The cache is not fsynced: every use hashes it, so a torn file is replaced, never used."""
    (tmp_path / "img.qcow2").write_bytes(small_qcow2[: len(small_qcow2) // 3])
    download_verified(image_server.url(image_server.image_path), tmp_path / "img.qcow2",
                      Checksum("sha256", image_server.digest))
    assert (tmp_path / "img.qcow2").read_bytes() == small_qcow2
    assert [r for _, _, r in image_server.requests] == [None]
