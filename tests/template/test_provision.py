"""ensure_template against the simulator over real HTTPS, with the image served on 127.0.0.1."""

from __future__ import annotations

import pytest
import requests

from phoenix.desired.models import CustomizeSpec, ImageSpec
from phoenix.desired.spec import TemplateSpec
from phoenix.errors import PhoenixError
from phoenix.pve.client import TaskFailed
from phoenix.template.checksum import ChecksumError
from phoenix.template.provision import ensure_template
from phoenix.template.report import RecordingReporter

VMID = 9000
OWNER = "11111111-2222-3333-4444-555555555555"       # the lineage of the state these tests provision for


def make_spec(url: str, *, checksum: str | None = None, checksum_url: str | None = None, delivery: str = "local",
              vmid: int = VMID) -> TemplateSpec:
    image = ImageSpec(url=url, checksum=checksum, checksum_url=checksum_url, delivery=delivery)
    return TemplateSpec(vmid=vmid, name="ubuntu-noble", node=None, storage_pool="local-lvm", network_bridge="vmbr0",
                        cores=2, memory_mb=2048, image=image, customize=CustomizeSpec())


def sim_stats(server) -> dict:
    return requests.get(f"{server.endpoint}/_sim/stats", verify=str(server.ca_file), timeout=10).json()


def writes(stats: dict) -> int:
    return sum(n for key, n in stats["by_endpoint"].items() if key.split(" ", 1)[0] in ("POST", "PUT", "DELETE"))


def import_files(sim_server) -> list[str]:
    directory = sim_server.sim.model.storage_root("local", "pve") / "import"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def provision(client, spec, tmp_path, **kwargs):
    reporter = RecordingReporter()
    kwargs.setdefault("customize", False)            # the test image has no OS for virt-customize
    kwargs.setdefault("owner", OWNER)
    result = ensure_template(client, spec, cache_dir=tmp_path / "cache", reporter=reporter, **kwargs)
    return result, reporter


def test_provision_uploads_verified_image_and_makes_the_template(client, sim_server, image_server, tmp_path):
    spec = make_spec(image_server.url(image_server.image_path), checksum_url=image_server.url("/noble/SHA256SUMS"))
    result, reporter = provision(client, spec, tmp_path)
    assert (result.created, result.node, result.agent_baked) == (True, "pve", False)
    assert result.image_checksum == f"sha256:{image_server.digest}"
    config = client.get(f"/nodes/pve/qemu/{VMID}/config")
    assert config["template"] == 1 and config["name"] == "ubuntu-noble"
    assert config["scsi0"].startswith(f"local-lvm:base-{VMID}-disk-0")
    assert config["ide2"].startswith(f"local-lvm:vm-{VMID}-cloudinit") and "media=cdrom" in config["ide2"]
    assert (config["scsihw"], config["boot"], config["serial0"], config["vga"], config["ostype"]) == \
        ("virtio-scsi-pci", "order=scsi0", "socket", "serial0", "l26")
    assert config["agent"] in ("enabled=1", "1") and config["net0"].startswith("virtio=") and "bridge=vmbr0" in config["net0"]
    assert f"phoenix-image: sha256:{image_server.digest}" in config["description"]
    assert "phoenix-agent" not in str(config.get("tags", ""))
    assert import_files(sim_server) == [], "the staging image must be removed once imported"
    assert (tmp_path / "cache" / image_server.image_name).exists(), "the verified download stays cached"
    assert any("sha256 verified" in line for line in reporter.lines)
    assert any("cloud-init installs it" in line for line in reporter.lines)


def test_second_run_reports_existing_template_and_writes_nothing(client, sim_server, image_server, tmp_path):
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    provision(client, spec, tmp_path)
    requests.post(f"{sim_server.endpoint}/_sim/stats/reset", verify=str(sim_server.ca_file), timeout=10)
    result, reporter = provision(client, spec, tmp_path)
    assert result.created is False
    assert reporter.lines == [f"template {VMID} ('ubuntu-noble') already exists on node 'pve'; nothing to do"]
    assert writes(sim_stats(sim_server)) == 0


def test_pve_side_download_with_checksum(client, sim_server, image_server, tmp_path):
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest, delivery="pve")
    result, _ = provision(client, spec, tmp_path)
    assert result.created and result.agent_baked is False
    assert client.get(f"/nodes/pve/qemu/{VMID}/config")["template"] == 1
    assert import_files(sim_server) == []
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("delivery", ["local", "pve"])
def test_bad_checksum_is_clear_and_leaves_nothing_behind(client, sim_server, image_server, tmp_path, delivery):
    spec = make_spec(image_server.url(image_server.image_path), checksum="ab" * 32, delivery=delivery)
    with pytest.raises((ChecksumError, TaskFailed)) as err:
        provision(client, spec, tmp_path)
    assert "checksum" in str(err.value).lower() and "\n" not in str(err.value)
    assert client.get("/cluster/resources", type="vm") == []
    assert import_files(sim_server) == []
    cache = tmp_path / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_interrupted_download_resumes(client, image_server, small_qcow2, tmp_path):
    image_server.truncate_next = 1
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    result, reporter = provision(client, spec, tmp_path)
    assert result.created
    assert any(line.startswith(f"resuming {image_server.image_name} at byte ") for line in reporter.lines)
    assert [r for _, path, r in image_server.requests if path == image_server.image_path][1] == \
        f"bytes={len(small_qcow2) // 2}-"


def test_normal_vm_on_the_vmid_is_an_error(client, sim_server, proxmox, image_server, tmp_path):
    proxmox.nodes("pve").qemu.post(vmid=VMID, name="someone-else", memory=512)
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    requests.post(f"{sim_server.endpoint}/_sim/stats/reset", verify=str(sim_server.ca_file), timeout=10)
    with pytest.raises(PhoenixError, match=r"VM 9000 \('someone-else'\) on node 'pve' was not created by this "
                                           r"phoenix state .*phoenix import 9000"):
        provision(client, spec, tmp_path)
    assert writes(sim_stats(sim_server)) == 0


def test_failed_template_conversion_removes_the_half_made_vm_and_image(client, sim_server, image_server, tmp_path):
    requests.post(f"{sim_server.endpoint}/_sim/faults", verify=str(sim_server.ca_file), timeout=10,
                  json={"task_type": "qmtemplate", "count": 1, "message": "injected failure"})
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    with pytest.raises(TaskFailed, match="injected failure"):
        provision(client, spec, tmp_path)
    assert client.get("/cluster/resources", type="vm") == []
    assert import_files(sim_server) == []


def test_on_pve_host_places_the_image_into_the_storage_directory(client, sim_server, image_server, tmp_path):
    spec = make_spec(image_server.url(image_server.image_path), checksum=image_server.digest)
    stats_before = sim_stats(sim_server)["by_endpoint"]
    result, reporter = provision(client, spec, tmp_path, on_pve_host=True,
                                 storage_roots=lambda node, storage: sim_server.sim.model.storage_root(storage, node))
    assert result.created
    assert any("placed" in line and "on this host" in line for line in reporter.lines)
    uploads = "POST /nodes/{node}/storage/{storage}/upload"
    assert sim_stats(sim_server)["by_endpoint"].get(uploads, 0) == stats_before.get(uploads, 0)
    assert import_files(sim_server) == []
