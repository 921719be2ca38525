"""Start one real guest: overlay disk, NoCloud seed ISO, user-mode network, QEMU process.

What a VM start gives QEMU (see docs/design.md "A real guest behind the simulator"):

* the boot disk as a qcow2 overlay of the guest image (``qemu-img create -b``), grown to the
  VM's declared disk size; it lives as long as the VM (stop/start keep it, destroy removes it);
* the cloud-init drive as an ISO labelled ``cidata`` with the files the simulator generated;
* net0's MAC on a user-mode NIC with ``restrict=on`` (nothing leaves the host) whose subnet and
  host address make the declared static address and gateway work (:func:`slirp_network`), and
  SSH forwarded from a free 127.0.0.1 port;
* the guest agent on a virtio-serial port (unix socket), QMP on another, the serial console in a file.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import signal
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from phoenix.sim import propstr
from phoenix.snippets.iso import build_cidata_iso

__all__ = ["Limits", "GuestProcess", "slirp_network", "create_overlay", "write_seed", "qemu_args", "launch",
           "free_port", "NIC_MODELS"]

NIC_MODELS = {"virtio": "virtio-net-pci", "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139",
              "vmxnet3": "vmxnet3"}
DEFAULT_NET = "10.0.2.0/24"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Limits:
    """Caps on what one guest may take, so two guests fit on a 2-core, 24 GiB machine."""

    memory_mb: int = 1024
    cpus: int = 1
    accel: str = "tcg"         # "kvm" or "tcg" (chosen once per simulator, see backend.probe_accel)


@dataclass
class GuestProcess:
    """What a running guest is reachable through; written to ``guest.json`` in its directory."""

    vmid: int
    pid: int
    ssh_port: int
    qga_socket: str
    qmp_socket: str
    console_log: str
    overlay: str
    address: str | None
    accel: str

    def save(self, directory: Path) -> None:
        tmp = directory / "guest.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, directory / "guest.json")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def slirp_network(conf: dict[str, str]) -> dict[str, str]:
    """QEMU user-net options so net0's declared IPv4 setting works inside the guest.

    A static ``ip=A/p,gw=G`` gets ``net`` = A's network and ``host`` = G (the gateway answers,
    as slirp's virtual host); without a gateway the first other address is the host.  QEMU's DNS
    address must differ from the host's, so it takes the next free one.  DHCP keeps QEMU's default
    network, whose built-in DHCP server hands out an address.
    """
    ipconfig = propstr.parse_ipconfig(conf["ipconfig0"]) if conf.get("ipconfig0") else {}
    ip4 = ipconfig.get("ip")
    if not ip4 or ip4 == "dhcp":
        return {"net": DEFAULT_NET}
    iface = ipaddress.ip_interface(ip4)
    network = iface.network
    if network.prefixlen > 29:                    # too small for guest + host + dns: widen, keep the address
        network = ipaddress.ip_network(f"{iface.ip}/29", strict=False)
    taken = {iface.ip}
    gateway = ipaddress.ip_address(ipconfig["gw"]) if ipconfig.get("gw") else None
    host = gateway if gateway is not None and gateway in network and gateway != iface.ip else None
    hosts = (h for h in network.hosts() if h not in taken)
    if host is None:
        host = next(hosts)
    taken.add(host)
    dns = next(h for h in network.hosts() if h not in taken)
    return {"net": str(network), "host": str(host), "dns": str(dns), "address": str(iface)}


def create_overlay(image: Path, overlay: Path, size_bytes: int) -> None:
    """The VM's disk: copy-on-write on the image, at least ``size_bytes`` large (never shrunk)."""
    if not overlay.exists():
        tmp = overlay.with_name(overlay.name + ".tmp")
        _qemu_img(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image), str(tmp)])
        os.replace(tmp, overlay)
    current = json.loads(_qemu_img(["info", "--output=json", str(overlay)]))["virtual-size"]
    if size_bytes > current:
        _qemu_img(["resize", "-q", str(overlay), str(size_bytes)])


def _qemu_img(args: list[str]) -> str:
    result = subprocess.run(["qemu-img", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"qemu-img {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def write_seed(files: dict[str, str], path: Path) -> None:
    """The NoCloud seed ISO from the simulator's generated files (user, network, meta)."""
    data = build_cidata_iso(files["user"], files["meta"], files.get("network") or None)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def qemu_args(vmid: int, directory: Path, kernel: Path, initrd: Path, conf: dict[str, str], limits: Limits,
              ssh_port: int) -> list[str]:
    """The QEMU command line (see module docstring)."""
    net = propstr.parse_net(conf.get("net0", "virtio"))
    model = NIC_MODELS.get(net.get("model", "virtio"), "virtio-net-pci")
    slirp = slirp_network(conf)
    # hostfwd's guest address defaults to slirp's first DHCP lease (.15): a static guest needs its own
    guest = slirp["address"].split("/")[0] if "address" in slirp else ""
    netdev = f"user,id=n0,restrict=on,net={slirp['net']},hostfwd=tcp:127.0.0.1:{ssh_port}-{guest}:22"
    if "host" in slirp:
        netdev += f",host={slirp['host']},dns={slirp['dns']}"
    nic = f"{model},netdev=n0" + (f",mac={net['macaddr']}" if net.get("macaddr") else "")
    memory = min(limits.memory_mb, _declared_memory(conf))
    cpus = max(1, min(limits.cpus, _declared_cpus(conf)))
    return [
        "qemu-system-x86_64", "-name", f"phoenix-sim-{vmid}", "-accel", limits.accel, "-machine", "pc",
        "-m", str(memory), "-smp", str(cpus), "-nodefaults", "-display", "none", "-no-user-config",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "root=/dev/vda rw console=ttyS0 panic=-1",
        "-drive", f"file={directory / 'disk.qcow2'},if=virtio,format=qcow2,cache=unsafe",
        "-drive", f"file={directory / 'cidata.iso'},if=ide,media=cdrom,format=raw,readonly=on",
        "-netdev", netdev, "-device", nic,
        "-chardev", f"socket,path={directory / 'qga.sock'},server=on,wait=off,id=qga0",
        "-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        "-qmp", f"unix:{directory / 'qmp.sock'},server=on,wait=off",
        "-chardev", f"file,id=console0,path={directory / 'console.log'},append=on", "-serial", "chardev:console0",
        "-object", "rng-random,filename=/dev/urandom,id=rng0", "-device", "virtio-rng-pci,rng=rng0",
    ]


def _declared_memory(conf: dict[str, str]) -> int:
    value = propstr.split(conf.get("memory", "512"), default_key="current").get("current", "512")
    return int(value)


def _declared_cpus(conf: dict[str, str]) -> int:
    return int(conf.get("vcpus") or int(conf.get("sockets", 1)) * int(conf.get("cores", 1)))


def _die_with_parent() -> None:
    """In the child: SIGKILL when the simulator's spawner thread (alive as long as it) dies."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


# One long-lived thread forks every QEMU: PR_SET_PDEATHSIG fires when the *thread* that forked
# exits, so forking from short-lived task threads would kill the guest when its start task ends.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="phoenix-qemu-spawner")


def launch(args: list[str], directory: Path) -> subprocess.Popen:
    """Start QEMU in its own session; its stderr goes to ``qemu.log`` beside the console log."""
    def spawn() -> subprocess.Popen:
        with open(directory / "qemu.log", "ab") as log:
            return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    preexec_fn=_die_with_parent, close_fds=True)
    return _SPAWNER.submit(spawn).result()


def describe(process: subprocess.Popen, vmid: int, directory: Path, ssh_port: int, conf: dict[str, Any],
             accel: str) -> GuestProcess:
    return GuestProcess(vmid=vmid, pid=process.pid, ssh_port=ssh_port, qga_socket=str(directory / "qga.sock"),
                        qmp_socket=str(directory / "qmp.sock"), console_log=str(directory / "console.log"),
                        overlay=str(directory / "disk.qcow2"), address=slirp_network(conf).get("address"),
                        accel=accel)
