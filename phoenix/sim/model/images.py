"""What the simulator learns from a real image file: its virtual size and whether the guest agent is in it.

How the simulator knows an image has qemu-guest-agent installed (it cannot boot it):

1. the image bytes contain dpkg's status entry ``Package: qemu-guest-agent`` followed by
   ``Status: install ok installed`` — what ``virt-customize --install qemu-guest-agent`` really
   leaves in the guest's ``/var/lib/dpkg/status`` (written uncompressed into the qcow2), and what
   test images can simply contain; or
2. a sidecar file ``<image>.phoenix-customized`` lies next to the image (for tools that put
   images into the storage directory themselves).

A VM whose cloud-init user-data installs the package gets the agent at first boot instead
(see :mod:`phoenix.sim.model.guest`).
"""

from __future__ import annotations

import mmap
import re
import struct
from pathlib import Path

__all__ = ["SIDECAR_SUFFIX", "AGENT_MARKER_RE", "virtual_size", "agent_installed", "synthetic_qcow2"]

SIDECAR_SUFFIX = ".phoenix-customized"
AGENT_MARKER_RE = re.compile(rb"Package: qemu-guest-agent\n(?:[^\n]+\n)*?Status: install ok installed")
QCOW2_MAGIC = b"QFI\xfb"


def virtual_size(path: Path) -> int:
    """The disk size an import creates: qcow2 header size, else the file size (raw)."""
    with open(path, "rb") as handle:
        header = handle.read(32)
    if len(header) >= 32 and header[:4] == QCOW2_MAGIC:
        return struct.unpack(">Q", header[24:32])[0]
    return path.stat().st_size


def agent_installed(path: Path) -> bool:
    """True when the image carries the agent marker or its sidecar (see module docstring)."""
    if Path(str(path) + SIDECAR_SUFFIX).exists():
        return True
    if path.stat().st_size == 0:
        return False
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return AGENT_MARKER_RE.search(data) is not None


def synthetic_qcow2(size: int, with_agent: bool = False) -> bytes:
    """A small qcow2-looking file (v3 header) of ``size`` virtual bytes, for simulated downloads."""
    header = QCOW2_MAGIC + struct.pack(">IQIIQIIQQIIQQQI", 3, 0, 0, 16, size, 0, 0, 0, 0, 0, 0, 0, 0, 0, 104)
    body = b"phoenix simulated cloud image\n"
    if with_agent:
        body += b"Package: qemu-guest-agent\nStatus: install ok installed\n"
    return header.ljust(512, b"\0") + body
