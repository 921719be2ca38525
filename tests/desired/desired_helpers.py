"""Shared helpers for the desired-state tests: real cloud-init checks and a small valid document."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
EXAMPLE = REPO / "desired" / "phoenix_vm_configs.json"
HASH = "$6$Phx3xampl$PluJTTI9u4rz.gQEtphO3az.Vi.sW8L1QBu8wZec1UT.VHo3zZ5XcEgT7aCVPqbT0Mr7LidS0DrDzbENiSGPE."
ED25519 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELyzZdGD+OekL+iD7dqozDfouKGBknYZxQ3AogwAjb/ "
           "phoenix-example@throwaway")
ED25519_2 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINW/2KEaSpAl4hWnwKIlFR8mIAwcPjr44FYkX2ItZaQO "
             "second@throwaway")
ECDSA = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFEd2poCTLSfsYSssFt0fNqImnqL3G"
         "Zv+PEoMwAWsJLFgtc++I+AauOdv8EGgsgR0sy4wETrMg2wx1bvzC25H/w= ec@throwaway")
CLOUD_INIT = shutil.which("cloud-init")
needs_cloud_init = pytest.mark.skipif(CLOUD_INIT is None, reason="cloud-init is not installed (apt install cloud-init)")


def cloud_init_schema(path: Path) -> subprocess.CompletedProcess:
    """``cloud-init schema --config-file`` on a user-data file."""
    return subprocess.run([CLOUD_INIT, "schema", "--config-file", str(path)], capture_output=True, text=True,
                          timeout=60)


def _cloud_init_python() -> str:
    first = Path(CLOUD_INIT).read_text(errors="replace").splitlines()[0]
    return first[2:].strip().split()[0] if first.startswith("#!") else sys.executable


def cloud_init_network_check(path: Path) -> subprocess.CompletedProcess:
    """Validate a network-config file with the installed cloud-init.

    Newer cloud-init has ``schema --schema-type network-config``; 22.x does not, so there the
    file goes through cloud-init's own strict network parser and netplan renderer.
    """
    helptext = subprocess.run([CLOUD_INIT, "schema", "--help"], capture_output=True, text=True).stdout
    if "--schema-type" in helptext:
        return subprocess.run([CLOUD_INIT, "schema", "--schema-type", "network-config", "--config-file", str(path)],
                              capture_output=True, text=True, timeout=60)
    return subprocess.run([_cloud_init_python(), str(HERE / "_netcheck.py"), str(path)],
                          capture_output=True, text=True, timeout=60)


def native_doc(**vm_overrides) -> dict:
    """A small valid native document; ``vm_overrides`` change its one VM."""
    vm = {"vmid": 8001, "name": "docker-vm-01", "clone_from_vmid": 8000, "features": ["docker"],
          "network_config": {"ip": "10.0.0.101/24", "gw": "10.0.0.1"},
          "user_config": {"username": "phoenix_user", "password_hash": HASH, "ssh_public_key": ED25519}}
    vm.update(vm_overrides)
    return {
        "vm_defaults": {"node": "pve", "nameservers": ["10.0.0.1"], "searchdomain": "lab.example.org"},
        "templates": [{"vmid": 8000, "name": "noble", "image": {
            "url": "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
            "checksum_url": "https://cloud-images.ubuntu.com/noble/current/SHA256SUMS"}}],
        "vms": [vm],
    }
