"""Bake the guest agent (and the template's packages/commands) into the image with virt-customize.

Why bake rather than install at first boot: a clone then answers the guest agent on its first
boot, which apply waits for; cloud-init installing it is the fallback when libguestfs is absent
(the result then says ``agent_baked=False`` and user-data installs the agent).  ``--truncate
/etc/machine-id`` makes every clone generate its own machine id (and so its own DHCP identity).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Mapping

from phoenix.errors import PhoenixError

__all__ = ["libguestfs_available", "guestfs_environment", "customize_args", "customize_image",
           "CustomizeError", "AGENT_PACKAGE"]

AGENT_PACKAGE = "qemu-guest-agent"
AGENT_ENABLE = "systemctl enable qemu-guest-agent"
TIMEOUT_SECONDS = 1800


class CustomizeError(PhoenixError):
    """virt-customize failed; the message carries its last meaningful output line."""


def libguestfs_available() -> bool:
    """True when virt-customize is installed (libguestfs-tools)."""
    return shutil.which("virt-customize") is not None


def guestfs_environment(environ: Mapping[str, str] | None = None, *, kvm_device: str = "/dev/kvm") -> dict[str, str]:
    """The environment for libguestfs tools: the caller's, with a TCG default when KVM is absent.

    ``LIBGUESTFS_BACKEND*`` set by the user always win.  Without ``/dev/kvm`` the default libvirt
    backend fails, so ``direct`` + ``force_tcg`` (software emulation) are filled in.
    """
    env = dict(os.environ if environ is None else environ)
    if "LIBGUESTFS_BACKEND" not in env and not os.path.exists(kvm_device):
        env["LIBGUESTFS_BACKEND"] = "direct"
        env.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
    return env


def _with_tcg(env: Mapping[str, str]) -> dict[str, str]:
    forced = dict(env)
    forced["LIBGUESTFS_BACKEND"] = "direct"
    forced["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    return forced


def customize_args(image: Path, packages: Iterable[str] = (), commands: Iterable[str] = ()) -> list[str]:
    """The virt-customize command line: agent first, then declared packages and commands, then machine-id."""
    extra = [p for p in packages if p != AGENT_PACKAGE]
    args = ["virt-customize", "-a", str(image), "--install", ",".join([AGENT_PACKAGE, *extra]),
            "--run-command", AGENT_ENABLE]
    for command in commands:
        args += ["--run-command", command]
    args += ["--truncate", "/etc/machine-id"]
    return args


def customize_image(image: Path, packages: Iterable[str] = (), commands: Iterable[str] = (), *,
                    environ: Mapping[str, str] | None = None, report=None,
                    timeout: float = TIMEOUT_SECONDS) -> list[str]:
    """Run virt-customize on ``image`` in place; return the command line that ran.

    If KVM is present but unusable (nested virtualisation often is) and the user did not choose a
    backend, the run is repeated once with TCG, and that is reported.
    """
    args = customize_args(image, packages, commands)
    env = guestfs_environment(environ)
    result = _run(args, env, timeout)
    if result.returncode != 0 and "LIBGUESTFS_BACKEND_SETTINGS" not in env and _looks_like_kvm_failure(result.stdout):
        if report is not None:
            report("virt-customize could not use KVM; retrying with LIBGUESTFS_BACKEND=direct "
                   "LIBGUESTFS_BACKEND_SETTINGS=force_tcg (slower)")
        result = _run(args, _with_tcg(env), timeout)
    if result.returncode != 0:
        raise CustomizeError(f"virt-customize failed on {image.name}: {_last_error_line(result.stdout)}")
    return args


def _run(args: list[str], env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CustomizeError(f"virt-customize did not finish within {timeout:g} s") from None


def _looks_like_kvm_failure(output: str) -> bool:
    """The appliance did not start: with KVM present that is usually KVM itself (nested, MSRs)."""
    lowered = output.lower()
    return "guestfs_launch failed" in lowered or ("kvm" in lowered and "qemu-system" in lowered)


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1]


def copy_for_customisation(source: Path, dest: Path) -> Path:
    """Copy the verified cache image before customising, so the cache stays the pristine download."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, dest)
    return dest
