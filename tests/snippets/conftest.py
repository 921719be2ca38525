"""Fixtures for snippet tests: a PVEClient on the simulator and a real sshd on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest



@pytest.fixture
def sim_roots(sim_server):
    """Where the simulator really keeps a storage of a node (GET /storage says /var/lib/vz, like PVE)."""
    return lambda node, storage: sim_server.sim.model.storage_root(storage, node)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)
    return path


@pytest.fixture
def sshd(tmp_path):
    """A throwaway OpenSSH server on 127.0.0.1 (free port, own host key, key-only login as this user)."""
    binary = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if binary is None:
        pytest.skip("sshd is not installed (apt-get install openssh-server)")
    sftp_server = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                                    "/usr/lib/ssh/sftp-server") if os.path.exists(p)), None)
    if sftp_server is None:
        pytest.skip("OpenSSH's sftp-server is not installed")
    work = tmp_path / "sshd"
    work.mkdir()
    host_key = _keygen(work / "host_key")
    user_key = _keygen(work / "user_key")
    authorized = work / "authorized_keys"
    shutil.copy(str(user_key) + ".pub", authorized)
    authorized.chmod(0o600)
    port = _free_port()
    config = work / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {work / 'sshd.pid'}
AuthorizedKeysFile {authorized}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp {sftp_server}
""")
    os.makedirs("/run/sshd", exist_ok=True)       # privilege separation directory sshd insists on
    with open(work / "sshd.log", "wb") as log:
        proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {(work / 'sshd.log').read_text()}")
            time.sleep(0.05)
    known_hosts = work / "known_hosts"
    host_pub = (Path(str(host_key) + ".pub")).read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")

    class Info:
        pass

    info = Info()
    info.port, info.user_key, info.known_hosts, info.work = port, user_key, known_hosts, work
    info.username = os.environ.get("USER") or __import__("getpass").getuser()
    try:
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
