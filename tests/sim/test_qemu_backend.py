"""The simulator with a guest image: VMs whose disk descends from it run as real QEMU processes.

The guest here is a stand-in (an empty disk and this host's kernel: it boots, finds no root
filesystem and waits), enough to test the process side: start, status, a crash showing as
stopped, stop, destroy, and that no QEMU outlives the simulator.  The booted Debian guest with
its agent is tests/guest/test_real_guest.py (slow).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from proxmoxer import ResourceException

from tests.conftest import proxmox_client, start_sim_server

from ._tasks import run

NODE = "pve"
KERNELS = sorted(glob.glob("/boot/vmlinuz-*"))
INITRDS = sorted(glob.glob("/boot/initrd.img-*"))
pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None or not KERNELS or not INITRDS,
    reason="needs qemu-system-x86, qemu-utils and a kernel in /boot (linux-image-amd64)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _eventually(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture
def stand_in_image(tmp_path) -> Path:
    image = tmp_path / "images" / "stand-in.qcow2"
    image.parent.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    os.symlink(KERNELS[-1], f"{image}.vmlinuz")
    os.symlink(INITRDS[-1], f"{image}.initrd")
    return image


@pytest.fixture
def guest_sim(tmp_path, _sim_seed_dir, stand_in_image):
    from tests.conftest import _fresh_data_dir
    server = start_sim_server(_fresh_data_dir(_sim_seed_dir, tmp_path / "sim"), guest_image=stand_in_image,
                              guest_memory_mb=256)
    yield server
    server.stop()


def _template_and_clone(px, server, image: Path) -> None:
    shutil.copyfile(image, server.sim.model.storage_dir_for_tests("local") / "import" / "guest.qcow2")
    run(px, px.nodes(NODE).qemu.post(vmid=9000, name="tpl", memory=2048, agent="enabled=1",
                                     scsi0="local-lvm:0,import-from=local:import/guest.qcow2",
                                     ide2="local-lvm:cloudinit", boot="order=scsi0", net0="virtio,bridge=vmbr0"))
    run(px, px.nodes(NODE).qemu(9000).template.post())
    run(px, px.nodes(NODE).qemu(9000).clone.post(newid=101, name="real", full=1))
    px.nodes(NODE).qemu(101).config.put(ipconfig0="ip=10.0.0.101/24,gw=10.0.0.1", ciuser="phoenix")
    px.nodes(NODE).qemu(101).resize.put(disk="scsi0", size="128M")


def test_a_vm_from_the_image_runs_as_qemu_and_shows_its_real_state(guest_sim, stand_in_image):
    px = proxmox_client(guest_sim)
    _template_and_clone(px, guest_sim, stand_in_image)
    vm = px.nodes(NODE).qemu(101)
    log = [line["t"] for line in px.nodes(NODE).tasks(vm.status.start.post()).log.get()]
    assert any(line.startswith("real guest: QEMU pid") for line in log), log
    current = vm.status.current.get()
    pid = current["pid"]
    assert current["status"] == "running" and _alive(pid)
    assert "qemu-system-x86_64" in Path(f"/proc/{pid}/cmdline").read_text()
    directory = guest_sim.sim.data_dir / "qemu" / "101"
    info = json.loads((directory / "guest.json").read_text())
    assert info["pid"] == pid and info["address"] == "10.0.0.101/24" and info["ssh_port"] > 0
    disk = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(directory / "disk.qcow2")],
                                     check=True, capture_output=True, text=True).stdout)
    assert disk["virtual-size"] == 128 << 20 and disk["backing-filename"] == str(stand_in_image.resolve())
    with pytest.raises(ResourceException) as error:          # no agent in this guest: PVE's words, after 3 s
        vm.agent.ping.post()
    assert error.value.content == "QEMU guest agent is not running"

    os.kill(pid, 9)                                            # a crash: the VM shows as stopped
    assert _eventually(lambda: vm.status.current.get()["status"] == "stopped")
    run(px, vm.status.start.post())
    pid = vm.status.current.get()["pid"]
    assert _alive(pid)
    assert run(px, vm.status.stop.post())["exitstatus"] == "OK"
    assert not _alive(pid) and vm.status.current.get()["status"] == "stopped"
    assert (directory / "disk.qcow2").exists()                 # the disk outlives a stop
    run(px, vm.delete())
    assert not directory.exists()


def test_shutdown_times_out_like_pve_unless_forced_and_no_qemu_outlives_the_simulator(guest_sim, stand_in_image):
    px = proxmox_client(guest_sim)
    _template_and_clone(px, guest_sim, stand_in_image)
    vm = px.nodes(NODE).qemu(101)
    run(px, vm.status.start.post())
    pid = vm.status.current.get()["pid"]
    # no OS answers ACPI in this guest: a shutdown without forceStop fails and leaves it running
    assert run(px, vm.status.shutdown.post(timeout=1))["exitstatus"] == "VM quit/powerdown failed - got timeout"
    assert _alive(pid) and vm.status.current.get()["status"] == "running"
    assert run(px, vm.status.shutdown.post(timeout=1, forceStop=1))["exitstatus"] == "OK"
    assert not _alive(pid)
    run(px, vm.status.start.post())
    pid = vm.status.current.get()["pid"]
    guest_sim.stop()
    assert not _alive(pid)


def test_vms_not_from_the_image_stay_simulated(guest_sim):
    px = proxmox_client(guest_sim)
    run(px, px.nodes(NODE).qemu.post(vmid=102, name="modelled", scsi0="local-lvm:1", agent="enabled=1"))
    run(px, px.nodes(NODE).qemu(102).status.start.post())
    assert px.nodes(NODE).qemu(102).status.current.get()["status"] == "running"
    assert guest_sim.sim.guests.info(102) is None and not (guest_sim.sim.data_dir / "qemu" / "102").exists()


def test_a_missing_image_or_kernel_is_one_clear_error(tmp_path, _sim_seed_dir):
    from phoenix.errors import PhoenixError
    from tests.conftest import _fresh_data_dir
    data_dir = _fresh_data_dir(_sim_seed_dir, tmp_path / "sim")
    with pytest.raises(PhoenixError, match=r"^--guest-image: .*missing\.qcow2 does not exist$"):
        start_sim_server(data_dir, guest_image=tmp_path / "missing.qcow2")
    bare = tmp_path / "bare.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(bare), "16M"], check=True)
    with pytest.raises(PhoenixError, match="bare.qcow2.vmlinuz and bare.qcow2.initrd must lie beside the image"):
        start_sim_server(data_dir, guest_image=bare)
