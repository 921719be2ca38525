"""The resolved desired state the rest of phoenix consumes: defaults merged, templates linked.

These are what ``load_desired`` returns.  They are frozen pydantic models so that the password
hash stays a ``SecretStr`` (masked in every repr/str) all the way to the one place that needs it,
the cloud-init user-data.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, SecretStr

from phoenix.desired import ipv4
from phoenix.desired.models import CustomizeSpec, ImageSpec, VMDefaults
from phoenix.desired.problems import Problem

AGENT_PACKAGE = "qemu-guest-agent"


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True)


class TemplateSpec(_Spec):
    """A cloud-image template; ``node`` None means the cluster's first node."""

    vmid: int
    name: str
    node: Optional[str]
    storage_pool: str
    network_bridge: str
    cores: int
    memory_mb: int
    image: ImageSpec
    customize: CustomizeSpec
    bios: Optional[str] = None
    machine: Optional[str] = None
    scsihw: Optional[str] = None


class NetworkSpec(_Spec):
    """The first NIC's IPv4 (``ip`` is ``"dhcp"`` or a CIDR) and the VM's DNS settings, which already
    fall back to vm_defaults.  Feature templates read it (``ip``, ``cidr``, ``gateway``)."""

    ip: str
    gw: Optional[str]
    nameservers: list[str]
    searchdomain: Optional[str]

    @property
    def is_dhcp(self) -> bool:
        return self.ip == "dhcp"

    @property
    def address(self) -> Optional[str]:
        """The bare IPv4 address (no prefix), or None with DHCP."""
        if self.is_dhcp:
            return None
        return ipv4.host_address(self.ip) or str(ipaddress.IPv4Interface(self.ip).ip)


class NicSpec(_Spec):
    """One NIC (``netN`` + ``ipconfigN``), defaults resolved.  ``ip6``: None (no IPv6 configured),
    ``dhcp``, ``auto`` (SLAAC) or a CIDR in canonical form; ``mac`` None lets PVE pick one."""

    bridge: str
    model: str = "virtio"
    vlan: Optional[int] = None
    mac: Optional[str] = None
    firewall: bool = False
    mtu: Optional[int] = None
    ip: str = "dhcp"
    gw: Optional[str] = None
    ip6: Optional[str] = None
    gw6: Optional[str] = None


class DiskSpec(_Spec):
    """An extra disk, storage resolved (the VM's ``storage_pool`` unless set)."""

    interface: str
    size_gb: int
    storage: str
    ssd: bool = False
    discard: bool = False
    iothread: bool = False


class UserSpec(_Spec):
    username: str
    password_hash: Optional[SecretStr]
    ssh_public_keys: list[str]


class VMSpec(_Spec):
    """A VM cloned from a template; ``node`` None means the template's node."""

    vmid: int
    name: str
    clone_from_vmid: int
    node: Optional[str]
    cores: int
    memory_mb: int
    disk_size_gb: int
    storage_pool: str
    full_clone: bool
    snippets_storage: str
    start: bool
    tags: list[str]
    features: list[str]
    network: NetworkSpec
    nics: list[NicSpec]
    user: UserSpec
    guest_timeout_s: Optional[int] = None
    disks: list[DiskSpec] = []
    removed_disks: str = "detach"          # or "delete": a disk dropped from the file is destroyed
    # Hardware and boot settings: None = not declared (PVE's / the template's value stays, never compared).
    cpu: Optional[str] = None
    sockets: Optional[int] = None
    balloon_mb: Optional[int] = None
    onboot: Optional[bool] = None
    startup: Optional[dict[str, int]] = None
    description: Optional[str] = None
    machine: Optional[str] = None
    bios: Optional[str] = None
    scsihw: Optional[str] = None
    agent: Optional[dict[str, Any]] = None   # options beyond "enabled" (always on), PVE's key names

    @property
    def network_bridge(self) -> str:
        """The first NIC's bridge."""
        return self.nics[0].bridge

    @property
    def fqdn(self) -> str:
        """The name if it is dotted, else name.searchdomain, else the name (as PVE does)."""
        if "." in self.name or not self.network.searchdomain:
            return self.name
        return f"{self.name}.{self.network.searchdomain}"

    @property
    def hostname(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass
class DesiredConfig:
    """Everything in one desired-state file, resolved.  ``base_dir`` holds ``features/``."""

    defaults: VMDefaults
    templates: list[TemplateSpec]
    vms: list[VMSpec]
    base_dir: Path
    source: Optional[Path] = None
    format: Literal["native", "legacy"] = "native"
    warnings: list[Problem] = field(default_factory=list)

    def template(self, vmid: int) -> Optional[TemplateSpec]:
        return self._by_vmid[0].get(vmid)

    def vm(self, vmid: int) -> Optional[VMSpec]:
        return self._by_vmid[1].get(vmid)

    @cached_property
    def _by_vmid(self) -> tuple[dict[int, TemplateSpec], dict[int, VMSpec]]:
        """Lookups by VMID (an apply asks once per step; a list scan would be O(N) each)."""
        return {t.vmid: t for t in self.templates}, {v.vmid: v for v in self.vms}

    def template_for(self, vm: VMSpec) -> Optional[TemplateSpec]:
        """The declared template ``vm`` clones, or None when it only exists in the cluster."""
        return self.template(vm.clone_from_vmid)

    def features_dir(self) -> Path:
        return self.base_dir / "features"
