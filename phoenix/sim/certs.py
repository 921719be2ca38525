"""TLS material and credentials of a simulator data dir, created once and then reused.

Clients verify the simulator like a real node: a private CA signs the server certificate
(SANs 127.0.0.1, ::1, localhost), and the CA file is what ``PROXMOX_VE_CA_FILE`` points at.
The root password, API-token secret and ticket-signing keys live beside it with mode 0600, so a
restarted simulator accepts the tokens and tickets it handed out before.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from phoenix.sim.persist import atomic_write_text

__all__ = ["TLSFiles", "Credentials", "ensure_tls", "ensure_credentials", "load_auth_key"]

TOKEN_USER = "root@pam"
TOKEN_ID = "phoenix"


@dataclass(frozen=True)
class TLSFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Credentials:
    root_password: str
    token_secret: str
    csrf_secret: str
    auth_key_file: Path

    @property
    def token_userid(self) -> str:
        return f"{TOKEN_USER}!{TOKEN_ID}"

    @property
    def api_token(self) -> str:
        """``root@pam!phoenix=<uuid>`` — the PVEAPIToken form without its prefix."""
        return f"{self.token_userid}={self.token_secret}"


def _pem_key(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "phoenix PVE simulator"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ensure_tls(data_dir: Path) -> TLSFiles:
    """Create the CA and server certificate in ``data_dir/tls`` unless they exist."""
    tls_dir = Path(data_dir) / "tls"
    files = TLSFiles(tls_dir / "ca.pem", tls_dir / "server.pem", tls_dir / "server-key.pem")
    if files.ca_file.exists() and files.cert_file.exists() and files.key_file.exists():
        return files
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("phoenix simulator CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]
    server_cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_name)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    atomic_write_text(tls_dir / "ca-key.pem", _pem_key(ca_key))
    atomic_write_text(files.key_file, _pem_key(server_key))
    atomic_write_text(files.cert_file, server_cert.public_bytes(serialization.Encoding.PEM).decode())
    atomic_write_text(files.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM).decode(), mode=0o644)
    return files


def ensure_credentials(data_dir: Path) -> Credentials:
    """Generate the root password, token secret, CSRF secret and ticket key once (mode 0600)."""
    data_dir = Path(data_dir)
    cred_file = data_dir / "credentials.json"
    key_file = data_dir / "authkey.pem"
    if not key_file.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        atomic_write_text(key_file, _pem_key(key))
    if cred_file.exists():
        stored = json.loads(cred_file.read_text())
    else:
        stored = {"root_password": secrets.token_urlsafe(18), "token_secret": str(uuid.uuid4()),
                  "csrf_secret": secrets.token_hex(32)}
        atomic_write_text(cred_file, json.dumps(stored, indent=1) + "\n")
    return Credentials(stored["root_password"], stored["token_secret"], stored["csrf_secret"], key_file)


def load_auth_key(path: Path) -> rsa.RSAPrivateKey:
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
