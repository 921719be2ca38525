"""The IPv4 fast path (phoenix.desired.ipv4) against ``ipaddress``, and the field checks that use it
against their ``ipaddress``-only form: same verdict, same value, same message."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from phoenix.desired import ipv4
from phoenix.desired import validators as v

_octet = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "010", "255", "256", "", "1a", "٣"]))
_prefix = st.one_of(st.integers(0, 40).map(str), st.sampled_from(["08", "032", "", "255.255.255.0", "0.0.0.255", "x"]))
_dotted = st.lists(_octet, min_size=3, max_size=5).map(".".join)
_cidr = st.one_of(st.tuples(_dotted, _prefix).map("/".join), _dotted, st.text(alphabet="0123456789./ \n", max_size=20),
                  st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}"))
_address = st.one_of(_dotted, st.ip_addresses(v=4).map(str), st.text(alphabet="0123456789.: \n", max_size=18))


def _outcome(check, *args):
    try:
        return "ok", check(*args)
    except ValueError as exc:
        return "error", str(exc)


# The checks' ipaddress-only forms (the code as it was before the fast path) are the reference.
_cidr_reference = v.cidr_or_dhcp_by_ipaddress
_gateway_reference = v.gateway_in_subnet_by_ipaddress


@settings(max_examples=400)
@given(_cidr)
def test_interface_agrees_with_ipaddress(text):
    fast = ipv4.interface(text)
    if fast is not None:
        iface = ipaddress.IPv4Interface(text)
        assert fast == (int(iface.ip), iface.network.prefixlen)
        assert ipv4.host_address(text) == str(iface.ip)
        assert ipv4.network_bounds(*fast) == (int(iface.network.network_address), int(iface.network.broadcast_address))
    else:
        assert ipv4.host_address(text) is None


@settings(max_examples=400)
@given(_address)
def test_address_agrees_with_ipaddress(text):
    fast = ipv4.address(text)
    if fast is not None:
        assert fast == int(ipaddress.IPv4Address(text))


@pytest.mark.parametrize("text", ["10.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.4"])
def test_canonical_addresses_take_the_fast_path(text):
    assert ipv4.address(text) == int(ipaddress.IPv4Address(text))
    assert ipv4.interface(text + "/24") is not None


@pytest.mark.parametrize("text", ["010.0.0.1", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.4\n", "١.2.3.4", " 1.2.3.4"])
def test_other_spellings_are_left_to_ipaddress(text):
    assert ipv4.address(text) is None
    assert ipv4.interface(text + "/24") is None


@settings(max_examples=400)
@given(_cidr)
def test_check_cidr_or_dhcp_unchanged(text):
    assert _outcome(v.check_cidr_or_dhcp, text) == _outcome(_cidr_reference, text)


@settings(max_examples=300)
@given(st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}"), _address)
def test_check_gateway_in_subnet_unchanged(ip, gw):
    assert _outcome(v.check_gateway_in_subnet, ip, gw) == _outcome(_gateway_reference, ip, gw)


@given(st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}"))
def test_gateway_in_own_subnet_unchanged(ip):
    # gateways near the VM's address: the subnet's edges and the address itself
    value, prefix = ipv4.interface(ip)
    network, broadcast = ipv4.network_bounds(value, prefix)
    for gw in {value, network, broadcast, max(network - 1, 0), min(broadcast + 1, 2**32 - 1)}:
        text = str(ipaddress.IPv4Address(gw))
        assert _outcome(v.check_gateway_in_subnet, ip, text) == _outcome(_gateway_reference, ip, text)


@settings(max_examples=300)
@given(_address)
def test_check_ipv4_and_check_ip_unchanged(text):
    assert _outcome(v.check_ipv4, text) == _outcome(v.ipv4_by_ipaddress, text)
    assert _outcome(v.check_ip, text) == _outcome(v.ip_by_ipaddress, text)
