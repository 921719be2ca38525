"""qm-template 0.6.0 (PyPI) in API mode, unchanged, against ``phoenix sim serve``: build a template from a local
image, twice (issue 10).  .ci/run installs it; skips (saying so) when absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phoenix.sim.model.images import synthetic_qcow2
from tests.conftest import proxmox_client

BINARY = shutil.which("qm-template", path=str(Path(sys.executable).parent)) or shutil.which("qm-template")
pytestmark = pytest.mark.skipif(BINARY is None, reason="qm-template is not installed (pip install qm-template==0.6.0; "
                                                       ".ci/run does)")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f ops@example"


def _config(server, tmp_path: Path) -> Path:
    host, _, port = server.endpoint[len("https://"):].rpartition(":")
    user_token, _, secret = server.api_token.partition("=")
    user, _, token = user_token.partition("!")
    images = tmp_path / "images"
    images.mkdir()
    (images / "debian-12-generic-amd64.qcow2").write_bytes(synthetic_qcow2(2 << 30))
    config = tmp_path / "config.toml"
    config.write_text(f"""
[paths]
images_dir = "{images}"

[cloudinit]
user = "debian"
sshkeys = ["{KEY}"]

[pve.sim]
host = "{host}"
port = {port}
node = "pve"
user = "{user}"
token_name = "{token}"
token_secret = "{secret}"
verify_ssl = true
import_storage = "local"
""")
    return config


def _qm_template(server, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(server.ca_file), "HOME": str(config.parent)}
    result = subprocess.run([BINARY, "-c", str(config), "-v", "create", *args, "--pve", "sim"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def test_build_a_template_from_a_local_image_twice(sim_server, tmp_path):
    config = _config(sim_server, tmp_path)
    _qm_template(sim_server, config, "debian", "--vm-id", "9000")
    _qm_template(sim_server, config, "debian")                        # next free id, same image
    px = proxmox_client(sim_server)
    templates = {vm["vmid"]: vm for vm in px.nodes("pve").qemu.get() if vm.get("template")}
    assert sorted(templates) == [9000, 9001]
    for vmid in templates:
        config_read = px.nodes("pve").qemu(vmid).config.get()
        assert config_read["template"] == 1 and "base-" in config_read[next(k for k in ("scsi0", "virtio0")
                                                                          if k in config_read)]
        assert config_read["ciuser"] == "debian" and "cloudinit" in "".join(str(v) for v in config_read.values())
