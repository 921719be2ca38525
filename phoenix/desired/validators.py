"""Field checks for the desired-state file: each raises ``ValueError`` with a message for humans.

Every pattern is applied with ``fullmatch``: ``re.match`` with ``$`` accepts a trailing newline, which
would reach user-data and PVE.  They are plain functions (pydantic calls them through ``AfterValidator``) so they can be tested and
property-tested on their own.  Messages never repeat a secret value back (password hashes).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from urllib.parse import unquote, urlsplit

from phoenix.desired import ipv4
from phoenix.text import first_control

VMID_MIN, VMID_MAX = 100, 999_999_999

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_USERNAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_FEATURE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_TAG = re.compile(r"[a-z0-9_][a-z0-9_\-+.]*", re.IGNORECASE)
_STORAGE = re.compile(r"[a-z][a-z0-9_.-]*[a-z0-9]", re.IGNORECASE)
_BRIDGE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,14}")
_FILENAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_URL = re.compile(r"https?://[^\s/]+/\S*")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_CPU = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_SALT_CHARS = r"[./A-Za-z0-9]"
_CRYPT_FORMS = {
    "6": re.compile(rf"\$6\$(?:rounds=\d+\$)?{_SALT_CHARS}{{1,16}}\${_SALT_CHARS}{{86}}"),
    "5": re.compile(rf"\$5\$(?:rounds=\d+\$)?{_SALT_CHARS}{{1,16}}\${_SALT_CHARS}{{43}}"),
    "y": re.compile(rf"\$y\${_SALT_CHARS}+\${_SALT_CHARS}+\${_SALT_CHARS}{{43}}"),
    "gy": re.compile(rf"\$gy\${_SALT_CHARS}+\${_SALT_CHARS}+\${_SALT_CHARS}{{43}}"),
    "2b": re.compile(rf"\$2[aby]\$\d\d\${_SALT_CHARS}{{53}}"),
}
HASH_HINT = "create one with `openssl passwd -6` or `mkpasswd -m sha-512`"
SSH_KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)
CHECKSUM_LENGTHS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}


def check_vmid(value: int) -> int:
    """PVE VM IDs are 100..999999999 (``pve-vmid`` format)."""
    if not VMID_MIN <= value <= VMID_MAX:
        raise ValueError(f"VM ID {value} is out of range; PVE accepts {VMID_MIN}..{VMID_MAX}")
    return value


def check_hostname(value: str) -> str:
    """RFC 1123 host name (dotted names allowed); it becomes the VM name and the guest's hostname."""
    if not value or len(value) > 253:
        raise ValueError("must be an RFC 1123 host name of 1..253 characters")
    for label in value.split("."):
        if not _LABEL.fullmatch(label):
            raise ValueError(
                f"{value!r} is not an RFC 1123 host name: labels are 1..63 letters, digits or '-', "
                "not starting or ending with '-'"
            )
    if value.split(".")[-1].isdigit():
        raise ValueError(f"{value!r} is not an RFC 1123 host name: the last label must not be all digits")
    return value


def check_username(value: str) -> str:
    """A POSIX login name that cloud-init can create; root is refused (phoenix creates a sudo user)."""
    if value == "root":
        raise ValueError("use a regular user name; phoenix gives that user passwordless sudo")
    if not _USERNAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid user name: lower-case letters, digits, '_' or '-', "
            "starting with a letter or '_', at most 32 characters"
        )
    return value


def check_password_hash(value: str) -> str:
    """Accept only crypt(3) hashes; say how to make one.  The value is never echoed (it is a secret)."""
    if not value.startswith("$"):
        raise ValueError(f"looks like a plaintext password; give a crypt hash instead — {HASH_HINT}")
    scheme = value[1:].split("$", 1)[0]
    if scheme in ("1", "md5"):
        raise ValueError(f"MD5-crypt ($1$) is too weak; {HASH_HINT}")
    form = _CRYPT_FORMS.get("2b" if scheme in ("2a", "2b", "2y") else scheme)
    if form is None:
        raise ValueError(f"unsupported crypt scheme; use $6$, $5$, $y$ or $2b$ — {HASH_HINT}")
    if not form.fullmatch(value):
        raise ValueError(f"is not a complete ${scheme}$ crypt hash (placeholder or truncated?); {HASH_HINT}")
    return value


def check_ssh_public_key(value: str) -> str:
    """``type base64 [comment]``: the body must decode and name the same key type inside."""
    if "\n" in value or "\r" in value:
        raise ValueError("one key per entry; use ssh_public_keys for several keys")
    parts = value.strip().split(None, 2)
    if len(parts) < 2:
        raise ValueError("is not an OpenSSH public key (expected 'ssh-ed25519 AAAA... comment')")
    key_type, body = parts[0], parts[1]
    if key_type not in SSH_KEY_TYPES:
        allowed = ", ".join(SSH_KEY_TYPES)
        raise ValueError(f"unsupported key type {key_type[:40]!r} (allowed: {allowed})")
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the {key_type} key body is not valid base64 (truncated or placeholder?)") from None
    if len(blob) < 4:
        raise ValueError(f"the {key_type} key body is too short")
    (length,) = struct.unpack(">I", blob[:4])
    embedded = blob[4:4 + length]
    if len(embedded) != length or embedded != key_type.encode():
        raise ValueError(f"the key body does not contain a {key_type} key (type mismatch or corrupt key)")
    if len(blob) <= 4 + length:
        raise ValueError(f"the {key_type} key body has no key material")
    return value.strip()


def check_cidr_or_dhcp(value: str) -> str:
    """``dhcp`` or an IPv4 host address with prefix length (what PVE's ``ipconfig0 ip=`` takes)."""
    if value == "dhcp":
        return value
    fast = ipv4.interface(value)
    if fast is not None:
        network, broadcast = ipv4.network_bounds(*fast)
        if fast[1] >= 31 or fast[0] not in (network, broadcast):
            return value
    return cidr_or_dhcp_by_ipaddress(value)


def cidr_or_dhcp_by_ipaddress(value: str) -> str:
    """:func:`check_cidr_or_dhcp` through ``ipaddress`` alone: every other spelling, and every error."""
    if value == "dhcp":
        return value
    example = "expected 'dhcp' or an IPv4 address with prefix length, e.g. 10.0.0.101/24"
    if "/" not in value:
        raise ValueError(f"{value!r} has no prefix length; {example}")
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not valid; {example}") from None
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        raise ValueError(f"{value!r} is the network or broadcast address of {net}, not a host address")
    return value


def check_ipv4(value: str) -> str:
    """A plain IPv4 address (gateway)."""
    return value if ipv4.address(value) is not None else ipv4_by_ipaddress(value)


def ipv4_by_ipaddress(value: str) -> str:
    """:func:`check_ipv4` through ``ipaddress`` alone."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None
    return value


def check_cidr6_or_auto(value: str) -> str:
    """``dhcp``, ``auto`` (SLAAC) or an IPv6 host address with prefix length (PVE's ``ipconfigN ip6=``)."""
    if value in ("dhcp", "auto"):
        return value
    example = "expected 'dhcp', 'auto' (SLAAC) or an IPv6 address with prefix length, e.g. 2001:db8::101/64"
    if "/" not in value:
        raise ValueError(f"{value[:60]!r} has no prefix length; {example}")
    try:
        ipaddress.IPv6Interface(value)
    except ValueError:
        raise ValueError(f"{value[:60]!r} is not valid; {example}") from None
    return value


def check_ipv6(value: str) -> str:
    """A plain IPv6 address (gateway; a link-local one such as fe80::1 is fine)."""
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        raise ValueError(f"{value[:60]!r} is not an IPv6 address") from None
    return value


def check_gateway6(ip6: str, gw6: str) -> None:
    """An IPv6 gateway only goes with a static ``ip6`` and is not the VM's own address."""
    if ip6 in ("dhcp", "auto"):
        raise ValueError(f"a gateway only applies to a static ip6; with {ip6!r} router advertisements set it")
    if ipaddress.IPv6Address(gw6) == ipaddress.IPv6Interface(ip6).ip:
        raise ValueError(f"gateway {gw6} is the VM's own address")


def check_mac(value: str) -> str:
    """A unicast MAC address ``XX:XX:XX:XX:XX:XX`` (PVE refuses multicast ones)."""
    if not _MAC.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a MAC address (e.g. BC:24:11:00:00:01)")
    if int(value[:2], 16) & 1:
        raise ValueError(f"{value} is a multicast MAC address; a NIC needs a unicast one")
    return value.upper()


def check_disk_slot(value: str) -> str:
    """An extra disk's slot: scsi1..30, virtio0..15 or sata0..5 (scsi0 is the boot disk, IDE the
    cloud-init drive and CD-ROMs)."""
    from phoenix.desired.models import DISK_SLOT

    if not re.fullmatch(DISK_SLOT, value):
        raise ValueError(f"{value[:40]!r} is not a disk slot for an extra disk: scsi1..scsi30, virtio0..virtio15 "
                         "or sata0..sata5 (scsi0 is the boot disk)")
    return value


def check_cpu_type(value: str) -> str:
    """A QEMU/PVE CPU model name such as ``host``, ``x86-64-v2-AES`` or ``custom-<name>``."""
    if not _CPU.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a CPU type (e.g. host, x86-64-v2-AES, kvm64)")
    return value


def check_description(value: str) -> str:
    """Free text (PVE keeps up to 8 KiB); lines starting ``phoenix-`` are phoenix's own (the
    ownership marker, template facts) and cannot be declared."""
    index = first_control(value.replace("\n", " ").replace("\t", " "))
    if index is not None:
        raise ValueError(f"contains the control character U+{ord(value[index]):04X} at position {index} "
                         "(only newlines and tabs are allowed)")
    if len(value.encode()) > 8000:
        raise ValueError("is longer than 8000 bytes (PVE keeps at most 8 KiB, phoenix keeps room for its marker)")
    if any(line.lstrip().startswith("phoenix-") for line in value.splitlines()):
        raise ValueError("lines starting with 'phoenix-' are reserved for phoenix's own marker")
    return value


def check_ip(value: str) -> str:
    """A plain IPv4 or IPv6 address (name servers); no IPv6 scope id (``fe80::1%eth0``), which
    ``ipaddress`` accepts but which would carry any text into PVE, user-data and feature scripts."""
    return value if ipv4.address(value) is not None else ip_by_ipaddress(value)


def ip_by_ipaddress(value: str) -> str:
    """:func:`check_ip` through ``ipaddress`` alone."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    if getattr(address, "scope_id", None) is not None:
        raise ValueError(f"{value!r} carries an IPv6 scope id; give a plain address")
    return value


def check_gateway_in_subnet(ip: str, gw: str) -> None:
    """The gateway must be reachable on the VM's own subnet and not be the VM's own address."""
    fast, gateway_value = ipv4.interface(ip), ipv4.address(gw)
    if fast is not None and gateway_value is not None:
        network, broadcast = ipv4.network_bounds(*fast)
        if network <= gateway_value <= broadcast and gateway_value != fast[0]:
            return
    gateway_in_subnet_by_ipaddress(ip, gw)


def gateway_in_subnet_by_ipaddress(ip: str, gw: str) -> None:
    """:func:`check_gateway_in_subnet` through ``ipaddress`` alone: every other spelling, and every error."""
    iface = ipaddress.IPv4Interface(ip)
    gateway = ipaddress.IPv4Address(gw)
    if gateway not in iface.network:
        raise ValueError(f"gateway {gw} is not in the subnet {iface.network} of ip {ip}")
    if gateway == iface.ip:
        raise ValueError(f"gateway {gw} is the VM's own address")


def check_feature_name(value: str) -> str:
    """Feature names are file names: lower-case letters, digits, '-' and '_'."""
    if not _FEATURE.fullmatch(value):
        raise ValueError(f"{value!r} is not a feature name (lower-case letters, digits, '-', '_')")
    return value


def check_tag(value: str) -> str:
    """PVE's ``pve-tag`` format."""
    if not _TAG.fullmatch(value):
        raise ValueError(f"{value!r} is not a PVE tag (letters, digits, '_', '-', '+', '.')")
    return value


def check_storage_id(value: str) -> str:
    """PVE's ``pve-storage-id`` format, e.g. ``local-lvm``."""
    if not _STORAGE.fullmatch(value):
        raise ValueError(f"{value!r} is not a PVE storage id (e.g. local-lvm)")
    return value


def check_bridge(value: str) -> str:
    """A Linux bridge name such as ``vmbr0`` (at most 15 characters)."""
    if not _BRIDGE.fullmatch(value):
        raise ValueError(f"{value!r} is not a bridge name (e.g. vmbr0)")
    return value


def check_node(value: str) -> str:
    """A PVE node name is a single DNS label."""
    if not _LABEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a PVE node name (a DNS label, e.g. pve)")
    return value


def check_url(value: str) -> str:
    """Images come over http(s) only; no control characters and no ``.``/``..`` path segments (a URL
    whose last segment is ``..`` would name no file, and one with ``../`` a different one than it shows)."""
    if first_control(value) is not None or not _URL.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not an http(s) URL")
    path = urlsplit(value).path
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        raise ValueError(f"{value[:80]!r} has a '.' or '..' path segment; give the image's real URL")
    return value


def check_filename(value: str) -> str:
    """A bare file name (no directories), as PVE's download-url ``filename`` wants."""
    if not _FILENAME.fullmatch(value) or ".." in value:
        raise ValueError(f"{value[:80]!r} is not a plain file name")
    return value


def check_hex_checksum(value: str, algorithm: str) -> str:
    """Hex digest of the expected length for ``algorithm``."""
    expected = CHECKSUM_LENGTHS[algorithm]
    if len(value) != expected or not re.fullmatch(r"[0-9a-fA-F]+", value):
        raise ValueError(f"a {algorithm} checksum is {expected} hex digits")
    return value.lower()
