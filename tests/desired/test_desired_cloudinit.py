"""Cloud-init documents: checked by the real cloud-init, and round-tripped through YAML."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from phoenix.desired import load_desired, parse_desired
from phoenix.desired.cloudinit import build_meta_data, build_network_config, build_user_data, feature_scripts
from phoenix.diff.attributes import CLOUDINIT, configure_params
from phoenix.diff.views import desired_view
from phoenix.guest.runner import RUNNER_PATH, runner_script
from phoenix.pve import propstr
from desired_helpers import (ECDSA, ED25519, ED25519_2, EXAMPLE, HASH, HERE, cloud_init_network_check,
                             cloud_init_schema, native_doc, needs_cloud_init)


def _user_data_of(cfg, vm, agent_baked=True) -> dict:
    text = build_user_data(vm, cfg, agent_baked)
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def _check_user_data(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user-data"
        path.write_text(text)
        result = cloud_init_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr


def _check_network(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "network-config"
        path.write_text(text)
        result = cloud_init_network_check(path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_cloud_init
@pytest.mark.parametrize("agent_baked", [True, False])
def test_example_user_data_passes_cloud_init_schema(agent_baked):
    cfg = load_desired(EXAMPLE)
    for vm in cfg.vms:
        _check_user_data(build_user_data(vm, cfg, agent_baked))


@needs_cloud_init
@pytest.mark.parametrize("network", [{"ip": "10.0.0.101/24", "gw": "10.0.0.1"}, {"ip": "dhcp"},
                                     {"ip": "10.0.0.101/24", "nameservers": []}])
def test_network_config_passes_cloud_init(network):
    cfg = parse_desired(native_doc(network_config=network), base_dir=HERE)
    _check_network(build_network_config(cfg.vms[0]))


def test_user_data_content():
    cfg = load_desired(EXAMPLE)
    vm = cfg.vms[0]
    data = _user_data_of(cfg, vm, agent_baked=True)
    (user,) = data["users"]
    assert user == {"name": "phoenix_user", "passwd": HASH, "lock_passwd": False, "ssh_authorized_keys": [ED25519],
                    "sudo": "ALL=(ALL) NOPASSWD:ALL", "shell": "/bin/bash", "groups": ["adm", "sudo"]}
    assert data["hostname"] == "docker-vm-01" and data["fqdn"] == "docker-vm-01.lab.example.org"
    assert data["manage_etc_hosts"] is True and data["ssh_pwauth"] is False
    assert data["package_update"] is True and data["package_upgrade"] is False
    assert "packages" not in data and data["runcmd"][0] == ["systemctl", "start", "qemu-guest-agent"]
    assert [f["path"] for f in data["write_files"]] == ["/usr/local/sbin/phoenix-features",
                                                        "/var/lib/phoenix/features/base.sh",
                                                        "/var/lib/phoenix/features/docker.sh"]
    assert all(f["permissions"] == "0755" for f in data["write_files"])
    # one runner, started once and last (cloud-init's runcmd script reports only its last command)
    assert data["runcmd"][-1] == ["/usr/local/sbin/phoenix-features", "base", "docker"]
    assert sum("phoenix-features" in " ".join(cmd) for cmd in data["runcmd"]) == 1
    assert "PHOENIX_USER=phoenix_user\n" in data["write_files"][2]["content"]
    assert data["ssh_deletekeys"] is False


def test_ssh_deletekeys_says_why():
    cfg = load_desired(EXAMPLE)
    text = build_user_data(cfg.vms[0], cfg, True)
    before = text.split("\nssh_deletekeys: false\n")[0].splitlines()
    assert before[-1].startswith("# ") and "host keys" in " ".join(before[-3:])


def test_agent_installed_when_not_baked():
    cfg = load_desired(EXAMPLE)
    data = _user_data_of(cfg, cfg.vms[1], agent_baked=False)
    assert data["packages"] == ["qemu-guest-agent"]
    assert data["runcmd"][0] == ["systemctl", "enable", "--now", "qemu-guest-agent"]


def test_password_only_user_may_log_in_with_password_and_keyless_user_is_locked():
    data = native_doc()
    data["vms"][0]["user_config"] = {"username": "ops", "password_hash": HASH}
    cfg = parse_desired(data, base_dir=HERE)
    assert _user_data_of(cfg, cfg.vms[0])["ssh_pwauth"] is True
    data["vms"][0]["user_config"] = {"username": "ops", "ssh_public_key": ED25519}
    cfg = parse_desired(data, base_dir=HERE)
    user = _user_data_of(cfg, cfg.vms[0])["users"][0]
    assert user["lock_passwd"] is True and "passwd" not in user


def test_network_config_content():
    cfg = load_desired(EXAMPLE)
    net = yaml.safe_load(build_network_config(cfg.vms[0]))
    nic = net["ethernets"]["primary"]
    assert net["version"] == 2 and nic["match"] == {"name": "e*"}
    assert nic["addresses"] == ["10.0.0.101/24"] and nic["routes"] == [{"to": "0.0.0.0/0", "via": "10.0.0.1"}]
    assert nic["nameservers"] == {"addresses": ["10.0.0.1", "1.1.1.1"], "search": ["lab.example.org"]}


def test_dhcp_without_nameservers_has_no_empty_nameservers_key():
    data = native_doc(network_config={"ip": "dhcp"})
    data["vm_defaults"] = {}
    cfg = parse_desired(data, base_dir=HERE)
    nic = yaml.safe_load(build_network_config(cfg.vms[0]))["ethernets"]["primary"]
    assert nic == {"match": {"name": "e*"}, "dhcp4": True}


def test_meta_data_and_instance_id_follow_inputs():
    cfg = load_desired(EXAMPLE)
    meta = yaml.safe_load(build_meta_data(cfg.vms[0]))
    assert meta["local-hostname"] == "docker-vm-01" and meta["instance-id"].startswith("phoenix-8001-")
    assert build_meta_data(cfg.vms[0]) == build_meta_data(load_desired(EXAMPLE).vms[0])
    assert meta["instance-id"] != yaml.safe_load(build_meta_data(cfg.vms[1]))["instance-id"]
    assert HASH not in build_meta_data(cfg.vms[0])


def pve_cloudinit_options(vm) -> dict:
    """The cloud-init options phoenix writes for ``vm`` (through the attribute registry)."""
    view = desired_view(vm, cicustom=None, user_data_fingerprint="")
    return configure_params({k: v for k, v in view.items() if k in CLOUDINIT}, {})


def test_pve_options():
    cfg = load_desired(EXAMPLE)
    options = pve_cloudinit_options(cfg.vms[0])
    assert options == {
        "ciuser": "phoenix_user",
        "sshkeys": propstr.encode_sshkeys([ED25519]),
        "ipconfig0": "ip=10.0.0.101/24,gw=10.0.0.1",
        "nameserver": "10.0.0.1 1.1.1.1",
        "searchdomain": "lab.example.org",
    }
    assert "%20" in options["sshkeys"] and "+" not in options["sshkeys"]
    assert propstr.decode_sshkeys(options["sshkeys"]) == [ED25519]
    dhcp = parse_desired(native_doc(network_config={"ip": "dhcp"}), base_dir=HERE).vms[0]
    assert pve_cloudinit_options(dhcp)["ipconfig0"] == "ip=dhcp"


# --- property tests ------------------------------------------------------------------------------

_label = st.from_regex(r"\A[a-z][a-z0-9-]{0,14}[a-z0-9]\Z")
names = st.lists(_label, min_size=1, max_size=3).map(".".join)
usernames = st.from_regex(r"\A[a-z_][a-z0-9_-]{0,20}\Z").filter(lambda u: u != "root")
keys = st.lists(st.sampled_from([ED25519, ED25519_2, ECDSA]), min_size=0, max_size=3, unique=True)
feature_sets = st.lists(st.sampled_from(["base", "docker"]), max_size=3)
networks = st.sampled_from([{"ip": "dhcp"}, {"ip": "10.0.0.101/24", "gw": "10.0.0.1"},
                            {"ip": "192.168.7.9/16", "nameservers": ["9.9.9.9", "2620:fe::fe"]}])
vm_inputs = st.fixed_dictionaries({
    "name": names, "username": usernames, "keys": keys, "features": feature_sets, "network": networks,
    "password": st.booleans(), "agent_baked": st.booleans(), "upgrade": st.booleans()})


def _config(spec: dict):
    data = native_doc(name=spec["name"], features=spec["features"], network_config=spec["network"])
    user = {"username": spec["username"], "ssh_public_keys": spec["keys"]}
    if spec["password"]:
        user["password_hash"] = HASH
    data["vms"][0]["user_config"] = user
    data["vm_defaults"]["package_upgrade"] = spec["upgrade"]
    return parse_desired(data, base_dir=HERE)


def _assert_round_trip(spec: dict, cfg, text: str) -> None:
    vm = cfg.vms[0]
    data = yaml.safe_load(text)
    user = data["users"][0]
    assert data["hostname"] == spec["name"].split(".")[0]
    assert data["fqdn"] == (spec["name"] if "." in spec["name"] else f"{spec['name']}.lab.example.org")
    assert user["name"] == spec["username"]
    assert user.get("ssh_authorized_keys", []) == spec["keys"]
    assert user.get("passwd") == (HASH if spec["password"] else None)
    assert data["package_upgrade"] is spec["upgrade"]
    wanted = list(dict.fromkeys(spec["features"]))
    runner, *scripts = data["write_files"]
    assert runner["path"] == RUNNER_PATH and runner["content"] == runner_script()
    assert [f["path"].rsplit("/", 1)[1][:-3] for f in scripts] == wanted
    assert [f["content"] for f in scripts] == [s for _, s in feature_scripts(vm, cfg)]
    assert data["runcmd"][-1] == [RUNNER_PATH, *wanted]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vm_inputs)
def test_property_user_data_is_yaml_and_round_trips(spec):
    cfg = _config(spec)
    _assert_round_trip(spec, cfg, build_user_data(cfg.vms[0], cfg, spec["agent_baked"]))
    net = yaml.safe_load(build_network_config(cfg.vms[0]))
    assert net["ethernets"]["primary"].get("addresses", ["dhcp"])[0] == spec["network"]["ip"]


@pytest.mark.timeout(600)          # 25 examples × 2 `cloud-init` runs: ~110 s alone, more on a shared machine
@needs_cloud_init
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vm_inputs)
def test_property_real_cloud_init_accepts_every_document(spec):
    cfg = _config(spec)
    vm = cfg.vms[0]
    text = build_user_data(vm, cfg, spec["agent_baked"])
    _assert_round_trip(spec, cfg, text)
    _check_user_data(text)
    _check_network(build_network_config(vm))
