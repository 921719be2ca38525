"""Ticket, CSRF and API-token authentication as pve-http-server / pve-access-control do it.

Clients rely on the exact shapes: a ticket ``PVE:root@pam:<HEXTIME>::<signature>`` sent as the
``PVEAuthCookie`` cookie, a ``CSRFPreventionToken`` header on every non-GET ticket request, and
``Authorization: PVEAPIToken=root@pam!phoenix=<secret>`` for tokens (no CSRF).  Failures before
a handler runs are bare 401s with the reason only (``No ticket``, ``Authentication failed!``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from phoenix.sim.certs import TOKEN_ID, TOKEN_USER, Credentials, load_auth_key
from phoenix.sim.core import PVEError

__all__ = ["AuthFailure", "Authenticator", "Identity"]

TICKET_LIFETIME = 7200
CLOCK_SKEW = 300
ROOT_USER = "root@pam"
_TOKEN_RE = re.compile(r"^PVEAPIToken=(?P<user>[^!\s]+)!(?P<id>[^=\s]+)=(?P<secret>\S+)$")
_TICKET_RE = re.compile(r"^PVE:(?P<user>[^:\s]+):(?P<time>[0-9A-F]{8})::(?P<sig>[A-Za-z0-9+/=]+)$")


class AuthFailure(Exception):
    """A rejection from the auth handler: status + reason line, no JSON body."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    user: str           # "root@pam" or "root@pam!phoenix" for the token
    via_token: bool


class Authenticator:
    """Issues and checks tickets, CSRF tokens and the one API token of the simulator."""

    def __init__(self, credentials: Credentials):
        self._credentials = credentials
        self._key = load_auth_key(credentials.auth_key_file)

    # --- tickets ---------------------------------------------------------------------------------
    def _sign(self, plain: str) -> str:
        signature = self._key.sign(plain.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def create_ticket(self, user: str, now: float | None = None) -> str:
        plain = f"PVE:{user}:{int(now if now is not None else time.time()):08X}"
        return f"{plain}::{self._sign(plain)}"

    def verify_ticket(self, ticket: str) -> str | None:
        """The user of a valid, unexpired ticket, else None."""
        match = _TICKET_RE.match(ticket or "")
        if not match:
            return None
        plain = f"PVE:{match.group('user')}:{match.group('time')}"
        try:
            self._key.public_key().verify(base64.b64decode(match.group("sig")), plain.encode(),
                                          padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return None
        age = time.time() - int(match.group("time"), 16)
        if age < -CLOCK_SKEW or age > TICKET_LIFETIME:
            return None
        return match.group("user")

    def create_csrf(self, user: str, now: float | None = None) -> str:
        stamp = f"{int(now if now is not None else time.time()):08X}"
        return f"{stamp}:{self._csrf_digest(stamp, user)}"

    def _csrf_digest(self, stamp: str, user: str) -> str:
        digest = hmac.new(self._credentials.csrf_secret.encode(), f"{stamp}:{user}".encode(), hashlib.sha256)
        return base64.b64encode(digest.digest()).decode().rstrip("=")

    def verify_csrf(self, token: str | None, user: str) -> bool:
        stamp, sep, digest = (token or "").partition(":")
        if not sep or not re.fullmatch(r"[0-9A-F]{8}", stamp):
            return False
        if not hmac.compare_digest(digest, self._csrf_digest(stamp, user)):
            return False
        age = time.time() - int(stamp, 16)
        return -CLOCK_SKEW <= age <= TICKET_LIFETIME

    # --- login -----------------------------------------------------------------------------------
    def login(self, username: str, password: str, realm: str | None = None) -> dict:
        """``POST /access/ticket``: a new ticket for root@pam (or a renewal with a valid ticket as password)."""
        user = username if "@" in username else f"{username}@{realm or 'pam'}"
        password_ok = user == ROOT_USER and secrets.compare_digest(password, self._credentials.root_password)
        renewal_ok = self.verify_ticket(password) == user
        if not (password_ok or renewal_ok):
            raise PVEError("authentication failure\n", status=401)
        return {
            "username": user,
            "ticket": self.create_ticket(user),
            "CSRFPreventionToken": self.create_csrf(user),
            "cap": {
                "vms": {p: 1 for p in ("VM.Allocate", "VM.Audit", "VM.Clone", "VM.Config.Cloudinit",
                                       "VM.Config.Disk", "VM.Config.Options", "VM.PowerMgmt")},
                "storage": {p: 1 for p in ("Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.Audit")},
                "nodes": {p: 1 for p in ("Sys.Audit", "Sys.Modify")},
                "access": {"User.Modify": 1}, "dc": {"Sys.Audit": 1}, "sdn": {"SDN.Use": 1},
            },
        }

    # --- per request -----------------------------------------------------------------------------
    def authenticate(self, method: str, headers, allowtoken: bool, rel_uri: str) -> Identity:
        """Identify the caller of an API request or raise :class:`AuthFailure` / a 403 PVEError."""
        authorization = headers.get("Authorization", "") or ""
        if authorization.startswith("PVEAPIToken="):
            identity = self._token_identity(authorization)
            if not allowtoken:
                raise PVEError(f"Permission check failed (URI '{rel_uri}' not available with API token, "
                               "need proper ticket.\n)", status=403)
            return identity
        ticket = self._ticket_from(headers, authorization)
        if not ticket:
            raise AuthFailure(401, "No ticket")
        user = self.verify_ticket(ticket)
        if user is None:
            raise AuthFailure(401, "Authentication failed!")
        if method != "GET" and not self.verify_csrf(headers.get("CSRFPreventionToken"), user):
            raise AuthFailure(401, "Permission denied - invalid csrf token")
        return Identity(user, via_token=False)

    def _token_identity(self, authorization: str) -> Identity:
        match = _TOKEN_RE.match(authorization.strip())
        if (not match or match.group("user") != TOKEN_USER or match.group("id") != TOKEN_ID
                or not secrets.compare_digest(match.group("secret"), self._credentials.token_secret)):
            raise AuthFailure(401, "Authentication failed!")
        return Identity(f"{TOKEN_USER}!{TOKEN_ID}", via_token=True)

    @staticmethod
    def _ticket_from(headers, authorization: str) -> str | None:
        if authorization.startswith("PVEAuthCookie="):
            return unquote(authorization[len("PVEAuthCookie="):].strip())
        raw_cookie = headers.get("Cookie")
        if not raw_cookie:
            return None
        cookie = SimpleCookie()
        try:
            cookie.load(raw_cookie)
        except Exception:  # malformed cookie header: treat as no ticket, like a missing one
            return None
        morsel = cookie.get("PVEAuthCookie")
        return unquote(morsel.value) if morsel else None
