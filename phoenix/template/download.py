"""Stream a cloud image into the cache: resumable (HTTP Range), verified while streaming.

Memory stays constant whatever the image size: chunks go to the hasher and the ``.part`` file
together.  A ``.part`` left by an interrupted run is hashed first and the rest is requested
with ``Range``; a server that ignores the range (200 instead of 206) makes the download start
over.  Only a verified file is renamed to its final name, so a cached file is always good.

No fsync: a cached image is hashed again before every use, so a file an operating-system crash left
short or torn is found and fetched again, never used.  (A killed process loses nothing: its writes
are in the page cache.)  Forcing 1 GiB to disk made the download as slow as the disk — half of
curl's rate here — for a guarantee the checksum already gives.  For the same reason a ``.part``
from an earlier run that does not add up to the checksum is thrown away and fetched once more
from the start before the mismatch is reported.
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

if TYPE_CHECKING:
    from hashlib import _Hash as Hasher

import requests
import urllib3

from phoenix.errors import PhoenixError
from phoenix.template.checksum import Checksum, ChecksumError

__all__ = ["download_verified", "hash_file", "DownloadError"]

CHUNK = 1 << 20
SINK_DEPTH = 16          # blocks received but not yet written or hashed (each at most CHUNK)
ATTEMPTS = 4

Progress = Callable[[int, int | None], None]     # (bytes done, total or None)


class DownloadError(PhoenixError):
    """The image could not be fetched (after resuming as far as the server allowed)."""


def hash_file(path: Path, checksum: Checksum, hasher: "Hasher | None" = None) -> "Hasher":
    """Feed ``path`` into ``hasher`` (a new one for ``checksum`` if None) in chunks; return the hasher."""
    hasher = hasher if hasher is not None else checksum.new_hasher()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            hasher.update(block)
    return hasher


def download_verified(url: str, dest: Path, checksum: Checksum, *, progress: Progress | None = None,
                      session: requests.Session | None = None, timeout: float = 60.0,
                      on_resume: Callable[[int], None] | None = None) -> Path:
    """Make ``dest`` hold the image at ``url`` whose digest is ``checksum``; return ``dest``.

    A verified ``dest`` already in the cache is reused.  On a checksum mismatch the partial file
    is deleted and :class:`ChecksumError` is raised, naming the URL, the expected and the actual digest.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    directory = os.open(dest.parent, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)     # runs sharing a cache take turns (no lock file left)
        return _download_locked(url, dest, checksum, progress, session, timeout, on_resume)
    finally:
        os.close(directory)


def _download_locked(url, dest: Path, checksum: Checksum, progress, session, timeout, on_resume) -> Path:
    if dest.exists():
        if hash_file(dest, checksum).hexdigest() == checksum.value:
            return dest
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    session = session or requests.Session()
    earlier_part = part.exists() and part.stat().st_size > 0    # from a run that may have crashed
    while True:
        actual = _fetch_whole(url, part, checksum, session, timeout, progress, on_resume)
        if actual == checksum.value:
            break
        part.unlink(missing_ok=True)
        if not earlier_part:
            raise ChecksumError(f"checksum mismatch for {url}: expected {checksum.algorithm} {checksum.value}, "
                                f"got {actual} (the download was removed)")
        earlier_part = False                     # its bytes may be what a crash left: start over once
    os.replace(part, dest)
    return dest


def _fetch_whole(url: str, part: Path, checksum: Checksum, session: requests.Session, timeout: float,
                 progress: Progress | None, on_resume: Callable[[int], None] | None) -> str:
    """Fetch into ``part`` (resuming what is there) until complete; the hex digest of the whole part."""
    for _attempt in range(ATTEMPTS):
        hasher, complete = _fetch_into(url, part, checksum, session, timeout, progress, on_resume)
        if complete:
            return hasher.hexdigest()
    raise DownloadError(f"download of {url} kept breaking off after {ATTEMPTS} attempts; "
                        f"run again to resume from {part.stat().st_size if part.exists() else 0} bytes")


def _fetch_into(url: str, part: Path, checksum: Checksum, session: requests.Session, timeout: float,
                progress: Progress | None, on_resume: Callable[[int], None] | None):
    """One HTTP request appending to ``part``; returns (hasher over the whole part, finished?)."""
    have = part.stat().st_size if part.exists() else 0
    hasher = hash_file(part, checksum) if have else checksum.new_hasher()
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = session.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot download {url}: {type(exc).__name__}") from None
    with response:
        if have and response.status_code == 416:      # nothing left: the part may be complete
            return hasher, True
        if response.status_code not in (200, 206):
            raise DownloadError(f"cannot download {url}: HTTP {response.status_code} {response.reason}")
        if have and response.status_code == 206 and _range_start(response) != have:
            part.unlink()                               # answered another range: start clean next try
            return checksum.new_hasher(), False
        if have and response.status_code == 200:        # range ignored: start over
            have, hasher = 0, checksum.new_hasher()
        elif have and on_resume is not None:
            on_resume(have)
        total = _total_size(response, have)
        done = have
        broken = False
        with open(part, "ab" if have else "wb") as out:
            sink = _Sink(out, hasher)
            try:
                for block in _blocks(response):
                    sink.put(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                    requests.exceptions.Timeout, urllib3.exceptions.HTTPError):
                broken = True
            finally:
                sink.close()                    # every block received is written and hashed first
    if broken or (total is not None and done < total):
        return hasher, False
    return hasher, True


class _Sink:
    """Writes and hashes blocks in two threads of their own while the next block is being received.

    hashlib and file writes release the GIL, so receiving, hashing and writing overlap (done one
    after the other they cost 20-40 % of the throughput curl gets from the same server).  The
    queues are bounded: at most ``SINK_DEPTH`` blocks per consumer are in memory."""

    def __init__(self, out: BinaryIO, hasher: "Hasher"):
        self._error: BaseException | None = None
        self._queues: list[queue.Queue[bytes | None]] = []
        self._threads: list[threading.Thread] = []
        for name, consume in (("write", out.write), ("hash", hasher.update)):
            feed: queue.Queue[bytes | None] = queue.Queue(maxsize=SINK_DEPTH)
            thread = threading.Thread(target=self._run, args=(feed, consume), name=f"download-{name}", daemon=True)
            thread.start()
            self._queues.append(feed)
            self._threads.append(thread)

    def _run(self, feed: "queue.Queue[bytes | None]", consume: Callable[[bytes], object]) -> None:
        while (block := feed.get()) is not None:
            if self._error is None:
                try:
                    consume(block)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the receiving thread
                    self._error = exc

    def put(self, block: bytes) -> None:
        if self._error is not None:
            raise self._error
        for feed in self._queues:
            feed.put(block)

    def close(self) -> None:
        for feed in self._queues:
            feed.put(None)
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error


def _blocks(response: requests.Response):
    """Body blocks as they arrive (``read1``), so a broken-off answer loses no byte it delivered."""
    raw = response.raw
    if not hasattr(raw, "read1"):               # urllib3 < 2: whole chunks only
        yield from response.iter_content(CHUNK)
        return
    while True:
        block = raw.read1(CHUNK, decode_content=True)
        if not block:
            return
        yield block


def _range_start(response: requests.Response) -> int | None:
    """The first byte a 206 answer carries (``Content-Range: bytes <start>-<end>/<total>``)."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _total_size(response: requests.Response, offset: int) -> int | None:
    """Full image size from ``Content-Range`` (206) or ``Content-Length`` (200)."""
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        return None
    return int(length) + (offset if response.status_code == 206 else 0)
