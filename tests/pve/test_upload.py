"""Streaming uploads: phoenix's multipart body over real HTTPS into the simulator, which streams
it to disk; progress as bytes leave; PVE's errors for malformed uploads; progress lines."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenix.errors import PhoenixError
from phoenix.pve.client import PVEClient
from phoenix.pve.upload import BLOCK, upload_file
from phoenix.template.report import Reporter


def _random_file(path, size):
    path.write_bytes(os.urandom(size))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("ticket", [False, True])
def test_upload_streams_the_file_with_progress_and_pve_checks_the_checksum(sim_server, token_settings, tmp_path,
                                                                           ticket):
    login = {"PROXMOX_VE_API_TOKEN": None, "PROXMOX_VE_USERNAME": "root@pam",
             "PROXMOX_VE_PASSWORD": sim_server.root_password} if ticket else {}
    client = PVEClient.connect(token_settings(sim_server, **login))
    source = tmp_path / "image.qcow2"
    size = 5 * BLOCK + 12345
    digest = _random_file(source, size)
    seen: list[tuple[int, int | None]] = []
    status = upload_file(client, "pve", "local", source, "noble.qcow2",
                         {"content": "import", "checksum-algorithm": "sha256", "checksum": digest},
                         progress=lambda done, total: seen.append((done, total)))
    assert status["exitstatus"] == "OK"
    stored = sim_server.sim.storage_dir("local") / "import" / "noble.qcow2"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    body_size = seen[-1][1]
    assert seen[-1][0] == body_size and body_size > size           # the multipart body, size known up front
    assert len(seen) <= body_size // BLOCK + 2                      # reported per block, not per 8 KiB
    assert not list((sim_server.sim.data_dir / "tmp").iterdir())    # the temp file was taken, not left


def test_a_wrong_checksum_fails_the_task(client, sim_server, tmp_path):
    source = tmp_path / "image.qcow2"
    _random_file(source, 3 * BLOCK)
    with pytest.raises(PhoenixError, match="checksum mismatch"):
        upload_file(client, "pve", "local", source, "bad.qcow2",
                    {"content": "import", "checksum-algorithm": "sha256", "checksum": "0" * 64})
    assert not (sim_server.sim.storage_dir("local") / "import" / "bad.qcow2").exists()


def _raw_upload(server, body: bytes, content_length: int, boundary: str = "XyZ") -> bytes:
    """Send an upload by hand (a truncated body cannot be sent with requests)."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            head = (f"POST /api2/json/nodes/pve/storage/local/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: PVEAPIToken={server.api_token}\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                    f"Content-Length: {content_length}\r\n\r\n").encode()
            tls.sendall(head + body)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            return answer


def test_a_body_that_ends_before_the_closing_boundary_is_upload_failed(sim_server):
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\niso\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"x.iso\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + b"\0" * 1000)
    answer = _raw_upload(sim_server, body, len(body))      # complete as sent, but no closing boundary
    assert answer.startswith(b"HTTP/1.1 500 upload failed"), answer[:200]
    assert not list((sim_server.sim.data_dir / "tmp").iterdir())


def test_the_file_part_must_be_named_filename(sim_server):
    files = {"image": ("x.iso", b"\0" * 10)}
    response = requests.post(f"{sim_server.endpoint}/api2/json/nodes/pve/storage/local/upload",
                             data={"content": "iso"}, files=files,
                             headers={"Authorization": f"PVEAPIToken={sim_server.api_token}"},
                             verify=str(sim_server.ca_file), timeout=30)
    assert response.status_code == 500
    assert response.json()["message"] == "wrong field name 'image' for file upload, expected 'filename'\n"
    assert response.headers["Connection"] == "close"        # PVE turns keep-alive off for uploads


def test_progress_without_a_terminal_is_a_line_every_ten_percent():
    lines: list[str] = []
    advance_cm = Reporter(lines.append).progress("uploading x.qcow2")
    with advance_cm as advance:
        total = 1000 * BLOCK
        for done in range(0, total + 1, BLOCK):
            advance(done, total)
    assert len(lines) == 10
    assert lines[0].startswith("uploading x.qcow2: 10% of 1000.0 MiB, ") and "MiB/s" in lines[0]
    assert lines[-1].startswith("uploading x.qcow2: 100% of 1000.0 MiB")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["content", "checksum", "checksum-algorithm", "x-extra"]),
                          st.text(max_size=20)), max_size=4, unique_by=lambda kv: kv[0]),
       st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
       st.binary(max_size=3 * 1024))
def test_the_streamed_body_is_what_requests_toolbelt_writes(tmp_path_factory, fields, filename, content):
    """The framing around the streamed file equals MultipartEncoder's (the library it replaced for speed)."""
    from requests_toolbelt import MultipartEncoder

    from phoenix.pve.upload import _Body, multipart_framing

    path = tmp_path_factory.mktemp("body") / "file"
    path.write_bytes(content)
    boundary = "0123456789abcdef0123456789abcdef"
    head, tail = multipart_framing(fields, filename, boundary)
    with open(path, "rb") as handle:
        expected = MultipartEncoder([*fields, ("filename", (filename, handle, "application/octet-stream"))],
                                    boundary=boundary).to_string()
    with open(path, "rb") as handle:
        body = _Body(head, handle, len(content), tail, None)
        chunks = iter(lambda: body.read(1000), b"")
        streamed = b"".join(chunks)
    assert streamed == expected and body.len == len(expected)


def test_a_file_that_shrinks_while_uploading_is_an_error_not_a_short_body(tmp_path):
    from phoenix.pve.upload import _Body

    path = tmp_path / "file"
    path.write_bytes(b"x" * 100)
    with open(path, "rb") as handle:
        body = _Body(b"head", handle, 200, b"tail", None)          # the size seen before it shrank
        assert body.read() == b"head" and body.read() == b"x" * 100
        with pytest.raises(OSError, match="ended early"):
            body.read()
