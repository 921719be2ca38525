"""What template provisioning does instead of the impossible in simulator mode.

Explicit, never implicit: these run only when the environment injects :class:`OfflineStandIns`
(the simulator's environments do, ``phoenix.sim.environment``; a real PVE never gets them).  Offline, the Ubuntu image cannot be fetched and libguestfs has no real OS
to work on, so a small, valid, empty qcow2 stands in for the download and the customisation is
replaced by the guest-agent mark the simulator reads — each announced as ``simulated: ...``.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

from typing import Protocol

from phoenix.template.checksum import is_loopback_url
from phoenix.template.customize import customize_args

__all__ = ["write_synthetic_qcow2", "mark_agent_installed", "AGENT_MARK", "OfflineStandIns"]

CLUSTER_BITS = 16
CLUSTER = 1 << CLUSTER_BITS
# dpkg's status entry for an installed qemu-guest-agent: what ``virt-customize --install`` leaves
# in the guest's /var/lib/dpkg/status, and what the simulator looks for in an image's bytes
# (phoenix/sim/model/images.py) to give the template's clones a guest agent that answers.
AGENT_MARK = (b"\nPackage: qemu-guest-agent\nStatus: install ok installed\nPriority: optional\n"
              b"Section: admin\nArchitecture: amd64\n\n")


def write_synthetic_qcow2(path: Path, virtual_size: int = 2 << 30) -> Path:
    """Write an empty qcow2 v2 image (4 clusters: header, refcount table, refcount block, L1).

    Pure Python so that a fresh machine without qemu-utils can still run the simulated flow;
    ``qemu-img check`` accepts it (tests prove that when qemu-img is present).
    """
    l2_entries = CLUSTER // 8
    l1_size = -(-virtual_size // (CLUSTER * l2_entries))
    refcount_table, refcount_block, l1_table = CLUSTER, 2 * CLUSTER, 3 * CLUSTER
    header = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb", 2, 0, 0, CLUSTER_BITS, virtual_size, 0, l1_size, l1_table, refcount_table, 1, 0, 0,
    )
    image = bytearray(4 * CLUSTER)
    image[: len(header)] = header
    struct.pack_into(">Q", image, refcount_table, refcount_block)
    for cluster in range(4):                          # 16-bit refcounts: every used cluster once
        struct.pack_into(">H", image, refcount_block + 2 * cluster, 1)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)   # parallel runs share the cache
    with os.fdopen(fd, "wb") as handle:
        handle.write(bytes(image))
    os.replace(tmp, path)
    return path


def mark_agent_installed(path: Path) -> None:
    """Append the dpkg status entry after the image's last cluster (qcow2 ignores trailing bytes)."""
    with open(path, "ab") as handle:
        handle.write(AGENT_MARK)
        handle.flush()
        os.fsync(handle.fileno())


class _Report(Protocol):
    def simulated(self, message: str) -> None: ...


class OfflineStandIns:
    """The visible stand-ins for what cannot happen offline: only loopback URLs are reachable; any other
    image is replaced by an empty qcow2, its checksum list is not fetched, and its customisation becomes
    the guest-agent mark the simulator reads.  Each says ``simulated: ...`` through the reporter."""

    def reachable(self, url: str | None) -> bool:
        return bool(url) and is_loopback_url(url or "")

    def skip_checksum(self, checksum_url: str, report: _Report) -> None:
        report.simulated(f"checksum list {checksum_url} not fetched (no internet in simulator mode); "
                         "the stand-in image cannot match it, so no upstream checksum is recorded")

    def image(self, url: str, path: Path, report: _Report) -> Path:
        write_synthetic_qcow2(path)
        report.simulated(f"download of {url} (no internet in simulator mode): a small empty qcow2 stands in")
        return path

    def customize(self, work: Path, packages: list[str], commands: list[str], report: _Report) -> None:
        args = customize_args(work, packages, commands)
        mark_agent_installed(work)
        report.simulated(f"{' '.join(args[:1] + args[3:])} (libguestfs has no real OS to customise in the "
                         "stand-in image); the image is marked as carrying qemu-guest-agent")
