"""virt-customize: the command phoenix builds, the libguestfs environment, and a real run (slow).

Offline there is no apt repository, so the real run uses a tiny Debian-like ext4 image (busybox
as /bin/sh) whose ``apt-get`` and ``systemctl`` are recording stand-ins: this proves phoenix's
``--install``/``--run-command``/``--truncate`` reach the guest through virt-customize, not that
apt can install a package.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from phoenix.template.customize import customize_args, customize_image, guestfs_environment
from phoenix.template.simulated import AGENT_MARK, mark_agent_installed, write_synthetic_qcow2


def test_command_line_bakes_agent_then_declared_steps_then_machine_id(tmp_path):
    args = customize_args(tmp_path / "i.qcow2", ["curl", "qemu-guest-agent"], ["echo ok > /etc/proof"])
    assert args == ["virt-customize", "-a", str(tmp_path / "i.qcow2"), "--install", "qemu-guest-agent,curl",
                    "--run-command", "systemctl enable qemu-guest-agent", "--run-command", "echo ok > /etc/proof",
                    "--truncate", "/etc/machine-id"]


def test_environment_defaults_to_tcg_only_without_kvm_and_never_overrides_the_user(tmp_path):
    missing = str(tmp_path / "no-kvm")
    env = guestfs_environment({"PATH": "/bin"}, kvm_device=missing)
    assert env["LIBGUESTFS_BACKEND"] == "direct" and env["LIBGUESTFS_BACKEND_SETTINGS"] == "force_tcg"
    mine = guestfs_environment({"LIBGUESTFS_BACKEND": "libvirt"}, kvm_device=missing)
    assert mine["LIBGUESTFS_BACKEND"] == "libvirt" and "LIBGUESTFS_BACKEND_SETTINGS" not in mine
    present = tmp_path / "kvm"
    present.write_text("")
    assert "LIBGUESTFS_BACKEND" not in guestfs_environment({}, kvm_device=str(present))


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed (qemu-utils)")
def test_synthetic_stand_in_is_a_valid_qcow2_and_carries_the_agent_mark(tmp_path):
    from phoenix.sim.model.images import agent_installed, virtual_size

    image = write_synthetic_qcow2(tmp_path / "s.qcow2", virtual_size=3 << 30)
    assert not agent_installed(image)
    mark_agent_installed(image)
    check = subprocess.run(["qemu-img", "check", str(image)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert agent_installed(image) and virtual_size(image) == 3 << 30
    assert image.read_bytes().endswith(AGENT_MARK)


def _guest_tree(root: Path) -> None:
    """A minimal Debian-like root that libguestfs inspects as a Linux guest and can run commands in."""
    for sub in ("bin", "etc", "lib64", "lib/x86_64-linux-gnu", "usr/bin", "var/log", "var/lib/dpkg", "tmp", "root"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy("/usr/bin/busybox", root / "bin/busybox")
    for applet in ("sh", "echo", "cat", "ls", "mkdir", "rm", "chmod", "test", "true"):
        (root / "bin" / applet).symlink_to("busybox")
    for lib in ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libresolv.so.2"):
        shutil.copy(lib, root / lib.lstrip("/"))
    (root / "etc/os-release").write_text('ID=debian\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n')
    (root / "etc/debian_version").write_text("12.0\n")
    (root / "etc/fstab").write_text("/dev/sda / ext4 defaults 0 1\n")
    (root / "etc/hostname").write_text("phoenix-test\n")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    for tool in ("apt-get", "systemctl"):
        script = root / "usr/bin" / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> /var/log/phoenix-recorded.log\n')
        script.chmod(0o755)


def _busybox_is_usable() -> bool:
    if shutil.which("busybox") != "/usr/bin/busybox":
        return False
    out = subprocess.run(["ldd", "/usr/bin/busybox"], capture_output=True, text=True).stdout
    return all(name in ("linux-vdso.so.1", "libc.so.6", "libresolv.so.2", "/lib64/ld-linux-x86-64.so.2")
               for name in (line.split()[0] for line in out.splitlines() if line.strip()))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("virt-customize") is None, reason="libguestfs-tools (virt-customize) not installed")
@pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="e2fsprogs (mkfs.ext4) not installed")
@pytest.mark.skipif(not _busybox_is_usable(), reason="busybox (for the guest's /bin/sh) not installed")
def test_real_virt_customize_installs_runs_and_truncates(tmp_path):
    root = tmp_path / "root"
    _guest_tree(root)
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(raw)], check=True, timeout=120)
    image = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True, timeout=120)

    lines: list[str] = []
    customize_image(image, ["curl"], ["echo ok > /etc/phoenix-proof"], report=lines.append, timeout=540)

    env = guestfs_environment()
    if lines:   # KVM was unusable and phoenix fell back to TCG: read back the same way
        env.update(LIBGUESTFS_BACKEND="direct", LIBGUESTFS_BACKEND_SETTINGS="force_tcg")
    # one guestfish session (one appliance boot) instead of virt-cat + virt-ls: same libguestfs, half the time
    script = "cat /var/log/phoenix-recorded.log\necho ---\ncat /etc/phoenix-proof\necho ---\nfilesize /etc/machine-id\n"
    out = subprocess.run(["guestfish", "--ro", "-a", str(image), "-i"], input=script, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    recorded, proof, machine_id_size = (part.strip() for part in out.stdout.split("---\n"))
    assert "apt-get -q -y -o Dpkg::Options::=--force-confnew install qemu-guest-agent curl" in recorded
    assert "systemctl enable qemu-guest-agent" in recorded
    assert proof == "ok"
    assert machine_id_size == "0"
