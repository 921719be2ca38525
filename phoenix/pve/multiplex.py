"""Many GETs from one thread: a plan's config reads over non-blocking TLS connections.

A plan reads one config per VM, 10,000 GETs for a 10,000-VM fleet.  With a thread per concurrent
read (``http.client`` only blocks) each read cost the client ~380 µs of CPU at 16-64 readers, more
than half of it threads trading the interpreter lock and futures.  Here one thread drives up to
``width`` kept-alive connections with :mod:`selectors`, and httptools (llhttp, the parser uvicorn
uses) reads the answers: ~150 µs per read, measured against the simulator.  Answers are yielded as
they complete, so the caller can work on one while PVE prepares the next.

The contract is :class:`phoenix.pve.direct.DirectCalls`'s: the same request bytes (its headers,
as ``http.client`` sends them), each answer whole within ``timeout`` seconds of being asked
(connect and handshake included for a new connection), at most 64 MiB, no encoding phoenix did not
ask for, TLS verified against the same context with the host name checked, redirects returned
as answers (never followed).  Failures come out as requests' exception types, as the retry policy
expects; the caller retries them.  Connections are taken from and given back to the
``DirectCalls``'s idle pool.
"""

from __future__ import annotations

import errno
import http.client
import os
import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import httptools
import requests

from phoenix.pve.answer import MAX_ANSWER_BYTES, PVEAnswerError, too_large
from phoenix.pve.deadline import AnswerDeadline
from phoenix.pve.retry import NotConnected

__all__ = ["Answer", "read_many", "as_requests_error"]

Answer = tuple[int, str, str, bytes]          # status, reason, Location, body: what DirectCalls.call returns
_MAX_HEAD = 64 * 1024                          # http.client's limit for one header line; here the whole block
_CONNECTING, _HANDSHAKE, _SENDING, _RECEIVING, _IDLE = range(5)


class _Reading:
    """httptools' callbacks for one answer: status, the headers phoenix uses, the body (capped)."""

    __slots__ = ("where", "parser", "status", "reason", "location", "encoding", "chunks", "size", "head_size", "headers_done",
                 "complete", "keep_alive", "has_length", "chunked")

    def __init__(self, where: str):
        self.where = where
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.reason = ""
        self.location = ""
        self.encoding = "identity"
        self.chunks: list[bytes] = []
        self.size = 0
        self.head_size = 0
        self.headers_done = self.complete = self.has_length = self.chunked = False
        self.keep_alive = False

    def on_status(self, reason: bytes) -> None:
        if not self.complete:
            self.reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete:               # a second answer after this one: not ours (see on_message_begin)
            return
        key = name.lower()
        if key == b"location":
            self.location = value.decode("latin-1")
        elif key == b"content-encoding":
            self.encoding = value.decode("latin-1").strip().lower()
        elif key == b"content-length":
            self.has_length = True
            if value.strip().isdigit() and int(value) > MAX_ANSWER_BYTES:
                raise too_large(self.where, int(value))
        elif key == b"transfer-encoding":
            self.chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        self.status = self.parser.get_status_code()     # this answer's (the parser moves on to any next one)
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()
        if self.encoding != "identity":
            raise PVEAnswerError(f"{self.where}: the answer is {self.encoding[:40]!r}-encoded, though phoenix asked "
                                 "for no encoding")

    def on_body(self, chunk: bytes) -> None:
        if self.complete:
            return
        self.size += len(chunk)
        if self.size > MAX_ANSWER_BYTES:
            raise too_large(self.where)
        self.chunks.append(chunk)

    def on_message_complete(self) -> None:
        self.complete = True

    def on_message_begin(self) -> None:
        if self.complete:             # bytes after the answer: ignored, and the connection is not reused
            self.keep_alive = False

    def feed(self, data: bytes) -> None:
        if not self.headers_done:
            self.head_size += len(data)
            if self.head_size > _MAX_HEAD + 1024:
                raise requests.exceptions.ConnectionError(f"{self.where}: the answer's header block is over 64 KiB")
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            raise cause if isinstance(cause, Exception) else exc from None
        except httptools.HttpParserError as exc:
            raise requests.exceptions.ConnectionError(f"{self.where}: malformed HTTP answer ({exc})") from None

    def at_eof(self) -> bool:
        """The server closed the connection: an answer without length or chunking ends here."""
        if self.headers_done and not self.complete and not self.has_length and not self.chunked:
            self.complete, self.keep_alive = True, False
        return self.complete

    def answer(self) -> Answer:
        return self.status, self.reason, self.location, b"".join(self.chunks)


class _Lane:
    """One connection and the request it is carrying."""

    __slots__ = ("sock", "stage", "index", "asked", "deadline", "out", "reading", "events")

    def __init__(self, sock: Any, stage: int):
        self.sock = sock
        self.stage = stage
        self.index = -1
        self.asked = self.deadline = 0.0
        self.out = b""
        self.reading: _Reading | None = None
        self.events = 0


def read_many(direct: Any, paths: Sequence[str], width: int, timeout: float
              ) -> Iterator[tuple[int, Answer | Exception, float]]:
    """GET each of ``paths`` (API paths, no query) over up to ``width`` connections of ``direct``
    (a :class:`~phoenix.pve.direct.DirectCalls`); yields ``(index, answer or exception, when it was
    asked)`` (``time.monotonic``) as each ends."""
    pending = deque(range(len(paths)))
    selector = selectors.DefaultSelector()
    lanes: list[_Lane] = []
    done: list[tuple[int, Answer | Exception, float]] = []

    def watch(lane: _Lane, events: int) -> None:
        if lane.events != events:
            (selector.modify if lane.events else selector.register)(lane.sock, events, lane)
            lane.events = events

    def drop(lane: _Lane) -> None:
        if lane.events:
            selector.unregister(lane.sock)
        lane.events = 0
        lane.sock.close()
        lanes.remove(lane)

    def assign(lane: _Lane) -> None:
        """Give ``lane`` the next path (a new connection starts its deadline at connect)."""
        lane.index = pending.popleft()
        lane.asked = time.monotonic()
        lane.deadline = lane.asked + timeout
        lane.out = direct.request_bytes(paths[lane.index])
        lane.reading = _Reading(f"GET {paths[lane.index]}")
        if lane.stage not in (_CONNECTING, _HANDSHAKE):
            lane.stage = _SENDING
        advance(lane)

    def fail(lane: _Lane, exc: Exception) -> None:
        done.append((lane.index, exc, lane.asked))
        drop(lane)

    def finish(lane: _Lane) -> None:
        assert lane.reading is not None
        done.append((lane.index, lane.reading.answer(), lane.asked))
        if not lane.reading.keep_alive:
            drop(lane)
        elif pending:
            assign(lane)
        else:
            watch(lane, 0)
            lane.stage = _IDLE                       # idle: given back at the end

    def advance(lane: _Lane) -> None:
        try:
            step(lane)
        except (ssl.SSLWantReadError, BlockingIOError):
            watch(lane, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            watch(lane, selectors.EVENT_WRITE)
        except Exception as exc:
            fail(lane, _classified(exc, lane.stage))

    def step(lane: _Lane) -> None:
        if lane.stage == _CONNECTING:
            error = lane.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error == errno.EINPROGRESS or error == 0 and not _connected(lane.sock):
                raise ssl.SSLWantWriteError()
            if error:
                raise ConnectionRefusedError(error, os.strerror(error))
            lane.sock = direct.wrap(lane.sock)
            lane.stage = _HANDSHAKE
        if lane.stage == _HANDSHAKE:
            lane.sock.do_handshake()
            lane.stage = _SENDING
        if lane.stage == _SENDING:
            while lane.out:
                lane.out = lane.out[lane.sock.send(lane.out):]
            lane.stage = _RECEIVING
        assert lane.reading is not None
        while True:                               # everything readable, TLS-buffered data included
            data = lane.sock.recv(262144)
            if not data:
                if lane.reading.at_eof():
                    return finish(lane)
                raise requests.exceptions.ConnectionError("the server closed the connection before the answer ended")
            lane.reading.feed(data)
            if lane.reading.complete:
                return finish(lane)

    def refill() -> None:
        """Up to ``width`` lanes while paths wait: kept-alive connections first, then new ones."""
        while pending and len(lanes) < width:
            sock = direct.take_idle()
            if sock is not None:
                lane = _Lane(sock, _SENDING)
            else:
                try:
                    lane = _Lane(direct.start_connect(), _CONNECTING)
                except OSError as exc:        # e.g. the name does not resolve: this path fails, the next tries
                    done.append((pending.popleft(), _classified(exc, _CONNECTING), time.monotonic()))
                    continue
            lanes.append(lane)
            assign(lane)

    try:
        while True:
            refill()
            yield from done
            done.clear()
            busy = [lane for lane in lanes if lane.stage != _IDLE]
            if not busy:
                if pending:
                    continue
                return
            for key, _ in selector.select(max(0.0, min(lane.deadline for lane in busy) - time.monotonic())):
                advance(key.data)
            now = time.monotonic()
            for lane in [lane for lane in lanes if lane.stage != _IDLE and lane.deadline <= now]:
                fail(lane, requests.exceptions.ConnectTimeout("no TLS connection within the deadline")
                     if lane.stage in (_CONNECTING, _HANDSHAKE)
                     else AnswerDeadline("the answer was cut off at the deadline"))
    finally:
        for lane in list(lanes):
            if lane.stage == _IDLE:
                if lane.events:
                    selector.unregister(lane.sock)
                lanes.remove(lane)
                direct.give_back_socket(lane.sock)
            else:
                drop(lane)
        selector.close()


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
        return True
    except OSError:
        return False


def as_requests_error(exc: BaseException, connecting: bool = False) -> BaseException:
    """An exception of the HTTP layer as the retry policy reads it: requests' types (anything else as it is).

    ``connecting``: while connecting or in the TLS handshake, where any TLS error is a certificate or
    handshake problem and a timeout a connect timeout.  Both fast paths (DirectCalls.call and read_many) use it.
    """
    if isinstance(exc, requests.RequestException):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError) or connecting and isinstance(exc, ssl.SSLError):
        return requests.exceptions.SSLError(str(exc))
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return (requests.exceptions.ConnectTimeout if connecting else requests.exceptions.ReadTimeout)(str(exc))
    if connecting and isinstance(exc, OSError):     # refused, unreachable, not resolved: nothing was sent
        return NotConnected(str(exc))
    if isinstance(exc, (http.client.HTTPException, OSError)):
        return requests.exceptions.ConnectionError(str(exc))
    return exc


def _classified(exc: Exception, stage: int) -> Exception:
    mapped = as_requests_error(exc, connecting=stage in (_CONNECTING, _HANDSHAKE))
    assert isinstance(mapped, Exception)
    return mapped
