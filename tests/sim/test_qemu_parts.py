"""The real-guest backend's parts, each against the real tool: user-net layout, QEMU command line,
qemu-img overlays, the NoCloud seed ISO, and the QMP/QGA clients on a real QEMU process."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from phoenix.sim.qemu.backend import probe_accel
from phoenix.sim.qemu.channels import AgentError, ChannelError, QGAClient, QMPClient
from phoenix.sim.qemu.launcher import Limits, create_overlay, qemu_args, slirp_network, write_seed
from phoenix.snippets.iso import read_cidata_iso

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 is not installed")
MAC = "BC:24:11:AA:BB:CC"


@pytest.mark.parametrize("ipconfig, expected", [
    ("ip=10.0.0.101/24,gw=10.0.0.1", {"net": "10.0.0.0/24", "host": "10.0.0.1", "dns": "10.0.0.2",
                                      "address": "10.0.0.101/24"}),
    ("ip=192.168.7.2/24,gw=192.168.7.2", {"net": "192.168.7.0/24", "host": "192.168.7.1", "dns": "192.168.7.3",
                                          "address": "192.168.7.2/24"}),     # a gateway equal to the address
    ("ip=172.16.5.9/16", {"net": "172.16.0.0/16", "host": "172.16.0.1", "dns": "172.16.0.2",
                          "address": "172.16.5.9/16"}),
    ("ip=10.9.9.1/30,gw=10.9.9.2", {"net": "10.9.9.0/29", "host": "10.9.9.2", "dns": "10.9.9.3",
                                    "address": "10.9.9.1/30"}),            # too small for slirp: widened
    ("ip=dhcp", {"net": "10.0.2.0/24"}),
    (None, {"net": "10.0.2.0/24"}),
])
def test_user_network_makes_the_declared_address_and_gateway_work(ipconfig, expected):
    conf = {"net0": f"virtio={MAC},bridge=vmbr0"}
    if ipconfig:
        conf["ipconfig0"] = ipconfig
    assert slirp_network(conf) == expected


def test_command_line_keeps_traffic_local_and_caps_the_guest(tmp_path):
    conf = {"net0": f"virtio={MAC},bridge=vmbr0", "ipconfig0": "ip=10.0.0.101/24,gw=10.0.0.1",
            "memory": "8192", "cores": "4"}
    args = qemu_args(8001, tmp_path, tmp_path / "k", tmp_path / "i", conf, Limits(memory_mb=1024, cpus=1), 2222)
    joined = " ".join(args)
    netdev = args[args.index("-netdev") + 1]
    assert "restrict=on" in netdev and "hostfwd=tcp:127.0.0.1:2222-10.0.0.101:22" in netdev
    assert "net=10.0.0.0/24" in netdev and "host=10.0.0.1" in netdev and "dns=10.0.0.2" in netdev
    assert args[args.index("-netdev") + 3] == f"virtio-net-pci,netdev=n0,mac={MAC}"
    assert args[args.index("-m") + 1] == "1024" and args[args.index("-smp") + 1] == "1"
    assert "name=org.qemu.guest_agent.0" in joined and f"path={tmp_path / 'console.log'},append=on" in joined
    small = qemu_args(8001, tmp_path, tmp_path / "k", tmp_path / "i", dict(conf, memory="512", cores="1"),
                      Limits(memory_mb=1024, cpus=2), 2222)
    assert small[small.index("-m") + 1] == "512" and small[small.index("-smp") + 1] == "1"


@needs_qemu_img
def test_overlay_descends_from_the_image_and_grows_to_the_disk_size(tmp_path):
    image = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    overlay = tmp_path / "disk.qcow2"
    create_overlay(image, overlay, 128 << 20)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["backing-filename"] == str(image) and info["virtual-size"] == 128 << 20
    create_overlay(image, overlay, 96 << 20)                 # never shrunk
    create_overlay(image, overlay, 256 << 20)                # grown in place (a resize)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["virtual-size"] == 256 << 20 and info["backing-filename"] == str(image)


def test_seed_iso_carries_the_generated_files(tmp_path):
    files = {"user": "#cloud-config\nhostname: a\n", "network": "version: 1\nconfig: []\n",
             "meta": "instance-id: 0123abcd\n", "vendor": "", "citype": "nocloud"}
    write_seed(files, tmp_path / "cidata.iso")
    found = read_cidata_iso((tmp_path / "cidata.iso").read_bytes())
    assert found["__label__"] == b"cidata"
    assert (found["user-data"], found["meta-data"], found["network-config"]) == (
        files["user"].encode(), files["meta"].encode(), files["network"].encode())


def test_accel_probe_falls_back_to_tcg_without_a_kvm_device(tmp_path):
    assert probe_accel(str(tmp_path / "no-kvm")) == "tcg"
    no_flags = tmp_path / "cpuinfo"
    no_flags.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx\n")
    assert probe_accel("/dev/kvm", str(no_flags)) == "tcg"     # /dev/kvm without VMX/SVM: not usable
    assert probe_accel() in ("kvm", "tcg")


@needs_qemu
def test_monitor_and_agent_clients_on_a_real_qemu(tmp_path):
    qmp, qga = tmp_path / "qmp.sock", tmp_path / "qga.sock"
    process = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "none", "-S", "-nodefaults", "-display", "none",
         "-qmp", f"unix:{qmp},server=on,wait=off",
         "-chardev", f"socket,path={qga},server=on,wait=off,id=qga0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (qmp.exists() and qga.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        monitor = QMPClient(qmp)
        assert monitor.execute("query-status")["status"] == "prelaunch"
        with pytest.raises(AgentError) as info:
            monitor.execute("no-such-command")
        assert "no-such-command" in info.value.desc
        agent = QGAClient(qga)                 # nothing behind the port: no answer, in bounded time
        assert agent.ping(timeout=0.5) is False
        with pytest.raises(ChannelError):
            agent.execute("guest-info", timeout=0.5)
        monitor.execute("quit")
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.wait()
