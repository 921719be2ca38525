"""Build the real guest's disk image offline: Debian bookworm from Debian's packages, as a cloud image.

Why our own image: the simulator's real-guest backend needs a small Linux that boots under TCG
on a 2-core machine with no internet, and the only network we can reach is Debian's package
registry.  ``debootstrap`` gives us that; the result looks like a cloud image (cloud-init,
qemu-guest-agent, openssh-server without host keys, an empty machine-id, netplan +
systemd-networkd + systemd-resolved as on Ubuntu's images).

The disk has no partition table (the root filesystem is the whole device) and no boot loader:
QEMU boots the kernel and initrd extracted next to it (``<image>.vmlinuz``, ``<image>.initrd``).
Builds are cached by the hash of the recipe (:func:`recipe_key`), so a second run reuses the image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from phoenix.errors import PhoenixError

__all__ = ["GuestImage", "build_guest_image", "recipe_key", "default_cache_dir", "kernel_files", "IMAGE_NAME",
           "CACHE_ENV", "MIRROR_ENV", "TOOLS"]

SUITE = "bookworm"
IMAGE_NAME = "debian-12-phoenix-guest.qcow2"
ROOT_SIZE = "3G"
CACHE_ENV = "PHOENIX_GUEST_IMAGE_CACHE"
MIRROR_ENV = "PHOENIX_DEBIAN_MIRROR"       # unset: debootstrap's own default mirror
TOOLS = ("debootstrap", "mkfs.ext4", "qemu-img", "chroot")

# What a cloud image has; python3-cffi-backend because debootstrap does not resolve the virtual
# dependency python3-cryptography has on it; ca-certificates, curl, gnupg, unattended-upgrades,
# tzdata so that phoenix's "base" feature finds everything installed (the guest has no internet).
PACKAGES = (
    "systemd-sysv", "udev", "kmod", "dbus", "iproute2", "iputils-ping", "netbase", "procps", "less",
    "linux-image-cloud-amd64", "initramfs-tools",
    "cloud-init", "cloud-guest-utils", "python3-cffi-backend", "e2fsprogs",
    "qemu-guest-agent", "openssh-server", "sudo",
    "netplan.io", "systemd-resolved",
    "ca-certificates", "curl", "gnupg", "unattended-upgrades", "tzdata",
)

# Run inside the root filesystem (chroot) after debootstrap; part of the cache key.
CONFIGURE = r"""set -eu
echo 'LANG=C.UTF-8' > /etc/default/locale          # else cloud-init's locale module fails
printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n' > /etc/fstab
printf 'virtio_pci\nvirtio_blk\nvirtio_net\nvirtio_scsi\nvirtio_console\next4\n' >> /etc/initramfs-tools/modules
cat > /etc/cloud/cloud.cfg.d/90-phoenix-datasources.cfg <<'EOF'
# PVE gives a NoCloud (or ConfigDrive) drive; do not probe cloud metadata services.
datasource_list: [NoCloud, ConfigDrive, None]
EOF
systemctl enable systemd-networkd systemd-resolved ssh qemu-guest-agent cloud-init >/dev/null 2>&1 || true
systemctl enable serial-getty@ttyS0 >/dev/null 2>&1 || true
update-initramfs -u -k all >/dev/null
ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
rm -f /etc/ssh/ssh_host_* /etc/hostname
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
rm -rf /var/lib/cloud/* /var/cache/apt/archives/*.deb /var/log/*.log /tmp/* /root/.bash_history
"""


@dataclass(frozen=True)
class GuestImage:
    """A built image and its boot files."""

    path: Path
    kernel: Path
    initrd: Path
    key: str
    reused: bool
    seconds: float
    size_bytes: int


def recipe_key() -> str:
    """Content hash of everything that decides the image's bytes (suite, packages, configuration)."""
    recipe = json.dumps({"suite": SUITE, "packages": PACKAGES, "configure": CONFIGURE, "root_size": ROOT_SIZE,
                         "name": IMAGE_NAME, "format": 1}, sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    """``$PHOENIX_GUEST_IMAGE_CACHE``, else ``$XDG_CACHE_HOME/phoenix/guest-images`` (kept between CI runs)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "phoenix" / "guest-images"


def kernel_files(image: Path) -> tuple[Path, Path]:
    """The kernel and initrd the image boots with (written beside it by the build)."""
    return Path(f"{image}.vmlinuz"), Path(f"{image}.initrd")


def build_guest_image(cache_dir: Path | None = None, *, log: Callable[[str], None] = print,
                      force: bool = False) -> GuestImage:
    """Return the cached image for the current recipe, building it first when missing (needs root)."""
    cache = Path(cache_dir or default_cache_dir())
    target_dir = cache / recipe_key()
    image = target_dir / IMAGE_NAME
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with _locked(cache):
        if force and target_dir.exists():
            shutil.rmtree(target_dir)
        if not _complete(image):
            _check_tools()
            _build(target_dir, log)
            reused = False
        else:
            reused = True
    kernel, initrd = kernel_files(image)
    return GuestImage(image, kernel, initrd, recipe_key(), reused, time.monotonic() - started, image.stat().st_size)


def _complete(image: Path) -> bool:
    return image.is_file() and all(p.is_file() for p in kernel_files(image))


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise PhoenixError("building the guest image needs root (debootstrap, chroot)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise PhoenixError(f"building the guest image needs {', '.join(missing)} "
                           "(apt-get install debootstrap e2fsprogs qemu-utils)")


class _locked:
    """Builds sharing a cache take turns (flock on the directory; nothing left behind)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.fd = -1

    def __enter__(self) -> "_locked":
        self.fd = os.open(self.directory, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _run(args: list[str], what: str, log: Callable[[str], None], timeout: float = 1800) -> None:
    try:
        result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                                check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        raise PhoenixError(f"guest image: {what} did not finish within {timeout:g} s") from None
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-15:])
        raise PhoenixError(f"guest image: {what} failed (exit {result.returncode}):\n{tail}")


def _build(target_dir: Path, log: Callable[[str], None]) -> None:
    work = Path(tempfile.mkdtemp(prefix="build-", dir=target_dir.parent))
    rootfs = work / "rootfs"
    try:
        t0 = time.monotonic()
        log(f"debootstrap {SUITE} ({len(PACKAGES)} packages) into {rootfs}")
        args = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs)]
        if os.environ.get(MIRROR_ENV):
            args.append(os.environ[MIRROR_ENV])
        _run(args, "debootstrap", log)
        log(f"debootstrap done in {time.monotonic() - t0:.0f} s; configuring")
        _configure(rootfs, log)
        boot = rootfs / "boot"
        kernels = sorted(boot.glob("vmlinuz-*"))
        initrds = sorted(boot.glob("initrd.img-*"))
        if not kernels or not initrds:
            raise PhoenixError("guest image: no kernel/initrd in the root filesystem's /boot")
        staged = work / IMAGE_NAME
        kernel, initrd = kernel_files(staged)
        shutil.copyfile(kernels[-1], kernel)
        shutil.copyfile(initrds[-1], initrd)
        raw = work / "root.raw"
        t1 = time.monotonic()
        _run(["mkfs.ext4", "-q", "-L", "root", "-d", str(rootfs), str(raw), ROOT_SIZE], "mkfs.ext4 -d", log)
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(staged)], "qemu-img convert", log)
        raw.unlink()
        log(f"filesystem and qcow2 in {time.monotonic() - t1:.0f} s")
        shutil.rmtree(rootfs)
        manifest = {"suite": SUITE, "packages": list(PACKAGES), "key": recipe_key(),
                    "build_seconds": round(time.monotonic() - t0), "size_bytes": staged.stat().st_size}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target_dir.exists():
            shutil.rmtree(target_dir)
        os.replace(work, target_dir)          # complete or absent: a half build is never reused
    finally:
        _unmount_all(rootfs)
        shutil.rmtree(work, ignore_errors=True)


def _configure(rootfs: Path, log: Callable[[str], None]) -> None:
    proc = rootfs / "proc"
    _run(["mount", "-t", "proc", "proc", str(proc)], "mount /proc", log)
    try:
        _run(["chroot", str(rootfs), "/bin/sh", "-c", CONFIGURE], "configuration in the chroot", log)
    finally:
        _unmount_all(rootfs)


def _unmount_all(rootfs: Path) -> None:
    """Unmount anything still mounted below the root filesystem (debootstrap or we mounted it)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    prefix = str(rootfs) + "/"
    for line in reversed(mounts):
        point = line.split()[1] if len(line.split()) > 1 else ""
        if point.startswith(prefix):
            subprocess.run(["umount", "-l", point], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
