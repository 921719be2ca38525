"""Field checks on their own, including property tests over the parsers."""

from __future__ import annotations

import base64
import struct
import subprocess
import shutil

import pytest
from hypothesis import given, strategies as st

from phoenix.desired import validators as v
from desired_helpers import ECDSA, ED25519, HASH


@pytest.mark.parametrize("vmid", [100, 8000, 999_999_999])
def test_vmid_in_range(vmid):
    assert v.check_vmid(vmid) == vmid


@pytest.mark.parametrize("vmid", [-1, 0, 99, 1_000_000_000])
def test_vmid_out_of_range(vmid):
    with pytest.raises(ValueError, match="100..999999999"):
        v.check_vmid(vmid)


@pytest.mark.parametrize("name", ["a", "docker-vm-01", "web.lab.example.org", "A1", "x" * 63])
def test_hostname_accepts_rfc1123(name):
    assert v.check_hostname(name) == name


@pytest.mark.parametrize("name", ["", "-web", "web-", "under_score", "x" * 64, "a..b", "host.123", "sp ace"])
def test_hostname_refuses(name):
    with pytest.raises(ValueError):
        v.check_hostname(name)


_label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z")


@given(st.lists(_label, min_size=1, max_size=4).filter(lambda labels: not labels[-1].isdigit()))
def test_hostname_property_valid_labels_pass(labels):
    name = ".".join(labels)
    assert v.check_hostname(name) == name


@given(st.text(max_size=80))
def test_hostname_never_raises_anything_but_valueerror(text):
    try:
        v.check_hostname(text)
    except ValueError:
        pass


def test_real_sha512_hash_accepted():
    assert v.check_password_hash(HASH) == HASH


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize("flag", ["-6", "-5"])
def test_hash_made_by_openssl_accepted(flag):
    made = subprocess.run(["openssl", "passwd", flag, "throwaway"], capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()
    assert v.check_password_hash(made) == made


def test_bcrypt_and_yescrypt_shapes_accepted():
    v.check_password_hash("$2b$12$" + "a" * 53)
    v.check_password_hash("$y$j9T$" + "abcdefghijklmnop" + "$" + "A" * 43)


@pytest.mark.parametrize("value, hint", [
    ("hunter2", "openssl passwd -6"),
    ("$6$...", "placeholder"),
    ("$1$abc$def", "too weak"),
    ("$9$zzz", "unsupported"),
])
def test_bad_hashes_refused_with_hint_and_no_echo(value, hint):
    with pytest.raises(ValueError) as info:
        v.check_password_hash(value)
    assert hint in str(info.value)
    if len(value) > 6:
        assert value not in str(info.value)


@pytest.mark.parametrize("key", [ED25519, ECDSA, ED25519.rsplit(" ", 1)[0]])
def test_real_keys_accepted(key):
    assert v.check_ssh_public_key(key) == key.strip()


def _key(kind: str, embedded: str, material: bytes = b"\x00" * 32) -> str:
    blob = struct.pack(">I", len(embedded)) + embedded.encode() + struct.pack(">I", len(material)) + material
    return f"{kind} {base64.b64encode(blob).decode()} c"


@pytest.mark.parametrize("key, message", [
    ("ssh-ed25519", "not an OpenSSH public key"),
    ("ssh-ed25519 AAAA...", "not valid base64"),
    (_key("ssh-rsa", "ssh-ed25519"), "type mismatch"),
    ("ssh-dss AAAAB3NzaC1kc3M= x", "unsupported key type"),
    (ED25519 + "\n" + ED25519, "one key per entry"),
])
def test_bad_keys_refused(key, message):
    with pytest.raises(ValueError, match=message):
        v.check_ssh_public_key(key)


@given(st.sampled_from(v.SSH_KEY_TYPES), st.binary(min_size=1, max_size=64), st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20))
def test_ssh_key_property_wellformed_keys_pass(kind, material, comment):
    key = _key(kind, kind, material) + comment
    assert v.check_ssh_public_key(key) == key


@given(st.text(max_size=120))
def test_ssh_key_parser_only_raises_valueerror(text):
    try:
        v.check_ssh_public_key(text)
    except ValueError:
        pass


@given(st.ip_addresses(v=4), st.integers(min_value=8, max_value=30))
def test_cidr_property(address, prefix):
    import ipaddress
    text = f"{address}/{prefix}"
    net = ipaddress.IPv4Interface(text).network
    if address in (net.network_address, net.broadcast_address):
        with pytest.raises(ValueError, match="network or broadcast"):
            v.check_cidr_or_dhcp(text)
    else:
        assert v.check_cidr_or_dhcp(text) == text


@pytest.mark.parametrize("value", ["10.0.0.1", "10.0.0.300/24", "fe80::1/64", "dhcp6", "10.0.0.5/33"])
def test_cidr_refused(value):
    with pytest.raises(ValueError, match="e.g. 10.0.0.101/24"):
        v.check_cidr_or_dhcp(value)


def test_gateway_subnet():
    v.check_gateway_in_subnet("10.0.0.101/24", "10.0.0.1")
    with pytest.raises(ValueError, match="not in the subnet"):
        v.check_gateway_in_subnet("10.0.0.101/24", "10.0.1.1")
    with pytest.raises(ValueError, match="own address"):
        v.check_gateway_in_subnet("10.0.0.101/24", "10.0.0.101")
