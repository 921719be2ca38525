"""Property-string round trips (hypothesis) and PVE's parse errors, for phoenix/pve/propstr.py."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given, strategies as st

from phoenix.pve import propstr
from phoenix.pve.propstr import PropertyStringError

KEY = st.from_regex(r"\A[a-z][a-z0-9_\-]{0,11}\Z")
VALUE = st.text(st.characters(blacklist_characters=",", blacklist_categories=("Cs",)), max_size=20)
BARE = VALUE.filter(lambda v: v.strip() != "")
MAC = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02X}" for x in b))
SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


# --- generic parse/format ---------------------------------------------------------------------

@given(st.dictionaries(KEY, VALUE, max_size=6), st.one_of(st.none(), BARE))
def test_format_then_parse_round_trips(values, default_value):
    values = {k: v for k, v in values.items() if k != "file"}
    if default_value is not None:
        values["file"] = default_value
    text = propstr.format(values, default_key="file")
    assert propstr.parse(text, default_key="file") == values


@given(st.dictionaries(KEY, VALUE, max_size=6))
def test_format_is_canonical(values):
    once = propstr.format(values)
    assert propstr.format(propstr.parse(once)) == once
    keys = [part.partition("=")[0] for part in once.split(",") if part]
    assert keys == sorted(keys)


@given(st.dictionaries(KEY, st.one_of(st.booleans(), st.integers(), st.none()), max_size=5))
def test_format_prints_booleans_as_digits_and_drops_none(values):
    parsed = propstr.parse(propstr.format(values))
    assert parsed == {k: ("1" if v is True else "0" if v is False else str(v))
                      for k, v in values.items() if v is not None}


@given(st.text(max_size=40))
def test_parse_never_crashes_unexpectedly(text):
    try:
        result = propstr.parse(text, default_key="file")
    except PropertyStringError:
        return
    assert all("," not in v for v in result.values())


@pytest.mark.parametrize("text, default_key, message", [
    ("a=1,a=2", None, "duplicate key in comma-separated list property: a"),
    ("bare", None, "value without key, but schema does not define a default key"),
    ("x,y", "file", "duplicate key in comma-separated list property: file"),
    ("=1", None, "missing key"),
])
def test_parse_errors_use_pves_wording(text, default_key, message):
    with pytest.raises(PropertyStringError, match=re.escape(message)):
        propstr.parse(text, default_key)


def test_parse_skips_blank_parts_like_pve():
    assert propstr.parse("a=1, ,,b=2") == {"a": "1", "b": "2"}


@pytest.mark.parametrize("values", [{"a": "x,y"}, {"a,b": "1"}, {"a=b": "1"}, {"": "1"}])
def test_format_refuses_what_pve_would_misread(values):
    with pytest.raises(PropertyStringError):
        propstr.format(values)


# --- sizes --------------------------------------------------------------------------------------

@given(st.integers(min_value=0, max_value=1 << 70))
@example(9007199254740993)  # beyond float precision: must stay exact
def test_size_round_trip(size):
    assert propstr.parse_size(propstr.format_size(size)) == size


@given(st.integers(min_value=1, max_value=1 << 20), st.sampled_from(sorted(SIZE_UNITS)))
def test_size_units_are_binary_and_canonical(number, unit):
    size = propstr.parse_size(f"{number}{unit}")
    assert size == number * SIZE_UNITS[unit]
    printed = propstr.format_size(size)
    assert propstr.parse_size(printed) == size and re.fullmatch(r"\d+[KMGT]?", printed)


@pytest.mark.parametrize("text, size", [("32G", 32 << 30), ("512M", 512 << 20), ("4M", 4 << 20), ("1.5G", 3 << 29),
                                        ("100", 100), (" 2T ", 2 << 40)])
def test_size_examples(text, size):
    assert propstr.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "-1G", "1g", "1.G", "1X", "+5G", "1e3"])
def test_bad_sizes(text):
    with pytest.raises(PropertyStringError) as excinfo:
        propstr.parse_size(text)
    assert excinfo.value.key == "size"


def test_format_size_examples():
    assert propstr.format_size(34359738368) == "32G"
    assert propstr.format_size(1536 << 20) == "1536M"
    assert propstr.format_size(1000) == "1000"


# --- netN ---------------------------------------------------------------------------------------

NET_OPTIONS = st.fixed_dictionaries({}, optional={
    "bridge": st.from_regex(r"\Avmbr[0-9]{1,2}\Z"),
    "firewall": st.sampled_from(["0", "1"]),
    "tag": st.integers(1, 4094).map(str),
    "mtu": st.integers(576, 9000).map(str),
    "queues": st.integers(1, 64).map(str),
})


@given(st.sampled_from(propstr.NET_MODELS), st.one_of(st.none(), MAC), NET_OPTIONS)
def test_net_round_trip(model, mac, options):
    values = {"model": model, **({"macaddr": mac} if mac else {}), **options}
    text = propstr.format_net(values)
    assert propstr.parse_net(text) == values
    assert text.split(",")[0] == (f"{model}={mac}" if mac else model)
    assert propstr.format_net(propstr.parse_net(text)) == text


def test_net_pve_example_and_long_form():
    text = "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1"
    assert propstr.parse_net(text) == {"model": "virtio", "macaddr": "BC:24:11:AA:BB:CC", "bridge": "vmbr0",
                                       "firewall": "1"}
    long_form = propstr.parse_net("model=virtio,macaddr=BC:24:11:AA:BB:CC,firewall=1,bridge=vmbr0")
    assert propstr.format_net(long_form) == text


@pytest.mark.parametrize("text", ["bridge=vmbr0", "virtio=AA:BB:CC:DD:EE:FF,e1000=11:22:33:44:55:66",
                                  "virtio=AA:BB:CC:DD:EE:FF,model=e1000", "virtio=AA:BB:CC:DD:EE:FF,macaddr=X",
                                  "virtio,e1000"])
def test_bad_nets(text):
    with pytest.raises(PropertyStringError):
        propstr.parse_net(text)


# --- drives -------------------------------------------------------------------------------------

VOLID = st.builds(lambda storage, name: f"{storage}:{name}",
                  st.from_regex(r"\A[a-z][a-z0-9\-]{0,15}\Z"),
                  st.from_regex(r"\A(vm|base)-[1-9][0-9]{2,4}-disk-[0-9]\Z|\Aimport/[a-zA-Z0-9\-.+=_]{1,12}\.qcow2\Z"))
DRIVE_OPTIONS = st.fixed_dictionaries({}, optional={
    "size": st.integers(1, 1 << 16).map(lambda g: propstr.format_size(g << 20)),
    "discard": st.sampled_from(["on", "ignore"]),
    "iothread": st.sampled_from(["0", "1"]),
    "ssd": st.sampled_from(["0", "1"]),
    "media": st.sampled_from(["cdrom", "disk"]),
    "import-from": VOLID,
})


@given(VOLID, DRIVE_OPTIONS)
def test_drive_round_trip(volid, options):
    values = {"file": volid, **options}
    text = propstr.format_drive(values)
    assert propstr.parse_drive(text) == values
    rest = [part.partition("=")[0] for part in text.split(",")[1:]]
    assert rest == sorted(rest)


def test_drive_examples():
    assert propstr.format_drive({"size": "32G", "file": "local-lvm:vm-100-disk-0", "discard": "on"}) == \
        "local-lvm:vm-100-disk-0,discard=on,size=32G"
    assert propstr.parse_drive("local-lvm:0,import-from=local:import/noble.qcow2") == \
        {"file": "local-lvm:0", "import-from": "local:import/noble.qcow2"}
    assert propstr.parse_drive("file=local:cloudinit,media=cdrom") == {"file": "local:cloudinit", "media": "cdrom"}


def test_drive_volume_with_equals_sign_parses_back():
    values = {"file": "local:import/a=b.qcow2", "size": "1G"}
    assert propstr.format_drive(values) == "file=local:import/a=b.qcow2,size=1G"
    assert propstr.parse_drive(propstr.format_drive(values)) == values


# --- ipconfigN ----------------------------------------------------------------------------------

CIDR4 = st.builds(lambda ip, prefix: f"{ip}/{prefix}", st.ip_addresses(v=4), st.integers(1, 32))
CIDR6 = st.builds(lambda ip, prefix: f"{ip}/{prefix}", st.ip_addresses(v=6), st.integers(1, 128))


@given(st.fixed_dictionaries({}, optional={
    "ip": st.one_of(st.just("dhcp"), CIDR4), "gw": st.ip_addresses(v=4).map(str),
    "ip6": st.one_of(st.sampled_from(["dhcp", "auto"]), CIDR6), "gw6": st.ip_addresses(v=6).map(str)}))
def test_ipconfig_round_trip_in_pve_order(values):
    text = propstr.format_ipconfig(values)
    assert propstr.parse_ipconfig(text) == values
    keys = [part.partition("=")[0] for part in text.split(",") if part]
    assert keys == [k for k in ("ip", "gw", "ip6", "gw6") if k in values]


def test_ipconfig_examples_and_errors():
    assert propstr.format_ipconfig({"gw": "10.0.0.1", "ip": "10.0.0.5/24"}) == "ip=10.0.0.5/24,gw=10.0.0.1"
    assert propstr.parse_ipconfig("") == {}
    with pytest.raises(PropertyStringError) as excinfo:
        propstr.parse_ipconfig("ip=dhcp,dns=1.1.1.1")
    assert excinfo.value.key == "dns"
    with pytest.raises(PropertyStringError):
        propstr.parse_ipconfig("dhcp")


# --- sshkeys ------------------------------------------------------------------------------------

KEY_LINE = st.builds(
    lambda kind, blob, comment: f"{kind} {blob}{(' ' + comment) if comment else ''}",
    st.sampled_from(["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]),
    st.from_regex(r"\AAAAA[A-Za-z0-9+/]{8,60}={0,2}\Z"),
    st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20).map(str.strip),
)
PVE_URLENCODED = re.compile(r"\A[-%a-zA-Z0-9_.!~*'()]*\Z")


@given(st.lists(KEY_LINE, max_size=4))
def test_sshkeys_round_trip_and_pve_charset(keys):
    encoded = propstr.encode_sshkeys(keys)
    assert PVE_URLENCODED.match(encoded), encoded
    assert "+" not in encoded and " " not in encoded
    assert propstr.decode_sshkeys(encoded) == [k.strip() for k in keys if k.strip()]


def test_sshkeys_spaces_are_percent_20():
    assert propstr.encode_sshkeys(["ssh-ed25519 AAAAC3Nz a@b"]) == "ssh-ed25519%20AAAAC3Nz%20a%40b"
    assert propstr.encode_sshkeys("a b\nc d") == "a%20b%0Ac%20d"
    assert propstr.decode_sshkeys("a%20b%0A%0Ac%20d%0A") == ["a b", "c d"]


@given(st.text(max_size=80))
def test_sshkeys_decode_of_encode_keeps_every_nonblank_line(text):
    assume("\r" not in text)
    decoded = propstr.decode_sshkeys(propstr.encode_sshkeys(text))
    assert decoded == [line.strip() for line in text.splitlines() if line.strip()]
