"""Checks that span the whole file: unique VM IDs, names and addresses, template references, features.

They run on the raw (native-form) data, independently of the per-field model checks, so one pass
reports a typo in one VM *and* a duplicate VM ID in another.  Anything of an unexpected type is
skipped here; the model checks report it.
"""

from __future__ import annotations

import difflib
import ipaddress
from typing import Any, Callable, Iterable

from phoenix.desired import ipv4
from phoenix.desired.problems import Problem, join_path


def _entries(data: dict[str, Any], key: str) -> Iterable[tuple[str, dict[str, Any]]]:
    items = data.get(key)
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict):
                yield join_path(key, index), item


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cross_check(data: dict[str, Any], existing_templates: frozenset[int], features: Iterable[str],
                where: Callable[[str], str] = lambda p: p) -> list[Problem]:
    """Every cross-document problem; ``where`` maps native paths to the user's paths (legacy)."""
    problems: list[Problem] = []
    first_use: dict[int, str] = {}
    template_ids: set[int] = set()
    vm_ids: set[int] = set()
    for key in ("templates", "vms"):
        for path, entry in _entries(data, key):
            vmid = _int(entry.get("vmid"))
            if vmid is None:
                continue
            if vmid in first_use:
                problems.append(Problem(where(join_path(path, "vmid")),
                                        f"VM ID {vmid} is already used by {where(first_use[vmid])}"))
            else:
                first_use[vmid] = path
            (template_ids if key == "templates" else vm_ids).add(vmid)
    problems += _unique(data, "name", "name {!r} is already used by {}", where)
    problems += _unique_addresses(data, where)
    problems += _unique_disk_slots(data, where)
    problems += _balloon_within_memory(data, where)
    for path, entry in _entries(data, "vms"):
        source = _int(entry.get("clone_from_vmid"))
        if source is None or source in template_ids or source in existing_templates:
            continue
        if source in vm_ids:
            message = f"{source} is a VM in this file, not a template"
        else:
            message = f"no template {source} is declared in templates or exists in the cluster"
        problems.append(Problem(where(join_path(path, "clone_from_vmid")), message))
    problems += _known_features(data, sorted(set(features)), where)
    return problems


def _unique(data: dict[str, Any], key: str, message: str, where: Callable[[str], str]) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path, entry in _entries(data, "vms"):
        value = entry.get(key)
        if not isinstance(value, str):
            continue
        if value.lower() in seen:
            problems.append(Problem(where(join_path(path, key)), message.format(value, where(seen[value.lower()]))))
        else:
            seen[value.lower()] = path
    return problems


def _unique_addresses(data: dict[str, Any], where: Callable[[str], str]) -> list[Problem]:
    """Two NICs with the same static address (IPv4 or IPv6) would fight over it."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path, entry in _entries(data, "vms"):
        for nic_path, nic in _nic_entries(path, entry):
            for key, kind in (("ip", ipaddress.IPv4Interface), ("ip6", ipaddress.IPv6Interface)):
                ip = nic.get(key)
                if not isinstance(ip, str) or ip in ("dhcp", "auto"):
                    continue
                address = ipv4.host_address(ip) if key == "ip" else None
                if address is None:
                    try:
                        address = str(kind(ip).ip)
                    except ValueError:
                        continue
                ip_path = join_path(nic_path, key)
                if address in seen:
                    problems.append(Problem(where(ip_path),
                                            f"address {address} is already used by {where(seen[address])}"))
                else:
                    seen[address] = ip_path
    return problems


def _unique_disk_slots(data: dict[str, Any], where: Callable[[str], str]) -> list[Problem]:
    """One disk per slot in a VM."""
    problems: list[Problem] = []
    for path, entry in _entries(data, "vms"):
        seen: dict[str, str] = {}
        for disk_path, disk in _entries(entry, "disks"):
            slot = disk.get("interface")
            if not isinstance(slot, str):
                continue
            slot_path = join_path(f"{path}.{disk_path}", "interface")
            if slot in seen:
                problems.append(Problem(where(slot_path), f"{slot} is already used by {where(seen[slot])}"))
            else:
                seen[slot] = slot_path
    return problems


def _balloon_within_memory(data: dict[str, Any], where: Callable[[str], str]) -> list[Problem]:
    """The balloon's minimum cannot exceed the VM's memory."""
    defaults: dict[str, Any] = data["vm_defaults"] if isinstance(data.get("vm_defaults"), dict) else {}
    problems: list[Problem] = []
    for path, entry in _entries(data, "vms"):
        balloon = _int(entry.get("balloon_mb"))
        memory = _int(entry.get("memory_mb")) or _int(defaults.get("memory_mb")) or 2048
        if balloon is not None and balloon > memory:
            problems.append(Problem(where(join_path(path, "balloon_mb")),
                                    f"{balloon} is more than the VM's memory_mb ({memory}); the balloon's minimum "
                                    "must fit in its memory (0 turns ballooning off)"))
    return problems


def _nic_entries(path: str, vm: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """The NICs of one VM: ``networks[]``, or the ``network_config`` shorthand."""
    if isinstance(vm.get("networks"), list):
        for index, nic in enumerate(vm["networks"]):
            if isinstance(nic, dict):
                yield join_path(join_path(path, "networks"), index), nic
    elif isinstance(vm.get("network_config"), dict):
        yield join_path(path, "network_config"), vm["network_config"]


def _known_features(data: dict[str, Any], available: list[str], where: Callable[[str], str]) -> list[Problem]:
    problems: list[Problem] = []
    for path, entry in _entries(data, "vms"):
        names = entry.get("features")
        if not isinstance(names, list):
            continue
        for index, name in enumerate(names):
            if not isinstance(name, str) or name in available:
                continue
            close = difflib.get_close_matches(name, available, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            listing = ", ".join(available) or "none"
            problems.append(Problem(where(join_path(join_path(path, "features"), index)),
                                    f"unknown feature {name!r} ({hint}available: {listing}; "
                                    "add your own as features/<name>.sh next to the file)"))
    return problems
