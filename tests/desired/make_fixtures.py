"""Regenerate tests/desired/broken/*.json from one valid document (run by hand; the files are committed)."""

import copy
import json
from pathlib import Path

HASH = "$6$Phx3xampl$PluJTTI9u4rz.gQEtphO3az.Vi.sW8L1QBu8wZec1UT.VHo3zZ5XcEgT7aCVPqbT0Mr7LidS0DrDzbENiSGPE."
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELyzZdGD+OekL+iD7dqozDfouKGBknYZxQ3AogwAjb/ phoenix-example@throwaway"
BASE = {
    "vm_defaults": {"node": "pve", "storage_pool": "local-lvm", "network_bridge": "vmbr0"},
    "templates": [{"vmid": 8000, "name": "noble-template", "image": {
        "url": "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
        "checksum_url": "https://cloud-images.ubuntu.com/noble/current/SHA256SUMS"}}],
    "vms": [
        {"vmid": 8001, "name": "docker-vm-01", "clone_from_vmid": 8000, "features": ["docker"],
         "network_config": {"ip": "10.0.0.101/24", "gw": "10.0.0.1"},
         "user_config": {"username": "phoenix_user", "password_hash": HASH, "ssh_public_key": ED25519}},
        {"vmid": 8002, "name": "app-vm-02", "clone_from_vmid": 8000,
         "network_config": {"ip": "dhcp"},
         "user_config": {"username": "phoenix_user", "ssh_public_keys": [ED25519]}},
    ],
}


def variant(change):
    doc = copy.deepcopy(BASE)
    change(doc)
    return doc


def vm0(**values):
    return lambda d: d["vms"][0].update(values)


def many(d):
    d["vms"][0]["vmid"] = 42
    d["vms"][0]["memroy_mb"] = 4096
    d["vms"][1]["name"] = "-bad-"
    d["vms"][1]["user_config"]["password_hash"] = "hunter2"
    d["templates"][0]["image"]["checksum"] = "abc"


RSA_BODY_WITH_ED25519_TYPE = ED25519.replace("ssh-ed25519", "ssh-rsa", 1)
VARIANTS = {
    "vmid_out_of_range": vm0(vmid=50),
    "duplicate_vmid": lambda d: d["vms"][1].update(vmid=8000),
    "bad_hostname": vm0(name="docker_vm"),
    "unknown_template": vm0(clone_from_vmid=9000),
    "clone_from_vm": lambda d: d["vms"][1].update(clone_from_vmid=8001),
    "gateway_outside_subnet": vm0(network_config={"ip": "10.0.0.101/24", "gw": "10.1.0.1"}),
    "gateway_with_dhcp": vm0(network_config={"ip": "dhcp", "gw": "10.0.0.1"}),
    "ip_without_prefix": vm0(network_config={"ip": "10.0.0.101", "gw": "10.0.0.1"}),
    "plaintext_password": lambda d: d["vms"][0]["user_config"].update(password_hash="correct horse"),
    "placeholder_hash": lambda d: d["vms"][0]["user_config"].update(password_hash="$6$..."),
    "ssh_key_type_mismatch": lambda d: d["vms"][0]["user_config"].update(ssh_public_key=RSA_BODY_WITH_ED25519_TYPE),
    "ssh_key_placeholder": lambda d: d["vms"][0]["user_config"].update(ssh_public_key="ssh-ed25519 AAAA..."),
    "typo_key": vm0(memroy_mb=4096),
    "typo_top_level": lambda d: d.update(templtes=d.pop("templates")),
    "unknown_feature": vm0(features=["dockr"]),
    "string_number": vm0(cores="4"),
    "duplicate_address": lambda d: d["vms"][1].update(network_config={"ip": "10.0.0.101/24"}),
    "two_checksum_sources": lambda d: d["templates"][0]["image"].update(checksum="0" * 64),
    "customize_with_pve_delivery": lambda d: d["templates"][0].update(
        customize={"packages": ["htop"]}, image={**d["templates"][0]["image"], "delivery": "pve"}),
    "bad_snippets_backend": lambda d: d["vm_defaults"].update(snippets_backend="nfs"),
    "many_problems": many,
}


def main() -> None:
    out = Path(__file__).parent / "broken"
    out.mkdir(exist_ok=True)
    for name, change in VARIANTS.items():
        (out / f"{name}.json").write_text(json.dumps(variant(change), indent=2) + "\n")
    (out / "invalid_json.json").write_text('{\n  "vms": [\n    {"vmid": 8001,}\n  ]\n}\n')
    (out / "not_an_object.json").write_text("[1, 2, 3]\n")
    (out / "duplicate_json_key.json").write_text('{"vms": [], "vms": []}\n')
    legacy = {"vm_defaults": {"template": "ubuntu-24.04-standard", "cores": 4},
              "vms": [{"vmid": 8000, "name": "ubuntu-2404-cloud-template", "is_template": True},
                      {"vmid": 8001, "name": "docker-vm-01", "clone_from_vmid": 8000,
                       "user_config": {"username": "phoenix_user", "ssh_public_key": ED25519}},
                      {"vmid": 8002, "name": "no-source",
                       "user_config": {"username": "phoenix_user", "ssh_public_key": ED25519}}]}
    (out / "legacy_problems.json").write_text(json.dumps(legacy, indent=2) + "\n")


if __name__ == "__main__":
    main()
