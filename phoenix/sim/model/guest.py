"""The simulated guest: whether its qemu-guest-agent answers, and what network it reports.

The agent answers only when (a) the VM runs, (b) it was started with ``agent: enabled=1`` (the
virtio-serial port exists only then), (c) the guest has the agent — the boot volume was
customised (see :mod:`phoenix.sim.model.images`) or the cloud-init user-data it booted with
installs ``qemu-guest-agent`` — and (d) ``agent_boot_seconds × task_scale`` have passed since start.
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Any

import yaml

from phoenix.pve import propstr
from phoenix.sim.core import PVEError
from phoenix.sim.model.vm import VM, drive_keys

__all__ = ["agent_enabled", "userdata_installs_agent", "boot_disk_key", "assert_agent_available",
           "agent_ready", "boot_network", "network_interfaces"]

AGENT_PACKAGE = "qemu-guest-agent"


def agent_enabled(conf: dict[str, str]) -> bool:
    if not conf.get("agent"):
        return False
    return propstr.parse(conf["agent"], default_key="enabled").get("enabled", "0") == "1"


def userdata_installs_agent(text: str) -> bool:
    """True when cloud-config installs qemu-guest-agent (``packages:`` or an install command)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(data, dict):
        return False
    for item in data.get("packages") or []:
        name = item[0] if isinstance(item, list) and item else item
        if name == AGENT_PACKAGE:
            return True
    for section in ("runcmd", "bootcmd"):
        for cmd in data.get(section) or []:
            line = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
            if AGENT_PACKAGE in line and re.search(r"\b(apt(-get)?|dnf|yum|zypper|apk)\b.*\b(install|add)\b", line):
                return True
    return False


def boot_disk_key(conf: dict[str, str]) -> str | None:
    """The drive the guest boots from: first disk of ``boot: order=`` else the first disk."""
    order = propstr.parse(conf.get("boot", ""), default_key="legacy").get("order", "")
    candidates = [k for k in order.split(";") if k] + drive_keys(conf)
    for key in candidates:
        value = conf.get(key)
        if value and propstr.parse_drive(value).get("media") != "cdrom":
            return key
    return None


def assert_agent_available(vm: VM) -> None:
    """Agent.pm ``assert_agent_available`` + the guest-ping the API does first."""
    if vm.conf.get("agent") is None:
        raise PVEError("No QEMU guest agent configured\n")
    if not vm.running:
        raise PVEError(f"VM {vm.vmid} is not running\n")
    if not agent_enabled(vm.conf):
        raise PVEError("QEMU guest agent is not enabled\n")


def agent_ready(vm: VM, boot_seconds: float) -> bool:
    if not (vm.running and vm.agent_device and vm.agent_installed and vm.started_at):
        return False
    return time.time() >= vm.started_at + boot_seconds


def boot_network(vm: VM, conf: dict[str, str]) -> dict[str, Any]:
    """What each NIC got at boot: the static ``ipconfigN`` address or a DHCP-looking one."""
    nics = {}
    for key in sorted(k for k in conf if re.fullmatch(r"net\d+", k)):
        ident = int(key[3:])
        net = propstr.parse_net(conf[key])
        ipconfig = propstr.parse_ipconfig(conf.get(f"ipconfig{ident}", "")) if conf.get(f"ipconfig{ident}") else {}
        ip4 = ipconfig.get("ip")
        if ip4 and ip4 != "dhcp":
            address = str(ipaddress.ip_interface(ip4))
        else:
            address = f"192.168.{100 + ident}.{(vm.vmid % 200) + 20}/24"
        nics[f"eth{ident}"] = {"mac": (net.get("macaddr") or "").lower(), "ipv4": address,
                               "ipv6": ipconfig.get("ip6") if ipconfig.get("ip6") not in (None, "dhcp", "auto") else None}
    return nics


def _addr(cidr: str) -> dict[str, Any]:
    iface = ipaddress.ip_interface(cidr)
    return {"ip-address": str(iface.ip), "ip-address-type": f"ipv{iface.version}", "prefix": iface.network.prefixlen}


def network_interfaces(vm: VM) -> list[dict[str, Any]]:
    """QGA ``guest-network-get-interfaces`` for the simulated guest."""
    stats = {"rx-bytes": 0, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 0,
             "tx-bytes": 0, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 0}
    result = [{"name": "lo", "hardware-address": "00:00:00:00:00:00",
               "ip-addresses": [_addr("127.0.0.1/8"), _addr("::1/128")], "statistics": dict(stats)}]
    for name, nic in vm.boot_network.items():
        addresses = [_addr(nic["ipv4"])]
        if nic.get("ipv6"):
            addresses.append(_addr(nic["ipv6"]))
        mac = nic["mac"]
        octets = mac.split(":") if mac else ["00"] * 6
        link_local = f"fe80::{int(octets[0], 16) ^ 2:x}{octets[1]}:{octets[2]}ff:fe{octets[3]}:{octets[4]}{octets[5]}/64"
        addresses.append(_addr(link_local))
        result.append({"name": name, "hardware-address": mac, "ip-addresses": addresses,
                       "statistics": dict(stats)})
    return result
