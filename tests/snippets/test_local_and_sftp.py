"""local and sftp snippet backends writing into the simulator's storage directory."""

from __future__ import annotations

import stat

import paramiko
import pytest

from phoenix.errors import PhoenixError
from phoenix.snippets import make_backend
from phoenix.snippets.base import user_snippet_name
from phoenix.snippets.local import LocalSnippets
from phoenix.snippets.sftp import SftpSnippets, SftpTarget

USER_DATA = b"#cloud-config\nhostname: web-1\npackages: [qemu-guest-agent]\n"


def test_local_put_read_remove_and_pve_sees_the_snippet(client, sim_roots, sim_server):
    backend = LocalSnippets(client, sim_roots)
    name = user_snippet_name(8001)
    assert backend.put("pve", "local", name, USER_DATA) == "local:snippets/phoenix-8001-user.yaml"
    path = sim_roots("pve", "local") / "snippets" / name
    assert path.read_bytes() == USER_DATA and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [name], "no temp file may be left"
    listed = client.get("/nodes/pve/storage/local/content", content="snippets")
    assert any(e["volid"] == "local:snippets/phoenix-8001-user.yaml" for e in listed)
    backend.put("pve", "local", name, b"#cloud-config\n{}\n")           # replaced atomically
    assert backend.read("pve", "local", name) == b"#cloud-config\n{}\n"
    backend.remove("pve", "local", name)
    backend.remove("pve", "local", name)                               # idempotent
    assert not backend.exists("pve", "local", name)


def test_local_put_and_remove_sweep_temp_files_an_interrupted_write_left(client, sim_roots, sim_server):
    backend = LocalSnippets(client, sim_roots)
    directory = sim_server.sim.model.storage_root("local", "pve") / "snippets"
    directory.mkdir(parents=True, exist_ok=True)
    leftover, other = directory / ".phoenix-8001-user.yaml.k2j3h4", directory / ".phoenix-8002-user.yaml.abcd"
    leftover.write_bytes(b"half")
    other.write_bytes(b"half")
    backend.put("pve", "local", "phoenix-8001-user.yaml", USER_DATA)
    assert not leftover.exists() and other.exists()        # only the temp files of the name being written
    backend.remove("pve", "local", "phoenix-8002-user.yaml")
    assert not other.exists()


def test_storage_without_snippets_content_names_the_fix(client, sim_roots):
    with pytest.raises(PhoenixError) as err:
        LocalSnippets(client, sim_roots).put("pve", "local-lvm", "x.yaml", USER_DATA)
    message = str(err.value)
    assert "storage 'local-lvm' on node 'pve' does not allow 'snippets' content" in message
    assert "pvesm set local-lvm --content images,rootdir,snippets" in message


def test_bad_names_and_backends_are_rejected(client, sim_roots):
    with pytest.raises(PhoenixError, match="plain file name"):
        LocalSnippets(client, sim_roots).put("pve", "local", "../escape.yaml", USER_DATA)
    with pytest.raises(PhoenixError, match="unknown backend 'ftp'"):
        make_backend("ftp", client)


def test_sftp_writes_into_the_storage_directory(client, sim_roots, sshd):
    target = SftpTarget("127.0.0.1", sshd.port, sshd.username, sshd.user_key, sshd.known_hosts)
    with SftpSnippets(client, target, sim_roots) as backend:
        name = user_snippet_name(8002)
        leftover = sim_roots("pve", "local") / "snippets" / f".{name}.0badf00d.tmp"   # an interrupted put's
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half")
        assert backend.put("pve", "local", name, USER_DATA) == f"local:snippets/{name}"
        path = sim_roots("pve", "local") / "snippets" / name
        assert path.read_bytes() == USER_DATA and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert backend.exists("pve", "local", name) and backend.read("pve", "local", name) == USER_DATA
        assert sorted(p.name for p in path.parent.iterdir()) == [name]
        backend.remove("pve", "local", name)
        backend.remove("pve", "local", name)
        assert not path.exists() and backend.read("pve", "local", name) is None


def test_sftp_refuses_an_unknown_host_and_says_how_to_add_it(client, sim_roots, sshd, tmp_path):
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    target = SftpTarget("127.0.0.1", sshd.port, sshd.username, sshd.user_key, empty)
    with pytest.raises(PhoenixError) as err:
        SftpSnippets(client, target, sim_roots).put("pve", "local", "x.yaml", USER_DATA)
    message = str(err.value)
    assert f"host [127.0.0.1]:{sshd.port} is not in {empty}" in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in message
    assert not (sim_roots("pve", "local") / "snippets" / "x.yaml").exists()


def test_sftp_refuses_a_changed_host_key(client, sim_roots, sshd, tmp_path):
    import subprocess

    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    kind, key = (tmp_path / "other.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    target = SftpTarget("127.0.0.1", sshd.port, sshd.username, sshd.user_key, wrong)
    with pytest.raises(PhoenixError, match="does not match"):
        SftpSnippets(client, target, sim_roots).put("pve", "local", "x.yaml", USER_DATA)


def test_sftp_file_is_0600_before_the_first_byte_is_written(client, sim_roots, sshd, monkeypatch):
    """The user-data holds a password hash: it must never sit in a file others can open (issue 14)."""
    modes: list[int] = []
    snippets = sim_roots("pve", "local") / "snippets"
    original = paramiko.SFTPFile.write

    def recording_write(self, data):   # a spy on paramiko, not on the PVE client: records, then writes
        modes.extend(stat.S_IMODE(p.stat().st_mode) for p in snippets.iterdir() if p.name.endswith(".tmp"))
        return original(self, data)

    monkeypatch.setattr(paramiko.SFTPFile, "write", recording_write)
    target = SftpTarget("127.0.0.1", sshd.port, sshd.username, sshd.user_key, sshd.known_hosts)
    with SftpSnippets(client, target, sim_roots) as backend:
        backend.put("pve", "local", user_snippet_name(8003), USER_DATA)
    assert modes and set(modes) == {0o600}
