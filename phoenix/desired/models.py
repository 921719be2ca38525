"""The native desired-state form as pydantic models: parsing, per-field checks and the JSON Schema.

Every model forbids unknown keys and is strict (``"4"`` is not a number), so a typo is an error
with a "did you mean" hint instead of a silently ignored setting.  Checks that span documents
(unique VM IDs, template references, features) live in ``phoenix.desired.crosscheck``.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from phoenix.desired import validators as v
from phoenix.pve.propstr import NET_MODELS

MAX_NICS = 32        # PVE's net0..net31 / ipconfig0..ipconfig31
# Slots an extra disk may take: scsi0 is the boot disk, IDE holds the cloud-init drive and CD-ROMs.
DISK_SLOT = r"scsi(?:[1-9]|[12][0-9]|30)|virtio(?:[0-9]|1[0-5])|sata[0-5]"


def _secret(check: Callable[[str], object]) -> Callable[[SecretStr], SecretStr]:
    """Run ``check`` on the secret's value without ever exposing it in a repr."""

    def run(secret: SecretStr) -> SecretStr:
        check(secret.get_secret_value())
        return secret

    return run


VMID = Annotated[int, AfterValidator(v.check_vmid)]
Hostname = Annotated[str, AfterValidator(v.check_hostname)]
Username = Annotated[str, AfterValidator(v.check_username)]
PasswordHash = Annotated[SecretStr, AfterValidator(_secret(v.check_password_hash))]
SSHKey = Annotated[str, AfterValidator(v.check_ssh_public_key)]
CidrOrDhcp = Annotated[str, AfterValidator(v.check_cidr_or_dhcp)]
IPv4 = Annotated[str, AfterValidator(v.check_ipv4)]
IPAddr = Annotated[str, AfterValidator(v.check_ip)]
Cidr6OrAuto = Annotated[str, AfterValidator(v.check_cidr6_or_auto)]
IPv6 = Annotated[str, AfterValidator(v.check_ipv6)]
Mac = Annotated[str, AfterValidator(v.check_mac)]
VlanTag = Annotated[int, Field(ge=1, le=4094)]
Mtu = Annotated[int, Field(ge=576, le=65520)]
NicModel = Literal[NET_MODELS]  # type: ignore[valid-type]  # the names live in one tuple; pydantic checks them
FeatureName = Annotated[str, AfterValidator(v.check_feature_name)]
Tag = Annotated[str, AfterValidator(v.check_tag)]
StorageId = Annotated[str, AfterValidator(v.check_storage_id)]
Bridge = Annotated[str, AfterValidator(v.check_bridge)]
NodeName = Annotated[str, AfterValidator(v.check_node)]
Url = Annotated[str, AfterValidator(v.check_url)]
FileName = Annotated[str, AfterValidator(v.check_filename)]
PackageName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.\-]*(=[A-Za-z0-9.+~:\-]+)?$")]
Cores = Annotated[int, Field(ge=1, le=512)]
MemoryMB = Annotated[int, Field(ge=64, le=8_388_608)]
DiskGB = Annotated[int, Field(ge=1, le=131_072)]
Algorithm = Literal["sha256", "sha512", "sha384", "sha224", "sha1", "md5"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class SftpSettings(_Model):
    """How the ``sftp`` snippets backend reaches the node (host defaults to the node's name)."""

    host: Optional[Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\-\[\]]+$")]] = None
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    username: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")] = "root"
    key_file: Optional[Annotated[str, Field(min_length=1)]] = None
    known_hosts: Optional[Annotated[str, Field(min_length=1)]] = None


class VMDefaults(_Model):
    """Values every VM (and template) inherits unless it sets its own."""

    cores: Cores = 2
    memory_mb: MemoryMB = 2048
    disk_size_gb: DiskGB = 20
    storage_pool: StorageId = "local-lvm"
    network_bridge: Bridge = "vmbr0"
    node: Optional[NodeName] = None
    snippets_storage: StorageId = "local"
    snippets_backend: Literal["local", "sftp", "iso"] = "local"
    sftp: SftpSettings = SftpSettings()
    nameservers: list[IPAddr] = []
    searchdomain: Optional[Hostname] = None
    full_clone: bool = True
    package_upgrade: bool = False


class ImageSpec(_Model):
    """Where a template's cloud image comes from and how its download is verified."""

    url: Url
    checksum_algorithm: Algorithm = "sha256"
    checksum: Optional[str] = None
    checksum_url: Optional[Url] = None
    filename: Optional[FileName] = None
    delivery: Literal["local", "pve"] = "local"

    @field_validator("checksum")
    @classmethod
    def _checksum_matches_algorithm(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        if value is None:
            return value
        return v.check_hex_checksum(value, info.data.get("checksum_algorithm", "sha256"))

    @model_validator(mode="after")
    def _one_checksum_source(self) -> "ImageSpec":
        if (self.checksum is None) == (self.checksum_url is None):
            raise ValueError("give exactly one of checksum or checksum_url (phoenix verifies every image)")
        if self.filename is None:
            try:
                v.check_filename(self.file_name)
            except ValueError:
                raise ValueError(f"the URL's last segment {self.file_name[:80]!r} is not a plain file name; "
                                 "set image.filename") from None
        return self

    @property
    def file_name(self) -> str:
        """The file name to store the image under: ``filename`` or the URL's last segment."""
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


class CustomizeSpec(_Model):
    """What phoenix bakes into the image before it becomes a template (``delivery: local`` only)."""

    packages: list[PackageName] = []
    run_commands: list[Annotated[str, Field(min_length=1)]] = []


class TemplateIn(_Model):
    vmid: VMID
    name: Hostname
    image: ImageSpec
    customize: Optional[CustomizeSpec] = None
    node: Optional[NodeName] = None
    storage_pool: Optional[StorageId] = None
    network_bridge: Optional[Bridge] = None
    cores: Optional[Cores] = None
    memory_mb: Optional[MemoryMB] = None
    bios: Optional[Bios] = None
    machine: Optional[Machine] = None
    scsihw: Optional[ScsiHw] = None

    @model_validator(mode="after")
    def _customize_needs_local_delivery(self) -> "TemplateIn":
        if self.customize is not None and self.image.delivery == "pve":
            raise ValueError("customize needs image.delivery 'local' (PVE's download-url cannot customise)")
        return self


class AddressIn(_Model):
    """A NIC's addresses, as PVE's ``ipconfigN`` holds them: IPv4 (``dhcp`` or static) and IPv6."""

    ip: CidrOrDhcp = "dhcp"
    gw: Optional[IPv4] = None
    ip6: Optional[Cidr6OrAuto] = None
    gw6: Optional[IPv6] = None

    @field_validator("gw")
    @classmethod
    def _gateway_in_subnet(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        ip = info.data.get("ip")
        if value is None or ip is None:
            return value
        if ip == "dhcp":
            raise ValueError("a gateway only applies to a static ip; with 'dhcp' the DHCP server sets it")
        v.check_gateway_in_subnet(ip, value)
        return value

    @field_validator("gw6")
    @classmethod
    def _gateway6_static(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        ip6 = info.data.get("ip6")
        if value is None:
            return value
        if ip6 is None:
            raise ValueError("a gateway needs a static ip6 on the same NIC")
        v.check_gateway6(ip6, value)
        return value


class NetworkIn(AddressIn):
    """The first NIC's addresses (shorthand for ``networks[0]``) and the VM's DNS settings."""

    nameservers: Optional[list[IPAddr]] = None
    searchdomain: Optional[Hostname] = None


class NicIn(AddressIn):
    """One NIC: ``netN`` (bridge, VLAN tag, model, MAC, firewall, MTU) and its ``ipconfigN``."""

    bridge: Optional[Bridge] = None            # default: vm_defaults.network_bridge
    vlan: Optional[VlanTag] = None
    model: NicModel = "virtio"
    mac: Optional[Mac] = None                  # default: PVE picks one (and keeps it)
    firewall: bool = False
    mtu: Optional[Mtu] = None

    @model_validator(mode="after")
    def _mtu_needs_virtio(self) -> "NicIn":
        if self.mtu is not None and self.model != "virtio":
            raise ValueError(f"mtu applies to virtio NICs only (this one is {self.model!r})")
        return self


class DiskIn(_Model):
    """An extra disk: a new volume of ``size_gb`` on ``storage`` at ``interface`` (e.g. scsi1, virtio2)."""

    interface: Annotated[str, AfterValidator(v.check_disk_slot)]
    size_gb: DiskGB
    storage: Optional[StorageId] = None        # default: the VM's storage_pool
    ssd: bool = False
    discard: bool = False
    iothread: bool = False

    @model_validator(mode="after")
    def _options_fit_the_bus(self) -> "DiskIn":
        if self.ssd and self.interface.startswith("virtio"):
            raise ValueError("ssd emulation is not available on virtio disks (use scsi or sata)")
        if self.iothread and self.interface.startswith("sata"):
            raise ValueError("iothread applies to virtio and scsi disks only")
        return self


class StartupIn(_Model):
    """PVE's ``startup``: boot order among the node's ``onboot`` guests, and delays in seconds."""

    order: Optional[Annotated[int, Field(ge=0, le=1_000_000)]] = None
    up: Optional[Annotated[int, Field(ge=0, le=86_400)]] = None
    down: Optional[Annotated[int, Field(ge=0, le=86_400)]] = None


class AgentIn(_Model):
    """Guest agent options (the agent itself is always on: phoenix waits for it)."""

    fstrim_cloned_disks: bool = False
    freeze_fs: bool = True
    type: Literal["virtio", "isa"] = "virtio"


Machine = Literal["q35", "i440fx"]
Bios = Literal["seabios", "ovmf"]
ScsiHw = Literal["lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"]
CpuType = Annotated[str, AfterValidator(v.check_cpu_type)]
Description = Annotated[str, AfterValidator(v.check_description)]


class UserIn(_Model):
    username: Username
    password_hash: Optional[PasswordHash] = None
    ssh_public_key: Optional[SSHKey] = None
    ssh_public_keys: list[SSHKey] = []


class VMIn(_Model):
    vmid: VMID
    name: Hostname
    clone_from_vmid: VMID
    node: Optional[NodeName] = None
    cores: Optional[Cores] = None
    memory_mb: Optional[MemoryMB] = None
    disk_size_gb: Optional[DiskGB] = None
    storage_pool: Optional[StorageId] = None
    network_bridge: Optional[Bridge] = None
    full_clone: Optional[bool] = None
    network_config: NetworkIn = NetworkIn()
    networks: Optional[Annotated[list[NicIn], Field(min_length=1, max_length=MAX_NICS)]] = None
    user_config: UserIn
    disks: Annotated[list[DiskIn], Field(max_length=52)] = []
    removed_disks: Literal["detach", "delete"] = "detach"
    features: list[FeatureName] = []
    start: bool = True
    tags: list[Tag] = []
    # How long apply waits for the guest (agent, cloud-init, features) after a start; default 900 s.
    guest_timeout_s: Optional[int] = Field(default=None, ge=10, le=86400)
    cpu: Optional[CpuType] = None
    sockets: Optional[Annotated[int, Field(ge=1, le=4)]] = None
    balloon_mb: Optional[Annotated[int, Field(ge=0, le=8_388_608)]] = None
    onboot: Optional[bool] = None
    startup: Optional[StartupIn] = None
    description: Optional[Description] = None
    machine: Optional[Machine] = None
    bios: Optional[Bios] = None
    scsihw: Optional[ScsiHw] = None
    agent: Optional[AgentIn] = None


    @model_validator(mode="after")
    def _one_way_to_declare_nics(self) -> "VMIn":
        """``network_config``'s addresses and ``network_bridge`` are the shorthand for one NIC; with
        ``networks`` they belong in ``networks[0]``."""
        if self.networks is None:
            return self
        shorthand = [k for k in ("ip", "gw", "ip6", "gw6") if k in self.network_config.model_fields_set]
        if shorthand:
            raise ValueError(f"network_config.{shorthand[0]} and networks both declare the first NIC; "
                             "put its addresses in networks[0]")
        if self.network_bridge is not None:
            raise ValueError("network_bridge and networks both declare the first NIC; put the bridge in networks[0]")
        return self


class DesiredIn(_Model):
    """The whole native file."""

    schema_ref: Optional[str] = Field(default=None, alias="$schema")
    vm_defaults: VMDefaults = VMDefaults()
    templates: list[TemplateIn] = []
    vms: list[VMIn] = []


DEFAULTS_FIELDS = frozenset(VMDefaults.model_fields)
VM_FIELDS = frozenset(VMIn.model_fields)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the native form, for editors (``phoenix schema``)."""
    schema = DesiredIn.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "phoenix desired state"
    return schema
