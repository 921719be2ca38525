"""Schema validation with PVE's exact texts (behaviors.md §1, pve-common JSONSchema.pm)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proxmoxer.core import ResourceException

from phoenix.sim.core import PVEError
from phoenix.sim.schema import (
    SCHEMA,
    Endpoint,
    Router,
    check_format,
    parse_property_string,
    validate,
)
from phoenix.sim.schema_formats import FormatError

CONFIG = Endpoint("POST", "/nodes/{node}/qemu/{vmid}/config",
                  SCHEMA["endpoints"]["/nodes/{node}/qemu/{vmid}/config"]["POST"])
CREATE = Endpoint("POST", "/nodes/{node}/qemu", SCHEMA["endpoints"]["/nodes/{node}/qemu"]["POST"])
PATH = {"node": "pve", "vmid": "100"}


def _errors(endpoint: Endpoint, params: dict, path: dict | None = None) -> dict[str, str]:
    with pytest.raises(PVEError) as caught:
        validate(endpoint, params, PATH if path is None else path)
    assert caught.value.status == 400
    assert caught.value.message == "Parameter verification failed.\n"
    return caught.value.errors


@pytest.mark.parametrize("params, key, message", [
    ({"cores": "abc"}, "cores", "type check ('integer') failed - got 'abc'"),
    ({"onboot": "True"}, "onboot", "type check ('boolean') failed - got 'True'"),
    ({"cpulimit": "x1"}, "cpulimit", "type check ('number') failed - got 'x1'"),
    ({"cores": "0"}, "cores", "value must have a minimum value of 1"),
    ({"cpulimit": "129"}, "cpulimit", "value must have a maximum value of 128"),
    ({"digest": "a" * 41}, "digest", "value may only be 40 characters long"),
    ({"ostype": "dos"}, "ostype", "value 'dos' does not have a value in the enumeration "
                                  "'other, wxp, w2k, w2k3, w2k8, wvista, win7, win8, win10, win11, l24, l26, solaris'"),
    ({"name": "bad_name"}, "name", "invalid format - value does not look like a valid DNS name\n"),
    ({"sshkeys": "ssh-ed25519 AAAA"}, "sshkeys", "invalid format - invalid urlencoded string: ssh-ed25519 AAAA\n"),
    ({"delete": "cores,1bad"}, "delete", "invalid format - invalid configuration ID '1bad'\n"),
    ({"tags": "ok;b@d"}, "tags", "invalid format - invalid characters in tag\n"),
    ({"nameserver": "1.1.1.1 not_a_host"}, "nameserver",
     "invalid format - value does not look like a valid address: not_a_host\n"),
    ({"bogus": "1"}, "bogus", "property is not defined in schema and the schema does not allow additional properties"),
    ({"net32": "virtio,bridge=vmbr0"}, "net32",
     "property is not defined in schema and the schema does not allow additional properties"),
    ({"scsi0": "local-lvm:32,size=abc"}, "scsi0",
     "invalid format - format error\nscsi0.size: invalid format - value does not look like a valid disk size: abc\n\n"),
    ({"net0": "bridge=vmbr0"}, "net0",
     "invalid format - format error\nnet0.model: property is missing and it is not optional\n"),
    ({"net0": "virtio=01:00:00:00:00:01,bridge=vmbr0"}, "net0", "invalid format - format error\n"
     "net0.macaddr: invalid format - value does not look like a valid unicast MAC address\n\n"),
    ({"net0": "virtio,tag=5000"}, "net0", "invalid format - format error\nnet0.tag: value must have a maximum value of 4094\n"),
    ({"net0": "virtio,colour=red"}, "net0", "invalid format - invalid key in comma-separated list property: colour\n"),
    ({"net0": "virtio,virtio"}, "net0", "invalid format - duplicate key in comma-separated list property: model\n"),
    ({"ipconfig0": "ip=10.0.0.5/33"}, "ipconfig0", "invalid format - format error\n"
     "ipconfig0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n"),
    ({"ipconfig0": "gw=10.0.0.1"}, "ipconfig0", "invalid format - format error\n"
     "ipconfig0.ip: missing property - 'ipconfig0.gw' requires this property\n"),
    ({"cicustom": "user=snippets.yaml"}, "cicustom", "invalid format - format error\n"
     "cicustom.user: invalid format - unable to parse volume ID 'snippets.yaml'\n\n"),
    ({"boot": "order=scsi0;nic9"}, "boot", "invalid format - format error\n"
     "boot.order: invalid format - invalid boot device 'nic9'\n\n"),
    ({"agent": "enabled=maybe"}, "agent", "invalid format - format error\nagent.enabled: type check ('boolean') failed - got 'maybe'\n"),
])
def test_config_errors_have_pves_exact_text(params, key, message):
    """Nested format errors end in a blank line: PVE::Exception appends "\\n" after a message that has one."""
    assert _errors(CONFIG, params)[key] == message


def test_path_vmid_below_range_is_invalid_format():
    assert _errors(CONFIG, {}, {"node": "pve", "vmid": "50"}) == {
        "vmid": "invalid format - value does not look like a valid VM ID\n"}


def test_missing_required_and_all_errors_collected():
    errors = _errors(CREATE, {"cores": "x", "memory": "abc"}, {"node": "pve"})
    assert errors == {"vmid": "property is missing and it is not optional",
                      "cores": "type check ('integer') failed - got 'x'",
                      "memory": "invalid format - format error\nmemory.current: type check ('integer') failed - got 'abc'\n"}


def test_multiple_errors_on_one_key_are_joined_with_backslash_n():
    errors = _errors(CONFIG, {"ipconfig0": "gw=10.0.0.1"}, {"node": "pve", "vmid": "100"})
    assert "\\n" not in errors["ipconfig0"]
    endpoint = Endpoint("GET", "/x", {"parameters": {"additionalProperties": 0, "properties": {
        "a": {"type": "string", "optional": 1, "requires": "b"},
        "c": {"type": "string", "optional": 1, "requires": "b"},
        "b": {"type": "string", "optional": 1}}}})
    assert _errors(endpoint, {"a": "1", "c": "2"}, {})["b"] == (
        "missing property - 'a' requires this property\\nmissing property - 'c' requires this property")


def test_uri_and_body_conflict():
    assert _errors(CONFIG, {"vmid": "101"})["vmid"] == "duplicate parameter (already defined in URI) with conflicting values!"


def test_conversion_of_integers_booleans_numbers():
    params = validate(CONFIG, {"cores": "+4", "onboot": "1", "cpulimit": "1.5", "balloon": 0, "protection": True,
                               "net0": "virtio,bridge=vmbr0", "name": "web-1"}, PATH)
    assert params == {"cores": 4, "onboot": 1, "cpulimit": 1.5, "balloon": 0, "protection": 1,
                      "net0": "virtio,bridge=vmbr0", "name": "web-1", "node": "pve", "vmid": 100}


def test_json_types_that_are_not_scalars_fail_type_check():
    errors = _errors(CONFIG, {"cores": [1], "name": {"a": 1}, "memory": True})
    assert errors == {"cores": "type check ('integer') failed - got ARRAY",
                      "name": "type check ('string') failed - got HASH",
                      "memory": "type check ('string') failed - got JSON::PP::Boolean"}


@pytest.mark.parametrize("value", ["virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1", "model=e1000,bridge=vmbr1,tag=10",
                                   "virtio,bridge=vmbr0,link_down=yes,mtu=1500,queues=4,rate=12.5"])
def test_valid_net_strings(value):
    assert validate(CONFIG, {"net0": value}, PATH)["net0"] == value


def test_property_string_resolves_key_alias():
    parsed = parse_property_string(CONFIG.property("net0")["format"], "virtio=BC:24:11:00:00:01,bridge=vmbr0", "net0")
    assert parsed == {"model": "virtio", "macaddr": "BC:24:11:00:00:01", "bridge": "vmbr0"}


@pytest.mark.parametrize("fmt, value", [
    ("pve-volume-id-or-qm-path", "local-lvm:vm-100-disk-0"), ("pve-volume-id-or-qm-path", "none"),
    ("pve-volume-id-or-absolute-path", "/var/lib/vz/x.qcow2"), ("CIDR", "10.0.0.0/8"), ("CIDR", "fd00::/64"),
    ("pve-qm-ipconfig", "ip=dhcp"), ("pve-qm-ipconfig", "ip=10.0.0.5/24,gw=10.0.0.1,ip6=auto"),
    ("pve-storage-content-list", "images,iso,snippets"), ("pve-poolid", "pool_1"), ("pve-qm-boot", "order=scsi0;net0"),
])
def test_valid_format_values(fmt, value):
    check_format(fmt, value, "x")


@pytest.mark.parametrize("fmt, value, message", [
    ("CIDR", "10.0.0.0/7", "value does not look like a valid CIDR network\n"),
    ("pve-storage-content", "pictures", "invalid content type 'pictures'\n"),
    ("pve-storage-id", "1local", "storage ID '1local' contains illegal characters\n"),
    ("pve-bridge-id", "vmbr 0", "invalid bridge ID 'vmbr 0'\n"),
    ("pve-node", "-pve", "value does not look like a valid node name\n"),
])
def test_invalid_format_values(fmt, value, message):
    with pytest.raises(FormatError) as caught:
        check_format(fmt, value, "x")
    assert str(caught.value) == message


def test_router_matches_templates_and_raw_upids():
    router = Router()
    upid = "UPID:pve:0003A2F1:00B3C9D4:66A1B2C3:qmclone:9000:root@pam!phoenix:"
    template, params, methods = router.match(f"/nodes/pve/tasks/{upid}/status")
    assert template == "/nodes/{node}/tasks/{upid}/status" and params["upid"] == upid and "GET" in methods
    assert router.match("/nodes/pve/storage/local/content/local%3Aiso%2Fa.iso")[1]["volume"] == "local:iso/a.iso"
    assert router.match("/nodes/pve/qemu/100/foo") is None


def test_validation_over_http_is_a_400_with_errors(proxmox):
    with pytest.raises(ResourceException) as caught:
        proxmox.nodes("pve").tasks.get(limit="-1", typefilter="qmclone")
    assert caught.value.status_code == 400
    assert caught.value.content == "Parameter verification failed."
    assert caught.value.errors == {"limit": "value must have a minimum value of 0"}


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(sorted(CONFIG.properties)), value=st.one_of(_text, st.integers(), st.booleans(),
                                                                         st.floats(allow_nan=False)))
def test_validate_only_ever_raises_a_400(key, value):
    """Whatever one parameter holds, validation either passes or answers PVE's 400 — never crashes."""
    key = key.replace("[n]", "0")
    try:
        validate(CONFIG, {key: value}, PATH)
    except PVEError as error:
        assert error.status == 400 and error.errors
