"""Cloud-init documents and PVE cloud-init options for one VM.

Every document is built as Python data and dumped with ``yaml.safe_dump``: no YAML is ever put
together from strings (the original tool broke its YAML that way as soon as two features were on).
Feature scripts travel inside user-data as ``write_files`` entries; phoenix's feature runner
(:mod:`phoenix.guest.runner`) runs them all from one ``runcmd`` entry and records their results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from phoenix.desired.features import available_features, render_feature
from phoenix.desired.spec import AGENT_PACKAGE, DesiredConfig, VMSpec
from phoenix.guest.runner import RUNNER_PATH, feature_script_path, runner_script

SUDO_RULE = "ALL=(ALL) NOPASSWD:ALL"
USER_GROUPS = ["adm", "sudo"]


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Safe dumper that prints multi-line strings (feature scripts) as readable ``|`` blocks.

    libyaml's emitter when PyYAML has it: 25x faster than the pure-Python one (7 ms per VM, most of a
    large apply's CPU); same text, except that it escapes characters beyond the BMP (same data)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=1 << 16)


def feature_scripts(vm: VMSpec, cfg: DesiredConfig, available: Mapping[str, Path] | None = None) -> list[tuple[str, str]]:
    """``[(name, script)]`` in the VM's declared order (duplicates removed); ``available`` is a listing
    of the features directories taken once for many VMs (else they are listed now)."""
    if available is None:
        available = available_features(cfg.base_dir)
    return [(name, render_feature(name, available[name], vm)) for name in dict.fromkeys(vm.features)]


def build_user_data(vm: VMSpec, cfg: DesiredConfig, agent_baked: bool) -> str:
    """The ``#cloud-config`` user-data text (see :func:`user_data_document`)."""
    return build_user_data_text(user_data_document(vm, cfg, agent_baked))


# Comments put above top-level keys of the dumped user-data (YAML data cannot carry comments).
KEY_COMMENTS = {
    "ssh_deletekeys": "Keep the SSH host keys when cloud-init runs again after a change (new instance-id):\n"
                      "a re-provisioned VM must not look like a different host to its users. A clone still\n"
                      "gets its own keys at first boot, since cloud images ship none.",
}


def build_user_data_text(document: dict[str, Any]) -> str:
    """Dump a :func:`user_data_document` as ``#cloud-config`` YAML, with :data:`KEY_COMMENTS`."""
    text = _dump(document)
    for key, comment in KEY_COMMENTS.items():
        if key in document:
            block = "".join(f"# {line}\n" for line in comment.split("\n"))
            text = text.replace(f"\n{key}:", f"\n{block}{key}:", 1) if not text.startswith(f"{key}:") else block + text
    return "#cloud-config\n" + text


def user_data_document(vm: VMSpec, cfg: DesiredConfig, agent_baked: bool,
                       available: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """The user-data as data: host name, the user, the guest agent, then the feature runner.

    ``agent_baked``: the template image already has qemu-guest-agent, so it is only started;
    otherwise it is installed through ``packages`` and enabled and started first in ``runcmd``.
    SSH password logins are allowed only when the user has a password hash and no SSH key.
    The runner is always there (also without features): its status file tells phoenix that
    cloud-init ran for the current instance-id.  It is the last ``runcmd`` entry, because
    cloud-init's ``runcmd`` script reports only its last command's exit status.
    """
    user: dict[str, Any] = {"name": vm.user.username}
    if vm.user.password_hash is not None:
        user["passwd"] = vm.user.password_hash.get_secret_value()
        user["lock_passwd"] = False
    else:
        user["lock_passwd"] = True
    if vm.user.ssh_public_keys:
        user["ssh_authorized_keys"] = list(vm.user.ssh_public_keys)
    user.update({"sudo": SUDO_RULE, "shell": "/bin/bash", "groups": list(USER_GROUPS)})

    document: dict[str, Any] = {
        "hostname": vm.hostname,
        "fqdn": vm.fqdn,
        "manage_etc_hosts": True,
        "preserve_hostname": False,
        "users": [user],
        "ssh_pwauth": vm.user.password_hash is not None and not vm.user.ssh_public_keys,
        "ssh_deletekeys": False,
        "package_update": True,
        "package_upgrade": bool(cfg.defaults.package_upgrade),
    }
    runcmd: list[list[str]] = []
    if agent_baked:
        runcmd.append(["systemctl", "start", AGENT_PACKAGE])
    else:
        document["packages"] = [AGENT_PACKAGE]
        runcmd.append(["systemctl", "enable", "--now", AGENT_PACKAGE])
    scripts = feature_scripts(vm, cfg, available)
    document["write_files"] = [
        {"path": RUNNER_PATH, "permissions": "0755", "owner": "root:root", "content": runner_script()},
    ] + [
        {"path": feature_script_path(name), "permissions": "0755", "owner": "root:root", "content": script}
        for name, script in scripts
    ]
    runcmd.append([RUNNER_PATH] + [name for name, _ in scripts])
    document["runcmd"] = runcmd
    return document


def build_network_config(vm: VMSpec) -> str:
    """Network config version 2 for a NoCloud seed, one ``ethernets`` entry per NIC.

    A NIC with a declared MAC is matched by it.  Otherwise the MAC is unknown before the clone: a
    lone NIC is matched by name (``e*``: ens18, eth0), and with several, NIC N by its predictable
    name on PVE's PCI layout (net0 → ens18, net1 → ens19 …).  Default routes are written as
    ``0.0.0.0/0`` and ``::/0``, which every cloud-init version parses; IPv6 ``auto`` is SLAAC
    (``accept-ra``).  Name servers and search domain go with the first NIC (cloud-init refuses a
    search list on its own).
    """
    ethernets: dict[str, Any] = {}
    for index, nic in enumerate(vm.nics):
        entry: dict[str, Any] = {"match": _nic_match(index, nic.mac, len(vm.nics))}
        routes: list[dict[str, str]] = []
        addresses: list[str] = []
        entry["dhcp4"] = nic.ip == "dhcp"
        if nic.ip != "dhcp":
            addresses.append(nic.ip)
            if nic.gw:
                routes.append({"to": "0.0.0.0/0", "via": nic.gw})
        if nic.ip6 == "dhcp":
            entry["dhcp6"] = True
        elif nic.ip6 == "auto":
            entry["dhcp6"] = False
            entry["accept-ra"] = True
        elif nic.ip6 is not None:
            entry["dhcp6"] = False
            addresses.append(nic.ip6)
            if nic.gw6:
                routes.append({"to": "::/0", "via": nic.gw6})
        if addresses:
            entry["addresses"] = addresses
        if routes:
            entry["routes"] = routes
        net = vm.network
        if index == 0 and net.nameservers:  # cloud-init refuses a nameservers block without addresses
            entry["nameservers"] = {"addresses": list(net.nameservers)}
            if net.searchdomain:
                entry["nameservers"]["search"] = [net.searchdomain]
        ethernets["primary" if index == 0 else f"nic{index}"] = entry
    return _dump({"version": 2, "ethernets": ethernets})


def _nic_match(index: int, mac: str | None, count: int) -> dict[str, str]:
    if mac:
        return {"macaddress": mac.lower()}
    return {"name": "e*" if count == 1 else f"ens{18 + index}"}


def build_meta_data(vm: VMSpec) -> str:
    """NoCloud meta-data.  The instance-id changes when the VM's cloud-init inputs change, so a
    re-provisioned guest runs its per-instance modules again (as PVE's own sha1 instance-id does)."""
    digest = hashlib.sha256(json.dumps(_identity(vm), sort_keys=True).encode()).hexdigest()[:16]
    return _dump({"instance-id": f"phoenix-{vm.vmid}-{digest}", "local-hostname": vm.hostname})


def _identity(vm: VMSpec) -> dict[str, Any]:
    secret = vm.user.password_hash.get_secret_value() if vm.user.password_hash else ""
    return {
        "name": vm.name, "network": vm.network.model_dump(), "features": vm.features,
        **({"nics": [nic.model_dump() for nic in vm.nics]} if _beyond_shorthand(vm) else {}),
        "user": vm.user.username, "keys": vm.user.ssh_public_keys,
        "password": hashlib.sha256(secret.encode()).hexdigest(),
    }


def _beyond_shorthand(vm: VMSpec) -> bool:
    """The NICs say more than the one-NIC shorthand of the original identity (which stays as it was,
    so an existing VM's instance-id does not change)."""
    first = vm.nics[0]
    return len(vm.nics) > 1 or any(getattr(first, k) not in (None, False, "virtio") for k in
                                   ("vlan", "mac", "firewall", "mtu", "ip6", "gw6", "model"))
