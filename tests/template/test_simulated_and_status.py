"""Simulator mode (offline, visible stand-ins) and template_status (outdated detection)."""

from __future__ import annotations

import hashlib

from phoenix.template.provision import ensure_template
from phoenix.template.report import RecordingReporter
from phoenix.template.simulated import OfflineStandIns
from phoenix.template.status import parse_marker, render_marker, template_status
from phoenix.template.checksum import Checksum

from .test_provision import OWNER, VMID, import_files, make_spec, provision  # noqa: F401 - fixture reuse

UBUNTU = "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"
SUMS = "https://cloud-images.ubuntu.com/noble/current/SHA256SUMS"


def test_offline_simulated_local_flow_is_visible_and_bakes_the_agent_mark(client, sim_server, tmp_path):
    reporter = RecordingReporter()
    result = ensure_template(client, make_spec(UBUNTU, checksum_url=SUMS), cache_dir=tmp_path / "cache",
                             reporter=reporter, stand_ins=OfflineStandIns(), owner=OWNER)
    assert result.created and result.agent_baked is True and result.image_checksum is None
    simulated = [line for line in reporter.lines if line.startswith("simulated: ")]
    assert any(SUMS in line for line in simulated)
    assert any(UBUNTU in line and "stand" in line for line in simulated)
    assert any("virt-customize" in line and "--install qemu-guest-agent" in line for line in simulated)
    assert result.simulated == [line[len("simulated: "):] for line in simulated]
    config = client.get(f"/nodes/pve/qemu/{VMID}/config")
    assert config["template"] == 1 and "phoenix-agent" in config["tags"]
    volume = next(v for v in sim_server.sim.model.volumes.values() if v.vmid == VMID and v.name.startswith("base-"))
    assert volume.agent_installed, "clones of the simulated template must get a working guest agent"
    assert import_files(sim_server) == []


def test_offline_simulated_pve_download_surfaces_the_simulators_log_line(client, tmp_path):
    reporter = RecordingReporter()
    spec = make_spec(UBUNTU, checksum="ab" * 32, delivery="pve")
    result = ensure_template(client, spec, cache_dir=tmp_path / "cache", reporter=reporter,
                             stand_ins=OfflineStandIns(), owner=OWNER)
    assert result.created and result.agent_baked is False
    assert any(line.startswith("simulated: download") for line in reporter.lines), reporter.lines


def test_marker_round_trip():
    checksum = Checksum("sha256", "a" * 64)
    marker = parse_marker("user notes\n" + render_marker(checksum, UBUNTU))
    assert (marker.checksum, marker.url) == (f"sha256:{'a' * 64}", UBUNTU)
    assert parse_marker("just a description") is None and parse_marker(None) is None


def test_status_up_to_date_then_outdated_when_upstream_checksum_changes(client, image_server, tmp_path):
    sums_url = image_server.url("/noble/SHA256SUMS")
    spec = make_spec(image_server.url(image_server.image_path), checksum_url=sums_url)
    assert template_status(client, spec).exists is False
    provision(client, spec, tmp_path)
    status = template_status(client, spec)
    assert (status.exists, status.is_template, status.outdated) == (True, True, False), status.reason
    new_digest = hashlib.sha256(b"a newer image").hexdigest()
    image_server.files["/noble/SHA256SUMS"] = f"{new_digest} *{image_server.image_name}\n".encode()
    status = template_status(client, spec)
    assert status.outdated and new_digest in status.reason and image_server.digest in status.reason
    offline = template_status(client, spec, fetch=None)
    assert not offline.outdated and "not checked" in offline.reason
    literal = template_status(client, make_spec(spec.image.url, checksum=new_digest))
    assert literal.outdated


def test_status_of_a_normal_vm(client, proxmox, image_server):
    proxmox.nodes("pve").qemu.post(vmid=VMID, name="plain")
    status = template_status(client, make_spec(image_server.url(image_server.image_path), checksum="a" * 64))
    assert (status.exists, status.is_template, status.outdated) == (True, False, False)
    assert "is not a template" in status.reason
