"""What a guest learns from the cloud-init seed it booted with: instance-id, host name, network, files.

cloud-init reads the NoCloud/ConfigDrive seed at boot, not PVE's live config, so everything the
simulated guest reports comes from here: a ``ipconfig0`` changed after the start shows only once
the VM booted again with a regenerated drive.  The seed is either the drive PVE generated at the
last start (``VM.ci_generated``) or a NoCloud ISO (label ``cidata``) attached as a CD-ROM, as
phoenix's ``iso`` snippet backend does.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from phoenix.guest.runner import RUNNER_PATH
from phoenix.sim import propstr

__all__ = ["Seed", "GuestPlan", "read_seed_iso", "plan_from_seed", "dhcp_address", "nic_macs"]

AGENT_PACKAGE = "qemu-guest-agent"
_INSTALL_RE = re.compile(r"\b(apt(-get)?|dnf|yum|zypper|apk)\b.*\b(install|add)\b")


@dataclass(frozen=True)
class Seed:
    """The documents of one cloud-init seed (``source``: ``cloudinit`` or the ISO's volid)."""

    source: str
    user: str = ""
    network: str = ""
    meta: str = ""
    vendor: str = ""
    citype: str = "nocloud"

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "user": self.user, "network": self.network, "meta": self.meta,
                "vendor": self.vendor, "citype": self.citype}


@dataclass
class GuestPlan:
    """What cloud-init will do with a seed: identity, addresses per NIC, files, runner features."""

    instance_id: str | None
    hostname: str
    nics: dict[str, dict[str, Any]]                   # eth0 → {"mac", "ipv4" (CIDR or None), "ipv6"}
    files: dict[str, str] = field(default_factory=dict)  # write_files: path → content
    features: list[str] | None = None                 # the runner's arguments; None = no runner in runcmd
    installs_agent: bool = False


def read_seed_iso(source: str, data: bytes) -> Seed | None:
    """A NoCloud seed ISO's documents, or None when it is not one (no ``cidata`` label)."""
    from phoenix.snippets.iso import read_cidata_iso

    try:
        files = read_cidata_iso(data)
    except Exception:  # noqa: BLE001 - any unreadable ISO is simply not a seed
        return None
    if files.get("__label__", b"").lower() != b"cidata":
        return None
    text = {k: v.decode("utf-8", errors="replace") for k, v in files.items() if k != "__label__"}
    return Seed(source=source, user=text.get("user-data", ""), network=text.get("network-config", ""),
                meta=text.get("meta-data", ""), vendor=text.get("vendor-data", ""))


# libyaml's loader when PyYAML has it: the pure-Python one spent ~0.1 s of CPU per booted guest
# parsing its user-data (the runner script is a long block scalar), most of a large apply's cost.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER) if text else None  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return None


def _instance_id(seed: Seed) -> str | None:
    if seed.citype == "configdrive2":
        try:
            return str(json.loads(seed.meta)["uuid"])
        except (ValueError, KeyError, TypeError):
            return None
    meta = _yaml(seed.meta)
    return str(meta["instance-id"]) if isinstance(meta, dict) and meta.get("instance-id") else None


def _hostname(user: dict[str, Any], meta: Any) -> str:
    for value in (user.get("hostname"), (user.get("fqdn") or "").split(".")[0],
                  meta.get("local-hostname") if isinstance(meta, dict) else None):
        if value:
            return str(value).split(".")[0]
    return "localhost"


def _runcmd_features(user: dict[str, Any]) -> list[str] | None:
    for cmd in user.get("runcmd") or []:
        argv = cmd if isinstance(cmd, list) else str(cmd).split()
        if argv and str(argv[0]) == RUNNER_PATH:
            return [str(a) for a in argv[1:]]
    return None


def _installs_agent(user: dict[str, Any]) -> bool:
    for item in user.get("packages") or []:
        name = item[0] if isinstance(item, list) and item else item
        if name == AGENT_PACKAGE:
            return True
    for section in ("runcmd", "bootcmd"):
        for cmd in user.get(section) or []:
            line = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
            if AGENT_PACKAGE in line and _INSTALL_RE.search(line):
                return True
    return False


def nic_macs(conf: dict[str, str]) -> dict[str, str]:
    """``eth<N>`` → lowercase MAC of ``net<N>`` (the guest names NICs in PVE's order)."""
    macs = {}
    for key in sorted((k for k in conf if re.fullmatch(r"net\d+", k)), key=lambda k: int(k[3:])):
        try:
            mac = propstr.parse_net(conf[key]).get("macaddr") or ""
        except ValueError:
            mac = ""
        macs[f"eth{key[3:]}"] = mac.lower()
    return macs


def dhcp_address(vmid: int, ident: int) -> str:
    """What the simulated DHCP server hands out: stable per VM and NIC."""
    return f"192.168.{100 + ident}.{(vmid % 200) + 20}/24"


def _v1_nics(config: list[Any], macs: dict[str, str], vmid: int) -> dict[str, dict[str, Any]]:
    by_mac = {mac: name for name, mac in macs.items() if mac}
    found: dict[str, dict[str, Any]] = {}
    for item in config:
        if not isinstance(item, dict) or item.get("type") != "physical":
            continue
        name = by_mac.get(str(item.get("mac_address", "")).lower()) or str(item.get("name", ""))
        if name not in macs:
            continue
        nic = {"ipv4": None, "ipv6": None}
        for subnet in item.get("subnets") or []:
            kind = subnet.get("type") if isinstance(subnet, dict) else None
            if kind == "dhcp4" or kind == "dhcp":
                nic["ipv4"] = dhcp_address(vmid, int(name[3:]))
            elif kind == "static" and subnet.get("address"):
                address = str(subnet["address"])
                if "/" not in address and subnet.get("netmask"):
                    address = str(ipaddress.ip_interface(f"{address}/{subnet['netmask']}"))
                nic["ipv4"] = address
            elif kind == "static6" and subnet.get("address"):
                nic["ipv6"] = str(subnet["address"])
        found[name] = nic
    return found


def _v2_nics(ethernets: dict[str, Any], macs: dict[str, str], vmid: int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for key, spec in ethernets.items():
        if not isinstance(spec, dict):
            continue
        match = spec.get("match") if isinstance(spec.get("match"), dict) else {"name": key}
        names = [n for n, mac in macs.items()
                 if (not match.get("macaddress") or str(match["macaddress"]).lower() == mac)
                 and (not match.get("name") or fnmatch.fnmatch(n, str(match["name"])))]
        if not names:
            continue
        name = names[0]
        nic: dict[str, Any] = {"ipv4": None, "ipv6": None}
        if spec.get("dhcp4"):
            nic["ipv4"] = dhcp_address(vmid, int(name[3:]))
        for address in spec.get("addresses") or []:
            version = ipaddress.ip_interface(str(address)).version
            nic["ipv4" if version == 4 else "ipv6"] = str(address)
        found[name] = nic
    return found


def _eni_nics(text: str, macs: dict[str, str], vmid: int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    current = None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 4 and words[0] == "iface" and words[1] in macs and words[2] == "inet":
            current = found.setdefault(words[1], {"ipv4": None, "ipv6": None})
            if words[3] == "dhcp":
                current["ipv4"] = dhcp_address(vmid, int(words[1][3:]))
        elif current is not None and len(words) == 2 and words[0] == "address":
            current["ipv4"] = words[1]
        elif current is not None and len(words) == 2 and words[0] == "netmask" and current["ipv4"]:
            current["ipv4"] = str(ipaddress.ip_interface(f"{current['ipv4'].split('/')[0]}/{words[1]}"))
    return found


def _network(seed: Seed, macs: dict[str, str], vmid: int) -> dict[str, dict[str, Any]]:
    if seed.citype == "configdrive2":
        configured = _eni_nics(seed.network, macs, vmid)
    else:
        doc = _yaml(seed.network)
        if isinstance(doc, dict) and "network" in doc and isinstance(doc["network"], dict):
            doc = doc["network"]
        if isinstance(doc, dict) and doc.get("version") == 1 and isinstance(doc.get("config"), list):
            configured = _v1_nics(doc["config"], macs, vmid)
        elif isinstance(doc, dict) and doc.get("version") == 2 and isinstance(doc.get("ethernets"), dict):
            configured = _v2_nics(doc["ethernets"], macs, vmid)
        else:   # no network config: cloud-init's fallback is DHCP on the first NIC
            first = next(iter(macs), None)
            configured = {first: {"ipv4": dhcp_address(vmid, int(first[3:])), "ipv6": None}} if first else {}
    return {name: {"mac": mac, **configured.get(name, {"ipv4": None, "ipv6": None})} for name, mac in macs.items()}


def plan_from_seed(seed: Seed | None, conf: dict[str, str], vmid: int) -> GuestPlan:
    """What the guest will be after cloud-init ran this seed (without a seed: DHCP, no runner)."""
    macs = nic_macs(conf)
    if seed is None:
        first = next(iter(macs), None)
        nics = {name: {"mac": mac, "ipv4": dhcp_address(vmid, int(name[3:])) if name == first else None,
                       "ipv6": None} for name, mac in macs.items()}
        return GuestPlan(instance_id=None, hostname="localhost", nics=nics)
    user = _yaml(seed.user)
    user = user if isinstance(user, dict) else {}
    files = {str(f["path"]): str(f.get("content", "")) for f in user.get("write_files") or []
             if isinstance(f, dict) and f.get("path") and not f.get("encoding")}
    return GuestPlan(instance_id=_instance_id(seed), hostname=_hostname(user, _yaml(seed.meta)),
                     nics=_network(seed, macs, vmid), files=files, features=_runcmd_features(user),
                     installs_agent=_installs_agent(user))
