"""Where the simulator's power and agent code meets the real-guest backend (the only seam).

The handlers call these few functions; each is a no-op (or None) unless the simulator runs with a
guest image and the VM's boot disk descends from it, so the modelled guest stays the fast default.
"""

from __future__ import annotations

from typing import Any

from phoenix.sim import propstr
from phoenix.sim.core import PVEError
from phoenix.sim.qemu.backend import GuestBackend, GuestError
from phoenix.sim.qemu.channels import AgentError, ChannelError, QGAClient
from phoenix.sim.qemu.launcher import Limits

__all__ = ["attach_backend", "start_real_guest", "stop_real_guest", "real_agent", "agent_call", "is_real"]

AGENT_TIMEOUT = 5.0          # PVE's QMPClient default per QGA command
PING_TIMEOUT = 3.0           # the availability ping


def attach_backend(sim: Any) -> GuestBackend:
    """Create the backend for ``sim`` (``Settings.guest_image``) and let the model recognise the image."""
    from phoenix.sim.qemu.backend import probe_accel

    settings = sim.settings
    limits = Limits(memory_mb=settings.guest_memory_mb, cpus=settings.guest_cpus, accel=probe_accel())
    try:
        backend = GuestBackend(settings.guest_image, sim.data_dir, limits, on_exit=lambda vmid, pid: _exited(sim, vmid, pid))
    except GuestError as exc:
        from phoenix.errors import PhoenixError
        raise PhoenixError(str(exc)) from None
    sim.model.guest_image_match = backend.matches
    _forget_dead_guests(sim)
    return backend


def _forget_dead_guests(sim: Any) -> None:
    """A new simulator has no QEMU yet: VMs that ran as real guests under an earlier one are stopped
    (their QEMU died with it), as PVE shows VMs after a host crash."""
    with sim.mutex:
        changed = False
        for vm in sim.model.vms.values():
            volume = _boot_volume(sim.model, vm) if vm.running else None
            if volume is not None and volume.guest_image:
                vm.status, vm.started_at, vm.pid, vm.agent_device = "stopped", None, None, False
                changed = True
        if changed:
            sim.save()


def _exited(sim: Any, vmid: int, pid: int) -> None:
    """A guest ended on its own (poweroff inside, crash): the VM shows as stopped, as on PVE."""
    with sim.mutex:
        vm = sim.model.vms.get(vmid)
        if vm is not None and vm.running and vm.pid == pid:
            vm.status, vm.started_at, vm.pid, vm.agent_device = "stopped", None, None, False
            sim.save()


def _boot_volume(cluster: Any, vm: Any) -> Any:
    from phoenix.sim.model.guest import boot_disk_key

    key = boot_disk_key(vm.conf)
    if key is None:
        return None
    return cluster.volume(vm.node, propstr.parse_drive(vm.conf[key])["file"])


def start_real_guest(sim: Any, task: Any, node: str, vmid: int) -> int | None:
    """Boot the VM in QEMU when it should be real; returns QEMU's pid (None: the modelled guest)."""
    backend: GuestBackend | None = sim.guests
    if backend is None:
        return None
    with sim.mutex:
        vm = sim.model.vm_on(node, vmid)
        volume = _boot_volume(sim.model, vm)
        if volume is None or not volume.guest_image:
            return None
        conf, files, size = dict(vm.conf), dict(vm.ci_generated), volume.size
    if not files:
        task.log("real guest: no cloud-init drive; the guest boots without one")
        files = {"user": "", "meta": f"instance-id: phoenix-sim-{vmid}\n", "network": ""}
    elif files.get("citype", "nocloud") != "nocloud":
        task.log(f"real guest: citype {files['citype']} is written as a NoCloud drive (the only kind supported)")
    try:
        info = backend.start(vmid, conf, files, size)
    except (GuestError, RuntimeError, OSError) as exc:
        raise PVEError(f"start failed: {exc}\n") from None
    limits = backend.limits
    task.log(f"real guest: QEMU pid {info.pid} ({info.accel}, up to {limits.memory_mb} MiB, {limits.cpus} vCPU); "
             f"ssh on 127.0.0.1:{info.ssh_port}; console log {info.console_log}")
    return info.pid


def is_real(sim: Any, vmid: int) -> bool:
    return sim.guests is not None and sim.guests.running(vmid)


def stop_real_guest(sim: Any, vmid: int, *, graceful: bool, timeout: float = 60.0, force: bool = False,
                    use_agent: bool = True) -> None:
    """``stop`` kills; ``shutdown`` asks the guest (agent, else ACPI) and on timeout kills only with
    ``force`` (PVE's ``forceStop``), else fails like PVE and the guest keeps running."""
    if not is_real(sim, vmid):
        return
    if not graceful:
        sim.guests.kill(vmid)
        return
    if not sim.guests.shutdown(vmid, timeout, use_agent=use_agent, force=force):
        raise PVEError("VM quit/powerdown failed - got timeout\n")


def real_agent(sim: Any, vm: Any) -> QGAClient | None:
    """The real agent of a VM running in QEMU, checked like PVE does (3 s ``guest-ping``)."""
    if sim.guests is None or not vm.running:
        return None
    agent = sim.guests.agent(vm.vmid)
    if agent is None:
        return None
    if not agent.ping(PING_TIMEOUT):
        raise PVEError("QEMU guest agent is not running\n")
    return agent


def agent_call(agent: QGAClient, vmid: int, command: str, arguments: dict[str, Any] | None = None,
               timeout: float = AGENT_TIMEOUT) -> Any:
    """One QGA command with PVE's error texts: timeout → ``qga command ... got timeout``,
    QGA error → ``Agent error: <desc>``."""
    try:
        return agent.execute(command, arguments, timeout=timeout)
    except ChannelError:
        raise PVEError(f"VM {vmid} qga command '{command}' failed - got timeout\n") from None
    except AgentError as exc:
        raise PVEError(f"Agent error: {exc.desc}\n") from None
