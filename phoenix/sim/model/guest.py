"""The guest inside a simulated VM: the seam between PVE's agent endpoints and whatever runs the guest.

PVE only relays what the guest's qemu-guest-agent says.  The :class:`Guest` interface is exactly
that: whether the agent answers, the host name, the network interfaces, reading a file, running a
command, and the two power events PVE causes (boot with a cloud-init seed, power off).  The
simulator ships one implementation, :class:`phoenix.sim.model.guest_sim.SimulatedGuest`, which
follows the seed it booted with; a real QEMU guest can be plugged in by setting
``sim.guest_factory`` to a ``(sim, vm) -> Guest`` callable.

The agent answers only when (a) the VM runs, (b) it was started with ``agent: enabled=1`` (the
virtio-serial port exists only then), (c) the guest has the agent — the boot volume was
customised (see :mod:`phoenix.sim.model.images`) or the user-data it booted with installs
``qemu-guest-agent`` — and (d) the guest has booted far enough.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Iterator
from typing import Any, Protocol

from phoenix.sim import propstr
from phoenix.sim.core import PVEError
from phoenix.sim.model.guest_seed import Seed, plan_from_seed, read_seed_iso
from phoenix.sim.model.pending import has_cloudinit_drive
from phoenix.sim.model.vm import VM, drive_keys

__all__ = ["Guest", "GuestError", "guest_for", "agent_enabled", "boot_disk_key", "assert_agent_configured",
           "assert_agent_available",
           "boot_seed", "boot", "power_off"]


class GuestError(Exception):
    """A QGA error reply; ``desc`` is QGA's text (PVE answers ``Agent error: <desc>`` or relays it)."""

    def __init__(self, desc: str):
        super().__init__(desc)
        self.desc = desc


class Guest(Protocol):
    """What one VM's guest reports through its agent, and the power events PVE sends it."""

    def boot(self, seed: Seed | None, agent_installed: bool) -> None:
        """The VM started with this cloud-init seed (None: no seed attached)."""

    def power_off(self) -> None:
        """The VM stopped (shutdown, stop, the first half of a reboot)."""

    def agent_answers(self) -> bool:
        """Would ``guest-ping`` succeed now?"""

    def host_name(self) -> str: ...

    def network_interfaces(self) -> list[dict[str, Any]]:
        """QGA ``guest-network-get-interfaces``: name, hardware-address, ip-addresses, statistics."""

    def file_read(self, path: str) -> bytes:
        """The whole file; raises :class:`GuestError` when it cannot be opened."""

    def exec(self, argv: list[str], stdin: bytes | None) -> int:
        """Start a process; returns its pid (raises :class:`GuestError` when it cannot start)."""

    def exec_status(self, pid: int) -> dict[str, Any]:
        """QGA ``guest-exec-status``: ``{"exited": False}`` or ``{"exited": True, "exitcode", "out-data", …}``
        with the output as text; a process is forgotten once reported as exited."""


def guest_for(sim: Any, vm: VM) -> Guest:
    """The guest of ``vm``: ``sim.guest_factory(sim, vm)`` when set, else the simulated one."""
    factory = getattr(sim, "guest_factory", None)
    if factory is not None:
        return factory(sim, vm)
    from phoenix.sim.model.guest_sim import SimulatedGuest

    return SimulatedGuest(sim, vm)


def agent_enabled(conf: dict[str, str]) -> bool:
    if not conf.get("agent"):
        return False
    return propstr.split(conf["agent"], default_key="enabled").get("enabled", "0") == "1"


def boot_disk_key(conf: dict[str, str]) -> str | None:
    """The drive the guest boots from: first disk of ``boot: order=`` else the first disk."""
    found = boot_disk(conf)
    return found[0] if found is not None else None


def boot_disk(conf: dict[str, str]) -> tuple[str, dict[str, str]] | None:
    """:func:`boot_disk_key` and that drive parsed (``/cluster/resources`` wants its size, per VM).

    The drive keys are only listed when no ``boot: order=`` entry is a disk (listing them has
    no effect and cannot fail).
    """
    for key in itertools.chain(_boot_order(conf.get("boot", "")), _lazy(drive_keys, conf)):
        value = conf.get(key)
        if value:
            drive = propstr.parse_drive(value)
            if drive.get("media") != "cdrom":
                return key, drive
    return None


@functools.lru_cache(maxsize=1024, typed=True)
def _boot_order(boot: str) -> tuple[str, ...]:
    """The keys of ``boot: order=a;b`` (VMs share a few boot values; a malformed one raises each time)."""
    order = propstr.split(boot, default_key="legacy").get("order", "")
    return tuple(k for k in order.split(";") if k)


def _lazy(function: Any, *args: Any) -> Iterator[str]:
    yield from function(*args)


def assert_agent_configured(vm: VM) -> None:
    """The first two checks of Agent.pm ``assert_agent_available``: an ``agent`` key, a running VM."""
    if vm.conf.get("agent") is None:
        raise PVEError("No QEMU guest agent configured\n")
    if not vm.running:
        raise PVEError(f"VM {vm.vmid} is not running\n")


def assert_agent_available(sim: Any, vm: VM) -> Guest:
    """Agent.pm ``assert_agent_available`` + the guest-ping the API does first (behaviors.md §20).

    A VM started with the agent disabled has no QGA socket, so it fails like a silent agent."""
    assert_agent_configured(vm)
    guest = guest_for(sim, vm)
    if not guest.agent_answers():
        raise PVEError("QEMU guest agent is not running\n")
    return guest


def boot_seed(cluster: Any, vm: VM) -> Seed | None:
    """The cloud-init seed the guest finds at boot: PVE's generated drive, else a ``cidata`` CD-ROM."""
    if has_cloudinit_drive(vm.conf) and vm.ci_generated:
        generated = vm.ci_generated
        return Seed(source="cloudinit", user=generated.get("user", ""), network=generated.get("network", ""),
                    meta=generated.get("meta", ""), vendor=generated.get("vendor", ""),
                    citype=generated.get("citype", "nocloud"))
    for key in drive_keys(vm.conf):
        drive = propstr.parse_drive(vm.conf[key])
        if drive.get("media") != "cdrom" or ":iso/" not in drive.get("file", ""):
            continue
        found = cluster.file_path(vm.node, drive["file"])
        if found is not None and found[0].is_file():
            seed = read_seed_iso(drive["file"], found[0].read_bytes())
            if seed is not None:
                return seed
    return None


def boot(sim: Any, vm: VM) -> None:
    """The VM just started (inside ``qmstart``, model mutex held): its guest boots from its seed.

    An agent installed by the user-data at first boot stays on the disk for later boots and clones."""
    cluster = sim.model
    seed = boot_seed(cluster, vm)
    key = boot_disk_key(vm.conf)
    volume = cluster.volume(vm.node, propstr.parse_drive(vm.conf[key])["file"]) if key else None
    installs_agent = plan_from_seed(seed, vm.conf, vm.vmid).installs_agent
    if volume is not None and installs_agent:
        volume.agent_installed = True
    vm.agent_installed = installs_agent or bool(volume is not None and volume.agent_installed)
    vm.agent_device = agent_enabled(vm.conf)
    vm.started_at = vm.started_at or time.time()
    guest_for(sim, vm).boot(seed, vm.agent_installed)


def power_off(sim: Any, vm: VM) -> None:
    guest_for(sim, vm).power_off()
    vm.agent_device = False
