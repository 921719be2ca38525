"""Templates: phoenix touches only what carries its marker, and an interrupted build heals on the next run.

Against the simulator over HTTPS.  Where a test needs what a *killed simulator* leaves behind (a
``lock: create`` placeholder whose task is gone), it writes that into the simulated cluster
directly — the crash sweep (tests/e2e/test_crash_sweep.py) produces the same by really killing it.
"""

from __future__ import annotations

import pytest
import requests

from phoenix.pve.locks import StaleLockError
from phoenix.pve.ownership import NotOwnedError, owner_of, owner_tag, with_marker
from phoenix.template.report import RecordingReporter
from phoenix.template.provision import ensure_template

from .test_provision import OWNER, VMID, import_files, make_spec, provision, sim_stats

OTHER = "99999999-8888-7777-6666-555555555555"


def _place_import_file(sim_server, name: str) -> None:
    directory = sim_server.sim.model.storage_root("local", "pve") / "import"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(b"QFI\xfb" + b"\0" * 60)


def test_the_template_carries_this_states_marker(client, image_server, tmp_path):
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    provision(client, spec, tmp_path)
    description = client.get(f"/nodes/pve/qemu/{VMID}/config")["description"]
    assert owner_of(description, VMID) == OWNER
    assert f"phoenix-image: sha256:{image_server.digest}" in description        # the template facts stay


def test_a_vm_created_by_someone_else_during_the_upload_is_never_deleted(client, proxmox, sim_server, image_server,
                                                                        tmp_path):
    """Issue 6: another client takes the VMID while phoenix uploads; phoenix stops, names the way out, and
    removes only its own staging image."""
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)

    def intruder(line: str) -> None:
        reporter.lines.append(line)
        if line.startswith("uploading "):
            proxmox.nodes("pve").qemu.post(vmid=VMID, name="someone-else", memory=512)

    reporter = RecordingReporter()
    reporter.info = intruder
    with pytest.raises(NotOwnedError, match=rf"VM {VMID} \('someone-else'\) on node 'pve' was not created by this "
                                            rf"phoenix state.*phoenix import {VMID}"):
        ensure_template(client, spec, owner=OWNER, cache_dir=tmp_path / "cache", reporter=reporter, customize=False)
    config = client.get(f"/nodes/pve/qemu/{VMID}/config")
    assert config["name"] == "someone-else" and not config.get("template")
    assert not any("removing half-made" in line for line in reporter.lines)
    assert import_files(sim_server) == []
    stats = sim_stats(sim_server)["by_endpoint"]
    assert stats.get("DELETE /nodes/{node}/qemu/{vmid}", 0) == 0
    assert stats["POST /nodes/{node}/qemu"] == 2                       # the intruder's, and phoenix's once


def test_another_states_template_is_not_claimed(client, image_server, tmp_path):
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    provision(client, spec, tmp_path, owner=OTHER)
    with pytest.raises(NotOwnedError, match=rf"belongs to another phoenix state \(lineage {OTHER}\)"):
        provision(client, spec, tmp_path)


def test_a_create_that_reached_pve_before_its_answer_was_lost_is_settled_not_resent(client, proxmox, sim_server,
                                                                                    image_server, tmp_path):
    """The VM is there with our marker when the create answers "already exists" (our own earlier
    request got through): phoenix reads it back and goes on to convert it."""
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)

    def earlier_request_landed(line: str) -> None:
        reporter.lines.append(line)
        if line.startswith("uploading "):
            proxmox.nodes("pve").qemu.post(vmid=VMID, name="ubuntu-noble", scsi0="local-lvm:1",
                                           description=with_marker("", OWNER, VMID))

    reporter = RecordingReporter()
    reporter.info = earlier_request_landed
    result = ensure_template(client, spec, owner=OWNER, cache_dir=tmp_path / "cache", reporter=reporter,
                             customize=False)
    assert result.created
    assert client.get(f"/nodes/pve/qemu/{VMID}/config")["template"] == 1
    assert any("the request did reach PVE; going on" in line for line in reporter.lines), reporter.lines
    assert import_files(sim_server) == []


def test_a_half_made_template_of_ours_is_finished(client, proxmox, sim_server, image_server, tmp_path):
    """Killed between create and conversion: the next run converts it (and removes its staging image)."""
    proxmox.nodes("pve").qemu.post(vmid=VMID, name="ubuntu-noble", scsi0="local-lvm:1",
                                   description=with_marker("Template built by phoenix", OWNER, VMID))
    staging = f"noble-server-cloudimg-amd64-{image_server.digest[:12]}-{VMID}-{owner_tag(OWNER)}.qcow2"
    _place_import_file(sim_server, staging)
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    result, reporter = provision(client, spec, tmp_path)
    assert result.created
    assert client.get(f"/nodes/pve/qemu/{VMID}/config")["template"] == 1
    assert any("converting it now" in line for line in reporter.lines)
    assert import_files(sim_server) == []


def test_a_half_made_vm_of_ours_without_its_disk_is_rebuilt(client, proxmox, image_server, tmp_path):
    proxmox.nodes("pve").qemu.post(vmid=VMID, name="ubuntu-noble", description=with_marker("", OWNER, VMID))
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    result, reporter = provision(client, spec, tmp_path)
    config = client.get(f"/nodes/pve/qemu/{VMID}/config")
    assert result.created and config["template"] == 1 and config["scsi0"].startswith(f"local-lvm:base-{VMID}")
    assert any("removing half-made VM" in line for line in reporter.lines)


def test_only_this_states_staging_leftovers_are_removed(client, sim_server, image_server, tmp_path):
    ours = f"noble-server-cloudimg-amd64-aaaaaaaaaaaa-{VMID}-{owner_tag(OWNER)}.qcow2"
    theirs = f"noble-server-cloudimg-amd64-aaaaaaaaaaaa-{VMID}-{owner_tag(OTHER)}.qcow2"
    users = "my-own-image.qcow2"
    for name in (ours, theirs, users):
        _place_import_file(sim_server, name)
    work = tmp_path / "cache" / f"work-{VMID}-{owner_tag(OWNER)}-abc123"
    other_work = tmp_path / "cache" / f"work-{VMID}-{owner_tag(OTHER)}-abc123"
    for directory in (work, other_work):
        directory.mkdir(parents=True)
        (directory / "half.qcow2").write_bytes(b"x")
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    result, reporter = provision(client, spec, tmp_path)
    assert result.created
    assert import_files(sim_server) == sorted([theirs, users])
    assert not work.exists() and other_work.exists()
    assert any(f"removing staging image local:import/{ours}" in line for line in reporter.lines)


def test_a_create_lock_whose_task_died_is_named_at_once(client, sim_server, image_server, tmp_path):
    """What a simulator killed during the create leaves: ``lock: create`` and no running task."""
    from phoenix.sim.model.vm import VM

    sim = sim_server.sim
    with sim.mutex:
        sim.model.vms[VMID] = VM(vmid=VMID, node="pve", conf={"lock": "create"})
        sim.save()
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    requests.post(f"{sim_server.endpoint}/_sim/stats/reset", verify=str(sim_server.ca_file), timeout=10)
    with pytest.raises(StaleLockError) as err:
        provision(client, spec, tmp_path)
    message = str(err.value)
    assert f"VM {VMID} is locked (create)" in message and "no qmcreate task runs on node 'pve'" in message
    assert f"qm unlock {VMID}" in message and "phoenix apply --unlock-stale" in message
    polls = sim_stats(sim_server)["by_endpoint"]["GET /nodes/{node}/qemu/{vmid}/config"]
    assert polls <= 3, f"named at the first sight of the lock, not after polling it ({polls} reads)"
    assert client.get(f"/nodes/pve/qemu/{VMID}/config")["lock"] == "create"       # nothing was touched


def test_clearing_a_stale_lock_needs_root_with_a_password(client, sim_server):
    from phoenix.errors import PhoenixError
    from phoenix.pve.client import PVEClient
    from phoenix.pve.locks import clear_stale_lock, lock_holder
    from phoenix.pve.settings import ConnectionSettings
    from phoenix.sim.model.vm import VM

    sim = sim_server.sim
    with sim.mutex:
        sim.model.vms[VMID] = VM(vmid=VMID, node="pve", conf={"lock": "create"})
        sim.save()
    holder = lock_holder(client, "pve", VMID, "create")
    assert holder.stale
    with pytest.raises(PhoenixError, match=rf"only for root@pam logged in with a password.*qm unlock {VMID}"):
        clear_stale_lock(client, holder)                      # the fixture's client uses an API token
    settings = ConnectionSettings.from_env({
        "PROXMOX_VE_ENDPOINT": sim_server.endpoint, "PROXMOX_VE_USERNAME": "root@pam",
        "PROXMOX_VE_PASSWORD": sim_server.root_password, "PROXMOX_VE_CA_FILE": str(sim_server.ca_file)})
    with PVEClient.connect(settings) as root:
        clear_stale_lock(root, holder)
    assert "lock" not in client.get(f"/nodes/pve/qemu/{VMID}/config")


def test_a_running_task_keeps_its_lock_live(client, proxmox, sim_server):
    from phoenix.pve.locks import lock_holder

    requests.post(f"{sim_server.endpoint}/_sim/faults", verify=str(sim_server.ca_file), timeout=10,
                  json={"latency_ms": 0})
    sim_server.sim.settings.task_scale = 2.0                   # the create task runs ~2 s
    try:
        upid = proxmox.nodes("pve").qemu.post(vmid=VMID, name="slow")
        holder = lock_holder(client, "pve", VMID, "create")
        assert holder.running and holder.upid == upid
    finally:
        sim_server.sim.settings.task_scale = 0.0
        sim_server.sim.tasks.wait_idle(30)
