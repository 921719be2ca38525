"""Connection settings for the PVE API, read from ``PROXMOX_VE_*`` environment variables.

The variable names are the ones the Terraform/OpenTofu Proxmox provider uses, so an existing
environment works unchanged.  Secrets are held as :class:`pydantic.SecretStr`, so neither
``repr`` nor a log line can show them, and every error names the variable, never its value.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from phoenix.errors import PhoenixError

__all__ = ["ConnectionSettings", "DEFAULT_PORT", "warn_insecure_once"]

DEFAULT_PORT = 8006

ENDPOINT = "PROXMOX_VE_ENDPOINT"
API_TOKEN = "PROXMOX_VE_API_TOKEN"
USERNAME = "PROXMOX_VE_USERNAME"
PASSWORD = "PROXMOX_VE_PASSWORD"
CA_FILE = "PROXMOX_VE_CA_FILE"
INSECURE = "PROXMOX_VE_INSECURE"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
# PVE: userid "<name>@<realm>", token id "[A-Za-z][A-Za-z0-9.\-_]+" (pve-access-control).
_USERID_RE = re.compile(r"[^\s:@/]+@[A-Za-z][A-Za-z0-9.\-_]*")  # used with fullmatch: "$" accepts a final "\n"
_TOKEN_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9.\-_]+")

_warned_lock = threading.Lock()
_warned = False


class ConnectionSettings(BaseModel):
    """Where and how to reach PVE.  Either a token (``token_*``) or ``username``/``password`` is set."""

    model_config = ConfigDict(frozen=True)

    host: str                      # "127.0.0.1", "pve.example", or "[::1]" for IPv6
    port: int = DEFAULT_PORT
    token_user: str | None = None  # "root@pam"
    token_name: str | None = None  # "phoenix"
    token_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    insecure: bool = False
    timeout: float = 30.0

    @property
    def endpoint(self) -> str:
        """``https://host:port`` (no path): what phoenix prints when it names the server."""
        return f"https://{self.host}:{self.port}"

    @property
    def uses_token(self) -> bool:
        return self.token_secret is not None

    @property
    def verify(self) -> bool | str:
        """The ``verify`` argument for requests: the CA file, the system store, or off."""
        if self.insecure:
            return False
        return str(self.ca_file) if self.ca_file else True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ConnectionSettings":
        """Read the ``PROXMOX_VE_*`` variables; a missing or malformed one is a PhoenixError naming it."""
        env = os.environ if env is None else env
        host, port = _parse_endpoint(env.get(ENDPOINT, ""))
        insecure = _parse_bool(INSECURE, env.get(INSECURE, ""))
        ca_file = _parse_ca_file(env.get(CA_FILE, ""))
        token = env.get(API_TOKEN, "").strip()
        if token:
            user, name, secret = _parse_token(token)
            return cls(host=host, port=port, token_user=user, token_name=name, token_secret=SecretStr(secret),
                       ca_file=ca_file, insecure=insecure)
        username = env.get(USERNAME, "").strip()
        password = env.get(PASSWORD, "")
        if not username and not password:
            raise PhoenixError(f"no credentials: set {API_TOKEN} (user@realm!tokenid=secret) "
                               f"or {USERNAME} and {PASSWORD}")
        if not username:
            raise PhoenixError(f"{USERNAME} is not set (needed with {PASSWORD})")
        if not password:
            raise PhoenixError(f"{PASSWORD} is not set (needed with {USERNAME})")
        if not _USERID_RE.fullmatch(username):
            raise PhoenixError(f"{USERNAME} must look like user@realm, e.g. root@pam")
        return cls(host=host, port=port, username=username, password=SecretStr(password),
                   ca_file=ca_file, insecure=insecure)


def _parse_endpoint(value: str) -> tuple[str, int]:
    """``https://host[:port][/path]`` → (host, port); the path (often ``/``) is ignored."""
    value = value.strip()
    if not value:
        raise PhoenixError(f"{ENDPOINT} is not set (e.g. https://pve.example:8006)")
    if "://" not in value:
        value = "https://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise PhoenixError(f"{ENDPOINT} is not a valid URL: {exc}") from None
    if parts.scheme.lower() != "https":
        raise PhoenixError(f"{ENDPOINT} must be an https:// URL (PVE's API only speaks HTTPS)")
    if not parts.hostname:
        raise PhoenixError(f"{ENDPOINT} has no host name")
    if parts.username or parts.password:
        raise PhoenixError(f"{ENDPOINT} must not carry credentials; use {API_TOKEN}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return host, port or DEFAULT_PORT


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise PhoenixError(f"{name} must be one of 1/0, true/false, yes/no, on/off")


def _parse_ca_file(value: str) -> Path | None:
    if not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    if not path.is_file():
        raise PhoenixError(f"{CA_FILE} does not name a readable file: {path}")
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise PhoenixError(f"{CA_FILE} cannot be read: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise PhoenixError(f"{CA_FILE} is not a PEM certificate file: {path}")
    return path


def _parse_token(token: str) -> tuple[str, str, str]:
    """``[PVEAPIToken=]user@realm!tokenid=secret`` → parts.  Messages never echo the token."""
    if token.startswith("PVEAPIToken="):
        token = token[len("PVEAPIToken="):]
    userid, bang, rest = token.partition("!")
    token_id, eq, secret = rest.partition("=")
    if not bang or not eq:
        raise PhoenixError(f"{API_TOKEN} must look like user@realm!tokenid=secret")
    if not _USERID_RE.fullmatch(userid):
        raise PhoenixError(f"{API_TOKEN}: the user part must look like user@realm, e.g. root@pam")
    if not _TOKEN_ID_RE.fullmatch(token_id):
        raise PhoenixError(f"{API_TOKEN}: the token id must start with a letter and use only A-Z a-z 0-9 . - _")
    if not secret.strip() or any(c.isspace() for c in secret):
        raise PhoenixError(f"{API_TOKEN}: the secret after '=' is empty or contains whitespace")
    return userid, token_id, secret


def warn_insecure_once(settings: ConnectionSettings) -> None:
    """TLS verification off is sometimes needed (self-signed lab hosts) but must never be silent."""
    global _warned
    if not settings.insecure:
        return
    with _warned_lock:
        if _warned:
            return
        _warned = True
    print(f"warning: {INSECURE} is on: the TLS certificate of {settings.endpoint} is not verified",
          file=sys.stderr)
