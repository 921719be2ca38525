"""Image checksums: a literal digest or one line of a ``SHA256SUMS``-style file.

phoenix verifies every image it builds a template from (the shell tool it replaces did not).
The checksum is resolved once, before anything is downloaded, so a wrong or missing entry stops
the run early with a message that names the URL and the file it looked for.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from phoenix.errors import PhoenixError

__all__ = ["Checksum", "ChecksumError", "DIGEST_LENGTHS", "parse_literal", "parse_sums", "resolve_checksum",
           "is_loopback_url", "fetch_text"]

# hex digits per algorithm; the names are hashlib's and PVE's (``checksum-algorithm``)
DIGEST_LENGTHS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}

# GNU coreutils: "<hex>  <name>" or "<hex> *<name>" (binary mode)
_GNU_LINE = re.compile(r"^(?P<hex>[0-9A-Fa-f]+)\s+\*?(?P<name>.+?)\s*$")
# BSD/`shasum --tag`: "SHA256 (<name>) = <hex>"
_BSD_LINE = re.compile(r"^(?P<algo>[A-Za-z0-9\-]+)\s*\((?P<name>.+)\)\s*=\s*(?P<hex>[0-9A-Fa-f]+)\s*$")


class ChecksumError(PhoenixError):
    """A checksum that is malformed, missing from its sums file, or does not match the data."""


@dataclass(frozen=True)
class Checksum:
    """A digest to verify against: ``algorithm`` is a hashlib name, ``value`` lowercase hex."""

    algorithm: str
    value: str
    source: str = "literal"          # "literal" or the sums file's URL

    def new_hasher(self) -> "hashlib._Hash":
        return hashlib.new(self.algorithm)

    @property
    def label(self) -> str:
        """``sha256:<hex>`` — the form recorded on templates."""
        return f"{self.algorithm}:{self.value}"


def parse_literal(text: str, algorithm: str = "sha256", *, where: str = "image.checksum") -> Checksum:
    """``<hex>`` or ``<algorithm>:<hex>`` → :class:`Checksum`; the length must fit the algorithm."""
    raw = str(text).strip()
    algo = algorithm.lower()
    if ":" in raw:
        prefix, raw = raw.split(":", 1)
        algo = prefix.strip().lower()
    if algo not in DIGEST_LENGTHS:
        raise ChecksumError(f"{where}: unknown checksum algorithm '{algo}' (use one of {', '.join(DIGEST_LENGTHS)})")
    if not re.fullmatch(r"[0-9A-Fa-f]+", raw or "-"):
        raise ChecksumError(f"{where}: checksum must be hexadecimal, got {raw!r}")
    if len(raw) != DIGEST_LENGTHS[algo]:
        raise ChecksumError(f"{where}: a {algo} checksum has {DIGEST_LENGTHS[algo]} hex digits, got {len(raw)}")
    return Checksum(algo, raw.lower())


def parse_sums(text: str, filename: str, algorithm: str = "sha256") -> str | None:
    """The hex digest listed for ``filename`` in a sums file, or None if it has no such entry.

    Accepts GNU (``<hex>  name``, ``<hex> *name``) and BSD (``SHA256 (name) = <hex>``) lines;
    blank lines, comments and PGP armour lines are ignored.  Entries may carry a ``./`` prefix.
    """
    want = DIGEST_LENGTHS.get(algorithm.lower())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-----", "Hash:")):
            continue
        match = _BSD_LINE.match(line)
        if match and match["algo"].lower().replace("-", "") != algorithm.lower():
            continue
        match = match or _GNU_LINE.match(line)
        if not match:
            continue
        name = match["name"].strip()
        if name.startswith("./"):
            name = name[2:]
        if name == filename and (want is None or len(match["hex"]) == want):
            return match["hex"].lower()
    return None


def is_loopback_url(url: str) -> bool:
    """True for URLs served from this machine (127.0.0.0/8, ::1, localhost)."""
    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host == "::1" or host.startswith("127.")


def fetch_text(url: str, timeout: float = 30.0) -> str:
    """GET a small text file (a sums file); network errors become one-line PhoenixErrors."""
    import requests

    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise ChecksumError(f"cannot fetch checksum list {url}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise ChecksumError(f"cannot fetch checksum list {url}: HTTP {response.status_code}")
    return response.text


def resolve_checksum(image, *, fetch: Callable[[str], str] = fetch_text, where: str = "image") -> Checksum:
    """The checksum an ``ImageSpec`` declares: its literal ``checksum`` or its entry in ``checksum_url``."""
    algorithm = getattr(image, "checksum_algorithm", None) or "sha256"
    if getattr(image, "checksum", None):
        return parse_literal(image.checksum, algorithm, where=f"{where}.checksum")
    url = getattr(image, "checksum_url", None)
    if not url:
        raise ChecksumError(f"{where}: give checksum or checksum_url (phoenix verifies every image)")
    name = image_source_name(image)
    digest = parse_sums(fetch(url), name, algorithm)
    if digest is None:
        raise ChecksumError(f"{where}.checksum_url: {url} lists no {algorithm} checksum for '{name}'")
    return Checksum(algorithm, digest, source=url)


def image_source_name(image) -> str:
    """The file name the image has at its URL (what a sums file lists)."""
    return str(image.url).rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
