"""The plan reports a template whose image moved on upstream as outdated — and never rebuilds it.

Also the path where the image is fetched by PVE itself (``delivery: pve``, no customisation): the
guest agent then comes from cloud-init, and the apply still waits for it and converges."""

from __future__ import annotations

import hashlib
import json


def use_served_image(image_server):
    def edit(data):
        template = data["templates"][0]
        template["image"] = {"url": image_server.url(image_server.image_path),
                             "checksum_url": image_server.url("/noble/SHA256SUMS"),
                             "checksum_algorithm": "sha256", "delivery": "pve"}
        template.pop("customize", None)
    return edit


def test_outdated_template_is_reported_not_rebuilt(sim_server, proxmox, image_server, phoenix_cli_for):
    cli = phoenix_cli_for(sim_server, use_served_image(image_server))
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "cloud-init installs it" in result.output          # agent not baked: user-data installs it
    assert "phoenix-agent" not in proxmox.nodes("pve").qemu(8000).config.get().get("tags", "")
    assert cli("plan", "--detailed-exitcode").exit_code == 0

    # Upstream publishes a new image: the sums file now names another checksum.
    new_digest = hashlib.sha256(b"a newer noble image").hexdigest()
    image_server.files["/noble/SHA256SUMS"] = f"{new_digest} *{image_server.image_name}\n".encode()
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output                # a warning, not a change
    assert "template.8000 is outdated" in result.output and new_digest in result.output
    as_json = json.loads(cli("plan", "--json").output)
    assert any("outdated" in w for w in as_json["warnings"])
    before = proxmox.nodes("pve").qemu(8000).config.get()["digest"]
    assert cli("apply", "--auto-approve").exit_code == 0
    assert proxmox.nodes("pve").qemu(8000).config.get()["digest"] == before
