"""Loading: the shipped example, the original project's format, every broken fixture, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phoenix.desired import ConfigError, Problem, load_desired, parse_desired
from desired_helpers import ED25519, ED25519_2, EXAMPLE, HASH, HERE, native_doc

BROKEN = HERE / "broken"

# fixture file → the problems it must produce: (path, text the message contains), all of them, exactly.
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "vmid_out_of_range": [("vms[0].vmid", "out of range; PVE accepts 100..999999999")],
    "duplicate_vmid": [("vms[1].vmid", "VM ID 8000 is already used by templates[0]")],
    "bad_hostname": [("vms[0].name", "is not an RFC 1123 host name")],
    "unknown_template": [("vms[0].clone_from_vmid", "no template 9000 is declared")],
    "clone_from_vm": [("vms[1].clone_from_vmid", "8001 is a VM in this file, not a template")],
    "gateway_outside_subnet": [("vms[0].network_config.gw", "gateway 10.1.0.1 is not in the subnet 10.0.0.0/24")],
    "gateway_with_dhcp": [("vms[0].network_config.gw", "only applies to a static ip")],
    "ip_without_prefix": [("vms[0].network_config.ip", "has no prefix length")],
    "plaintext_password": [("vms[0].user_config.password_hash", "`openssl passwd -6` or `mkpasswd -m sha-512`")],
    "placeholder_hash": [("vms[0].user_config.password_hash", "not a complete $6$ crypt hash")],
    "ssh_key_type_mismatch": [("vms[0].user_config.ssh_public_key", "does not contain a ssh-rsa key")],
    "ssh_key_placeholder": [("vms[0].user_config.ssh_public_key", "not valid base64")],
    "typo_key": [("vms[0].memroy_mb", "unknown key 'memroy_mb' (did you mean 'memory_mb'?)")],
    "typo_top_level": [("templtes", "did you mean 'templates'?"),
                       ("vms[0].clone_from_vmid", "no template 8000"), ("vms[1].clone_from_vmid", "no template 8000")],
    "unknown_feature": [("vms[0].features[0]", "unknown feature 'dockr' (did you mean 'docker'?")],
    "string_number": [("vms[0].cores", "expected an integer")],
    "duplicate_address": [("vms[1].network_config.ip", "address 10.0.0.101 is already used by vms[0]")],
    "two_checksum_sources": [("templates[0].image", "exactly one of checksum or checksum_url")],
    "customize_with_pve_delivery": [("templates[0]", "customize needs image.delivery 'local'")],
    "bad_snippets_backend": [("vm_defaults.snippets_backend", "'local', 'sftp' or 'iso'")],
    "many_problems": [
        ("templates[0].image.checksum", "a sha256 checksum is 64 hex digits"),
        ("vms[0].vmid", "out of range"),
        ("vms[0].memroy_mb", "did you mean 'memory_mb'?"),
        ("vms[1].name", "RFC 1123"),
        ("vms[1].user_config.password_hash", "plaintext password"),
    ],
    "invalid_json": [("invalid_json.json", "invalid JSON at line 3, column 19")],
    "not_an_object": [("(top level)", "expected a JSON object")],
    "duplicate_json_key": [("duplicate_json_key.json", "key 'vms' appears twice")],
    "legacy_problems": [
        ("vms[0].template_image", "required for a template (is_template: true)"),
        ("vms[2].clone_from_vmid", "vm_defaults.template 'ubuntu-24.04-standard' names no template"),
    ],
}


def test_every_broken_fixture_has_an_expectation():
    assert sorted(p.stem for p in BROKEN.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_fixture_reports_exactly_its_problems(name):
    with pytest.raises(ConfigError) as info:
        load_desired(BROKEN / f"{name}.json")
    got = info.value.problems
    expected = EXPECTED[name]
    assert len(got) == len(expected), got
    for problem, (path, text) in zip(got, expected):
        assert problem.path.endswith(path) if path.endswith(".json") else problem.path == path, got
        assert text in problem.message, got
    assert "\n" not in str(info.value)


def test_shipped_example_is_valid_and_resolved():
    cfg = load_desired(EXAMPLE)
    assert cfg.format == "native" and not cfg.warnings
    assert [t.vmid for t in cfg.templates] == [8000]
    template = cfg.templates[0]
    assert template.image.url == "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"
    assert template.image.checksum_url == "https://cloud-images.ubuntu.com/noble/current/SHA256SUMS"
    assert template.customize.packages[0] == "qemu-guest-agent"
    vm1, vm2 = cfg.vms
    assert (vm1.vmid, vm1.name, vm1.features) == (8001, "docker-vm-01", ["base", "docker"])
    assert vm2.vmid == 8002 and vm2.cores == cfg.defaults.cores and vm2.node == "pve"
    assert vm1.network.gw == "10.0.0.1" and vm1.network.address == "10.0.0.101"
    assert vm1.storage_pool == "local-lvm" and vm1.network_bridge == "vmbr0" and vm1.snippets_storage == "local"
    assert cfg.template_for(vm1) is template


def test_original_project_seed_loads_but_names_its_placeholders():
    with pytest.raises(ConfigError) as info:
        load_desired(HERE / "original_project.json")
    assert [p.path for p in info.value.problems] == ["vms[1].user_config.password_hash",
                                                     "vms[1].user_config.ssh_public_key"]
    assert "$6$..." not in str(info.value)


def test_original_project_with_later_keys_normalises_to_the_model():
    cfg = load_desired(HERE / "original_project_later.json")
    assert cfg.format == "legacy"
    (template,) = cfg.templates
    assert template.vmid == 8000 and template.storage_pool == "quickOS-vm-disks"
    assert template.image.url == "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"
    assert template.image.checksum_url.endswith("/noble/current/SHA256SUMS")
    docker, dhcp = cfg.vms
    assert docker.cores == 4 and docker.disk_size_gb == 100 and docker.features == ["docker"]
    assert docker.network.nameservers == ["10.0.0.1", "75.75.75.75"]      # vm_defaults.nameserver
    assert docker.user.password_hash.get_secret_value() == HASH
    assert dhcp.clone_from_vmid == 8000                                  # via vm_defaults.template
    assert dhcp.network.is_dhcp and dhcp.network.nameservers == ["10.0.0.53"]
    ignored = {w.path for w in cfg.warnings}
    assert {"vms[1].template_snapshot_name", "vms[1].firewall", "vms[1].qm_options", "vms[1].volumes",
            "vms[1].snapshots", "vms[1].dependencies", "vms[1].boot_order", "vm_defaults.start_at_boot",
            "vms[0].network_config"} <= ignored
    assert all("ignored" in w.message for w in cfg.warnings)


def test_legacy_typo_is_refused_at_the_users_path():
    data = json.loads((HERE / "original_project_later.json").read_text())
    data["vms"][1]["memroy_mb"] = 1
    data["vms"][2]["user_config"]["usename"] = "x"
    with pytest.raises(ConfigError) as info:
        parse_desired(data, base_dir=HERE)
    paths = {p.path: p.message for p in info.value.problems}
    assert "did you mean 'memory_mb'" in paths["vms[1].memroy_mb"]
    assert "did you mean 'username'" in paths["vms[2].user_config.usename"]


def test_clone_from_existing_cluster_template():
    data = native_doc(clone_from_vmid=9000)
    with pytest.raises(ConfigError):
        parse_desired(data, base_dir=HERE)
    cfg = parse_desired(data, base_dir=HERE, existing_templates=frozenset({9000}))
    assert cfg.template_for(cfg.vms[0]) is None


def test_defaults_and_keys_merge():
    data = native_doc(network_config={"ip": "dhcp"})
    data["vms"][0]["user_config"]["ssh_public_keys"] = [ED25519_2, ED25519]
    cfg = parse_desired(data, base_dir=HERE)
    vm = cfg.vms[0]
    assert vm.user.ssh_public_keys == [ED25519, ED25519_2]
    assert vm.network.nameservers == ["10.0.0.1"] and vm.network.searchdomain == "lab.example.org"
    assert vm.fqdn == "docker-vm-01.lab.example.org" and vm.full_clone and vm.start
    assert cfg.defaults.snippets_backend == "local" and cfg.defaults.sftp.port == 22
    assert cfg.defaults.sftp.username == "root" and cfg.defaults.package_upgrade is False


def test_sftp_and_delivery_keys():
    data = native_doc()
    data["vm_defaults"].update(snippets_backend="sftp", sftp={"host": "10.0.0.2", "port": 2222,
                                                             "key_file": "~/.ssh/id_ed25519"})
    data["templates"][0]["image"]["delivery"] = "pve"
    data["templates"][0]["cores"] = 1
    cfg = parse_desired(data, base_dir=HERE)
    assert cfg.defaults.sftp.host == "10.0.0.2" and cfg.defaults.sftp.port == 2222
    template = cfg.templates[0]
    assert template.customize.packages == [] and template.cores == 1
    assert template.image.file_name == "noble-server-cloudimg-amd64.img"


def test_password_hash_never_in_repr_or_str():
    cfg = load_desired(EXAMPLE)
    texts = [repr(cfg), str(cfg), repr(cfg.vms[0]), str(cfg.vms[0].user), cfg.vms[0].model_dump_json()]
    assert not any(HASH in text for text in texts)


def test_plaintext_password_never_echoed():
    data = native_doc()
    data["vms"][0]["user_config"]["password_hash"] = "my-secret-password"
    with pytest.raises(ConfigError) as info:
        parse_desired(data, base_dir=HERE)
    assert "my-secret-password" not in str(info.value)
    assert all("my-secret-password" not in str(p) for p in info.value.problems)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_desired(tmp_path / "missing.json")
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_desired(binary)


def test_user_feature_from_desired_dir(tmp_path):
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "hello.sh.j2").write_text("#!/bin/bash\necho {{ vm_name }} {{ nope }}\n")
    data = native_doc(features=["hello"])
    with pytest.raises(ConfigError) as info:
        parse_desired(data, base_dir=tmp_path)
    assert info.value.problems == [Problem("vms[0].features[0]", "feature 'hello' (hello.sh.j2) line 2: 'nope' is undefined")]
    (tmp_path / "features" / "hello.sh.j2").write_text("#!/bin/bash\necho {{ vm_name }}\n")
    assert parse_desired(data, base_dir=tmp_path).vms[0].features == ["hello"]


def test_problem_paths_are_json_paths():
    data = native_doc(network_config={"ip": "10.0.0.999/24"})
    with pytest.raises(ConfigError) as info:
        parse_desired(data, base_dir=Path("."))
    assert str(info.value.problems[0]).startswith("vms[0].network_config.ip: ")
