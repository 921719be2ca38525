"""Several NICs and IPv6: validation (one problem, named by its JSON path), resolution of the
``network_config`` shorthand, and the network config the real cloud-init parser accepts."""

from __future__ import annotations

import pytest
import yaml

from phoenix.desired import ConfigError
from phoenix.desired.cloudinit import build_network_config
from phoenix.desired.loader import parse_desired
from phoenix.diff.views import desired_view

from desired_helpers import HERE, native_doc, needs_cloud_init
from test_desired_cloudinit import _check_network


def _problems(**vm) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_desired(native_doc(**vm), base_dir=HERE)
    return [(p.path, p.message) for p in info.value.problems]


def _vm(**overrides):
    return parse_desired(native_doc(**overrides), base_dir=HERE).vms[0]


TWO_NICS = [{"bridge": "vmbr0", "ip": "10.0.0.101/24", "gw": "10.0.0.1", "ip6": "2001:DB8::101/64",
             "gw6": "fe80::1"},
            {"bridge": "vmbr1", "vlan": 20, "model": "e1000", "mac": "bc:24:11:00:00:02", "firewall": True,
             "ip": "dhcp", "ip6": "auto"}]


def test_shorthand_is_the_first_nic():
    vm = _vm(network_bridge="vmbr2", network_config={"ip": "10.0.0.5/24", "gw": "10.0.0.1", "ip6": "dhcp"})
    assert len(vm.nics) == 1 and vm.nics[0].bridge == "vmbr2" and vm.nics[0].ip6 == "dhcp"
    view = desired_view(vm, None, "fp")
    assert view["net0"] == {"bridge": "vmbr2", "model": "virtio"}
    assert view["ipconfig0"] == "ip=10.0.0.5/24,gw=10.0.0.1,ip6=dhcp"
    assert "net1" not in view and "ipconfig1" not in view


def test_networks_resolve_to_net_and_ipconfig_per_nic():
    vm = _vm(network_config={"nameservers": ["10.0.0.1"]}, networks=TWO_NICS)
    view = desired_view(vm, None, "fp")
    assert view["net0"] == {"bridge": "vmbr0", "model": "virtio"}
    assert view["ipconfig0"] == "ip=10.0.0.101/24,gw=10.0.0.1,ip6=2001:db8::101/64,gw6=fe80::1"
    assert view["net1"] == {"bridge": "vmbr1", "model": "e1000", "vlan": 20, "mac": "BC:24:11:00:00:02",
                            "firewall": True}
    assert view["ipconfig1"] == "ip=dhcp,ip6=auto"
    assert vm.network.ip == "10.0.0.101/24" and view["nameserver"] == "10.0.0.1"


def test_a_nic_without_bridge_takes_the_default_bridge():
    vm = _vm(network_config={}, networks=[{}, {"ip": "dhcp"}])
    assert [n.bridge for n in vm.nics] == ["vmbr0", "vmbr0"]


@pytest.mark.parametrize("vm, path, words", [
    ({"networks": [{"ip6": "2001:db8::1"}]}, "vms[0].networks[0].ip6", "no prefix length"),
    ({"networks": [{"ip6": "10.0.0.1/24"}]}, "vms[0].networks[0].ip6", "not valid"),
    ({"networks": [{"ip6": "auto", "gw6": "fe80::1"}]}, "vms[0].networks[0].gw6", "static ip6"),
    ({"networks": [{"gw6": "fe80::1"}]}, "vms[0].networks[0].gw6", "needs a static ip6"),
    ({"networks": [{"ip6": "2001:db8::5/64", "gw6": "2001:db8::5"}]}, "vms[0].networks[0].gw6", "own address"),
    ({"networks": [{"ip6": "2001:db8::5/64", "gw6": "10.0.0.1"}]}, "vms[0].networks[0].gw6", "not an IPv6"),
    ({"networks": [{}, {"vlan": 4095}]}, "vms[0].networks[1].vlan", "4094"),
    ({"networks": [{"mac": "01:00:5e:00:00:01"}]}, "vms[0].networks[0].mac", "multicast"),
    ({"networks": [{"mac": "bc:24:11:00:00:01\n"}]}, "vms[0].networks[0].mac", "control character"),
    ({"networks": [{"model": "e1000", "mtu": 9000}]}, "vms[0].networks[0]", "virtio"),
    ({"networks": [{"mtu": 100}]}, "vms[0].networks[0].mtu", "576"),
    ({"networks": [{"model": "rtl9999"}]}, "vms[0].networks[0].model", "virtio"),
    ({"networks": []}, "vms[0].networks", "at least 1"),
    ({"networks": [{}] * 33}, "vms[0].networks", "at most 32"),
    ({"networks": [{"bridgee": "vmbr0"}]}, "vms[0].networks[0].bridgee", "bridge"),
    ({"network_config": {"ip": "dhcp"}, "networks": [{}]}, "vms[0]", "networks[0]"),
    ({"network_config": {}, "network_bridge": "vmbr1", "networks": [{}]}, "vms[0]", "networks[0]"),
    ({"network_config": {"ip6": "fe80::1"}}, "vms[0].network_config.ip6", "prefix length"),
])
def test_bad_nics_are_one_problem_at_their_path(vm, path, words):
    vm.setdefault("network_config", {})
    problems = _problems(**vm)
    assert len(problems) == 1, problems
    assert problems[0][0] == path and words in problems[0][1], problems


def test_network_config_has_one_entry_per_nic_with_ipv6():
    vm = _vm(network_config={"nameservers": ["10.0.0.1"]}, networks=TWO_NICS)
    eth = yaml.safe_load(build_network_config(vm))["ethernets"]
    assert eth["primary"]["match"] == {"name": "ens18"}
    assert eth["primary"]["addresses"] == ["10.0.0.101/24", "2001:db8::101/64"]
    assert {"to": "::/0", "via": "fe80::1"} in eth["primary"]["routes"]
    assert eth["nic1"] == {"match": {"macaddress": "bc:24:11:00:00:02"}, "dhcp4": True, "dhcp6": False,
                           "accept-ra": True}


@needs_cloud_init
@pytest.mark.parametrize("networks", [
    TWO_NICS,
    [{"ip6": "dhcp"}],
    [{"ip": "10.0.0.7/24", "ip6": "auto"}, {"ip": "dhcp", "ip6": "2001:db8:1::7/48", "gw6": "2001:db8:1::1"},
     {"mtu": 9000, "ip": "dhcp"}],
])
def test_network_config_passes_cloud_init(networks):
    _check_network(build_network_config(_vm(network_config={"nameservers": ["10.0.0.1", "2620:fe::fe"]},
                                            networks=networks)))


def test_a_static_address_is_unique_across_every_nic():
    data = native_doc(network_config={}, networks=TWO_NICS)
    other = dict(data["vms"][0], vmid=8002, name="other", networks=[{"ip": "dhcp", "ip6": "2001:db8:0::101/64"}])
    data["vms"].append(other)
    with pytest.raises(ConfigError) as info:
        parse_desired(data, base_dir=HERE)
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("vms[1].networks[0].ip6", "address 2001:db8::101 is already used by vms[0].networks[0].ip6")]
