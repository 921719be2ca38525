"""SHA-256 crypt (``$5$salt$hash``), what PVE's ``encrypt_pw`` stores for ``cipassword``.

Python's ``crypt`` module is deprecated (gone in 3.13), so the algorithm (Drepper's SHA-crypt,
default 5000 rounds) is implemented here; tests check it against the system's ``crypt``.
"""

from __future__ import annotations

import hashlib
import re
import secrets

__all__ = ["sha256_crypt", "encrypt_pw", "is_crypted"]

_B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ORDER = [(0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
          (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29)]
_CRYPTED_RE = re.compile(r"^\$(?:[156]|2[ay])(\$.+){2}")


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def sha256_crypt(password: str, salt: str) -> str:
    """``crypt(password, "$5$<salt>")`` with the default 5000 rounds."""
    pw, sl = password.encode(), salt.encode()[:16]
    alt = hashlib.sha256(pw + sl + pw).digest()
    ctx = hashlib.sha256(pw + sl)
    n = len(pw)
    while n > 32:
        ctx.update(alt)
        n -= 32
    ctx.update(alt[:n])
    n = len(pw)
    while n > 0:
        ctx.update(alt if n & 1 else pw)
        n >>= 1
    digest = ctx.digest()
    p_bytes = _repeat(hashlib.sha256(pw * len(pw)).digest(), len(pw))
    s_bytes = _repeat(hashlib.sha256(sl * (16 + digest[0])).digest(), len(sl))
    for rnd in range(5000):
        ctx = hashlib.sha256(p_bytes if rnd & 1 else digest)
        if rnd % 3:
            ctx.update(s_bytes)
        if rnd % 7:
            ctx.update(p_bytes)
        ctx.update(digest if rnd & 1 else p_bytes)
        digest = ctx.digest()
    out = []
    for b2, b1, b0 in _ORDER:
        word = (digest[b2] << 16) | (digest[b1] << 8) | digest[b0]
        out.extend(_B64[(word >> (6 * i)) & 0x3F] for i in range(4))
    word = (digest[31] << 8) | digest[30]
    out.extend(_B64[(word >> (6 * i)) & 0x3F] for i in range(3))
    return f"$5${sl.decode()}${''.join(out)}"


def is_crypted(value: str) -> bool:
    """PVE leaves values that already look like a crypt hash alone."""
    return bool(_CRYPTED_RE.match(value))


def encrypt_pw(password: str) -> str:
    """PVE::Tools::encrypt_pw: SHA-256 crypt with an 8-character salt."""
    salt = "".join(secrets.choice(_B64) for _ in range(8))
    return sha256_crypt(password, salt)
