"""The simulator's real-guest backend: one QEMU process per started VM whose disk descends from the image.

The simulator keeps owning the VM's config, locks and tasks; this backend owns only processes and
their files under ``<data dir>/qemu/<vmid>/`` (overlay disk, seed ISO, sockets, console log,
``guest.json`` with the forwarded SSH port).  No QEMU outlives the simulator: each runs in its
own session with ``PR_SET_PDEATHSIG`` (killed if the simulator dies, even by SIGKILL), and
:meth:`GuestBackend.close` (server stop, ``atexit``) kills what is left.  A guest that exits on
its own (crash, ``poweroff`` inside) is reported through ``on_exit`` so the VM shows as stopped.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from phoenix.sim.qemu.channels import AgentError, ChannelError, QGAClient, QMPClient
from phoenix.sim.qemu.image import kernel_files
from phoenix.sim.qemu.launcher import GuestProcess, Limits, create_overlay, describe, free_port, launch, qemu_args, \
    write_seed

__all__ = ["GuestBackend", "probe_accel", "GUEST_IMAGE_ENV", "GuestError"]

GUEST_IMAGE_ENV = "PHOENIX_SIM_GUEST_IMAGE"
KVM_CREATE_VM = 0xAE01


class GuestError(Exception):
    """The guest could not be started (missing kernel, qemu-img or QEMU failed at once)."""


def probe_accel(device: str = "/dev/kvm", cpuinfo: str = "/proc/cpuinfo") -> str:
    """``kvm`` when the CPU has hardware virtualisation and ``/dev/kvm`` creates a VM, else ``tcg``.

    The CPU flag matters: on some sandboxes ``/dev/kvm`` works without VMX/SVM, and a guest
    there took over a minute without printing a line, where TCG boots in about two."""
    try:
        flags = {flag for line in open(cpuinfo) if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:
        flags = set()
    if not flags & {"vmx", "svm"}:
        return "tcg"
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return "tcg"
    try:
        vm_fd = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm_fd)
        return "kvm"
    except OSError:
        return "tcg"
    finally:
        os.close(fd)


class _Guest:
    def __init__(self, info: GuestProcess, process: subprocess.Popen, directory: Path):
        self.info = info
        self.process = process
        self.directory = directory
        self.agent = QGAClient(directory / "qga.sock")
        self.qmp = QMPClient(directory / "qmp.sock")
        self.stopping = False


class GuestBackend:
    """Starts, stops and talks to the real guests of one simulator."""

    def __init__(self, image: Path, data_dir: Path, limits: Limits | None = None,
                 on_exit: Callable[[int, int], None] | None = None):
        self.image = Path(image).resolve()
        if not self.image.is_file():
            raise GuestError(f"--guest-image: {image} does not exist")
        self.kernel, self.initrd = kernel_files(self.image)
        if not (self.kernel.is_file() and self.initrd.is_file()):
            raise GuestError(f"--guest-image: {self.kernel.name} and {self.initrd.name} must lie beside the image "
                             "(phoenix sim build-guest-image writes them)")
        for tool in ("qemu-system-x86_64", "qemu-img"):
            if shutil.which(tool) is None:
                raise GuestError(f"--guest-image needs {tool} (apt-get install qemu-system-x86 qemu-utils)")
        self.root = Path(data_dir) / "qemu"
        self.root.mkdir(parents=True, exist_ok=True)
        self.limits = limits or Limits(accel=probe_accel())
        self.on_exit = on_exit or (lambda vmid, pid: None)
        self._guests: dict[int, _Guest] = {}
        self._lock = threading.Lock()
        self._digest: str | None = None
        atexit.register(self.close)

    # --- which disks descend from the image ---------------------------------------------------------
    def matches(self, path: Path) -> bool:
        """True when ``path`` holds the image's bytes (an import of it): size first, then sha256."""
        try:
            if path.stat().st_size != self.image.stat().st_size:
                return False
        except OSError:
            return False
        if self._digest is None:
            self._digest = _sha256(self.image)
        return _sha256(path) == self._digest

    # --- lifecycle ------------------------------------------------------------------------------------
    def start(self, vmid: int, conf: dict[str, str], files: dict[str, str], disk_bytes: int) -> GuestProcess:
        """Boot the VM: overlay (created or grown), fresh seed ISO, QEMU; returns how to reach it."""
        directory = self.root / str(vmid)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in ("qga.sock", "qmp.sock"):
            (directory / stale).unlink(missing_ok=True)
        create_overlay(self.image, directory / "disk.qcow2", disk_bytes)
        write_seed(files, directory / "cidata.iso")
        ssh_port = free_port()
        args = qemu_args(vmid, directory, self.kernel, self.initrd, conf, self.limits, ssh_port)
        with open(directory / "console.log", "ab") as console:
            console.write(f"\n==== phoenix: QEMU start {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} ====\n"
                          .encode())
        process = launch(args, directory)
        if not _wait_for(lambda: (directory / "qmp.sock").exists() or process.poll() is not None, 10):
            process.kill()
        if process.poll() is not None:
            log = (directory / "qemu.log").read_text(errors="replace").strip().splitlines()
            raise GuestError(f"QEMU exited at once: {log[-1] if log else 'no output'}")
        info = describe(process, vmid, directory, ssh_port, conf, self.limits.accel)
        info.save(directory)
        guest = _Guest(info, process, directory)
        with self._lock:
            self._guests[vmid] = guest
        threading.Thread(target=self._reap, args=(vmid, guest), daemon=True, name=f"qemu-reaper-{vmid}").start()
        return info

    def _reap(self, vmid: int, guest: _Guest) -> None:
        guest.process.wait()
        with self._lock:
            if self._guests.get(vmid) is guest:
                del self._guests[vmid]
        if not guest.stopping:
            self.on_exit(vmid, guest.process.pid)

    def running(self, vmid: int) -> bool:
        with self._lock:
            guest = self._guests.get(vmid)
        return guest is not None and guest.process.poll() is None

    def info(self, vmid: int) -> GuestProcess | None:
        with self._lock:
            guest = self._guests.get(vmid)
        return guest.info if guest else None

    def agent(self, vmid: int) -> QGAClient | None:
        with self._lock:
            guest = self._guests.get(vmid)
        return guest.agent if guest else None

    def shutdown(self, vmid: int, timeout: float, use_agent: bool, force: bool = True) -> bool:
        """Clean shutdown: ``guest-shutdown`` via the agent when asked and answering, else ACPI
        ``system_powerdown``; after ``timeout`` kill when ``force``.  True when the guest is down."""
        with self._lock:
            guest = self._guests.get(vmid)
        if guest is None:
            return True
        guest.stopping = True
        try:
            if use_agent and guest.agent.ping(3.0):
                guest.agent.execute("guest-shutdown", timeout=5.0)
            else:
                guest.qmp.execute("system_powerdown")
        except (ChannelError, AgentError):
            pass
        if _wait_for(lambda: guest.process.poll() is not None, timeout):
            return True
        if not force:
            guest.stopping = False
            return False
        self.kill(vmid)
        return True

    def kill(self, vmid: int) -> None:
        """``stop``: the process is killed (a power cut for the guest)."""
        with self._lock:
            guest = self._guests.get(vmid)
        if guest is None:
            return
        guest.stopping = True
        guest.process.kill()
        guest.process.wait()
        with self._lock:
            if self._guests.get(vmid) is guest:
                del self._guests[vmid]

    def destroy(self, vmid: int) -> None:
        """The VM is gone: its process and its files (overlay disk, ISO, logs)."""
        self.kill(vmid)
        shutil.rmtree(self.root / str(vmid), ignore_errors=True)

    def close(self) -> None:
        """Kill every guest (simulator stops); the overlays stay, as disks do on a stopped host."""
        with self._lock:
            vmids = list(self._guests)
        for vmid in vmids:
            self.kill(vmid)


def _wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
