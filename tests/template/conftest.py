"""Fixtures for template tests: a small real qcow2 image, served over HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from .imageserver import ImageServer


@pytest.fixture(scope="session")
def small_qcow2(tmp_path_factory) -> bytes:
    """A real qcow2 made by qemu-img with some data in it (so a truncated copy differs)."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (apt-get install qemu-utils)")
    work = tmp_path_factory.mktemp("img")
    raw = work / "disk.raw"
    raw.write_bytes(b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(8192)))  # 256 KiB of data
    out = work / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)], check=True, timeout=60)
    return out.read_bytes()


@pytest.fixture
def image_server(small_qcow2):
    name = "noble-server-cloudimg-amd64.img"
    digest = hashlib.sha256(small_qcow2).hexdigest()
    sums = f"{'0' * 64} *other-image.img\n{digest} *{name}\n"
    with ImageServer({f"/noble/{name}": small_qcow2, "/noble/SHA256SUMS": sums.encode()}) as server:
        server.image_name = name
        server.image_path = f"/noble/{name}"
        server.digest = digest
        yield server
