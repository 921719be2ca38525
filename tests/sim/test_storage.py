"""Storage endpoints: config/status lists, content, allocation, download-url (real loopback HTTP), upload."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest
from proxmoxer import ResourceException

from phoenix.sim.model.images import synthetic_qcow2

from ._tasks import run

NODE = "pve"
IMAGE = synthetic_qcow2(2 << 30)


def log_text(px, upid: str) -> str:
    return "\n".join(line["t"] for line in px.nodes(NODE).tasks(upid).log.get(limit=500))


@pytest.fixture
def image_url():
    """A loopback HTTP server serving IMAGE at /noble.qcow2 (free port, stopped after the test)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's API
            if self.path != "/noble.qcow2":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/noble.qcow2"
    server.shutdown()
    server.server_close()


def test_storage_lists(proxmox):
    assert {s["storage"]: s["type"] for s in proxmox.storage.get()} == {
        "local": "dir", "local-lvm": "lvmthin", "shared-nfs": "nfs"}
    assert [s["storage"] for s in proxmox.storage.get(type="lvmthin")] == ["local-lvm"]
    node = {s["storage"]: s for s in proxmox.nodes(NODE).storage.get(content="snippets")}
    assert set(node) == {"local", "shared-nfs"} and node["shared-nfs"]["shared"] == 1
    status = proxmox.nodes(NODE).storage("local-lvm").status.get()
    assert status["type"] == "lvmthin" and status["total"] >= status["avail"] >= 0 and status["active"] == 1
    with pytest.raises(ResourceException) as info:
        proxmox.nodes(NODE).storage("nope").status.get()
    assert info.value.content == "storage 'nope' does not exist"


def test_download_url_fetches_loopback_and_verifies_checksum(proxmox, sim_server, image_url):
    good = hashlib.sha256(IMAGE).hexdigest()
    upid = proxmox.nodes(NODE).storage("local").post("download-url", url=image_url, content="import",
                                                    filename="noble.qcow2", checksum=good,
                                                    **{"checksum-algorithm": "sha256"})
    assert ":download:noble.qcow2:" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    assert "OK, checksum verified" in log_text(proxmox, upid)
    assert (sim_server.sim.storage_dir("local") / "import" / "noble.qcow2").read_bytes() == IMAGE
    [entry] = proxmox.nodes(NODE).storage("local").content.get(content="import")
    assert entry["volid"] == "local:import/noble.qcow2" and entry["size"] == len(IMAGE)
    upid = proxmox.nodes(NODE).storage("local").post("download-url", url=image_url, content="import",
                                                    filename="other.qcow2", checksum="0" * 64,
                                                    **{"checksum-algorithm": "sha256"})
    assert run(proxmox, upid)["exitstatus"] == f"checksum mismatch: got '{good}' != expect '{'0' * 64}'"
    assert not (sim_server.sim.storage_dir("local") / "import" / "other.qcow2").exists()


def test_download_url_elsewhere_is_simulated(proxmox, sim_server):
    upid = proxmox.nodes(NODE).storage("local").post(
        "download-url", url="https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
        content="iso", filename="noble-server-cloudimg-amd64.img")
    assert run(proxmox, upid)["exitstatus"] == "OK"
    assert "simulated" in log_text(proxmox, upid)
    path = sim_server.sim.storage_dir("local") / "template" / "iso" / "noble-server-cloudimg-amd64.img"
    assert path.read_bytes()[:4] == b"QFI\xfb"


@pytest.mark.parametrize("storage, content, filename, message, errors", [
    ("local-lvm", "iso", "x.iso", "can't upload to storage type 'lvmthin', not a file based storage!", None),
    ("shared-nfs", "vztmpl", "x.tar.zst", "storage 'shared-nfs' is not configured for content-type 'vztmpl'", None),
    ("local", "iso", "x.qcow2", "Parameter verification failed.", {"filename": "wrong file extension"}),
    ("local", "import", "noble.img", "Parameter verification failed.",
     {"filename": "invalid filename or wrong extension"}),
])
def test_download_url_checks(proxmox, storage, content, filename, message, errors):
    with pytest.raises(ResourceException) as info:
        proxmox.nodes(NODE).storage(storage).post("download-url", url="http://127.0.0.1:9/x", content=content,
                                                 filename=filename)
    assert info.value.content == message
    if errors:
        assert info.value.errors == errors


def test_upload_with_checksum(proxmox, sim_server, tmp_path):
    source = tmp_path / "seed.iso"
    source.write_bytes(b"ISO" * 100)
    with open(source, "rb") as handle:
        upid = proxmox.nodes(NODE).storage("local").upload.post(
            content="iso", filename=handle, checksum=hashlib.md5(b"ISO" * 100).hexdigest(),
            **{"checksum-algorithm": "md5"})
    assert ":imgcopy::" in upid and run(proxmox, upid)["exitstatus"] == "OK"
    assert (sim_server.sim.storage_dir("local") / "template" / "iso" / "seed.iso").read_bytes() == b"ISO" * 100
    with open(source, "rb") as handle:
        upid = proxmox.nodes(NODE).storage("local").upload.post(
            content="iso", filename=handle, checksum="0" * 32, **{"checksum-algorithm": "md5"})
    assert run(proxmox, upid)["exitstatus"].startswith("checksum mismatch: got ")


def test_content_alloc_info_delete(proxmox, sim_server):
    volid = proxmox.nodes(NODE).storage("local-lvm").content.post(vmid=120, filename="vm-120-disk-0", size="1G")
    assert volid == "local-lvm:vm-120-disk-0"
    info = proxmox.nodes(NODE).storage("local-lvm").content(volid).get()
    assert info["size"] == 1 << 30 and info["format"] == "raw"
    with pytest.raises(ResourceException) as err:
        proxmox.nodes(NODE).storage("local-lvm").content.post(vmid=120, filename="disk-x", size="1G")
    assert err.value.content == "illegal name 'disk-x' - should be 'vm-120-*'"
    assert run(proxmox, proxmox.nodes(NODE).storage("local-lvm").content(volid).delete())["exitstatus"] == "OK"
    assert proxmox.nodes(NODE).storage("local-lvm").content.get() == []
    snippets = sim_server.sim.storage_dir("local") / "snippets"
    (snippets / "u.yaml").write_text("#cloud-config\n")
    listed = proxmox.nodes(NODE).storage("local").content.get(content="snippets")
    assert [(e["volid"], e["format"]) for e in listed] == [("local:snippets/u.yaml", "snippet")]
    run(proxmox, proxmox.nodes(NODE).storage("local").content("local:snippets/u.yaml").delete())
    assert not (snippets / "u.yaml").exists()


def test_in_use_image_cannot_be_deleted(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, scsi0="local-lvm:1"))
    with pytest.raises(ResourceException) as info:
        proxmox.nodes(NODE).storage("local-lvm").content("local-lvm:vm-100-disk-0").delete()
    assert info.value.content == "Cannot remove image, a guest with VMID '100' exists!"


def test_local_storage_is_per_node(start_sim, proxmox_for, tmp_path):
    server = start_sim(tmp_path / "two", nodes=["pve", "pve2"])
    px = proxmox_for(server)
    (server.sim.storage_dir("local") / "snippets").mkdir(parents=True, exist_ok=True)
    (server.sim.storage_dir("local") / "snippets" / "only-on-pve.yaml").write_text("x")
    assert len(px.nodes("pve").storage("local").content.get(content="snippets")) == 1
    assert px.nodes("pve2").storage("local").content.get(content="snippets") == []
