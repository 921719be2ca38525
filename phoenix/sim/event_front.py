"""One thread serves every keep-alive connection while it only reads: the simulator's I/O front.

Why: ``phoenix plan`` reads 10,000 VMs over 64 keep-alive connections.  With a thread per
connection (``ThreadingHTTPServer``) 64 threads traded the GIL on every request — a wake-up for the
request, another after the latency sleep — and that churn cost the simulator more CPU than
answering.  Here one thread reads every connection through a selector.  A plain read (``GET`` of a
template in :data:`READS`, HTTP/1.x, no body) is answered in that thread by the very same
``_RequestHandler`` code, run on the buffered request bytes; the configured latency is a timer
instead of a sleep, and so is a 401's delay (the answer leaves that much later).

Everything else — a write, an upload, ``/_sim``, HTTP/0.9, a head that is malformed, oversized or
announces a body — hands the connection, with the bytes already read, to a thread of its own that
serves it exactly as ``ThreadingHTTPServer`` did, for the rest of its life.  So lock waits, task
waits, fault holds and streamed uploads block only that thread, and every answer is made by the
same code either way (tests/sim/test_event_front.py compares both fronts byte for byte).
"""

from __future__ import annotations

import heapq
import io
import itertools
import logging
import re
import selectors
import socket
import ssl
import threading
import time
from typing import Any, Callable

__all__ = ["EventFront", "READS", "classify"]

log = logging.getLogger("phoenix.sim.server")

# Handlers that only read the model under the mutex: never sleep, wait for a lock or a task, or talk
# to a guest.  Only these are answered in the loop's thread.
READS = frozenset({
    "/version", "/nodes", "/cluster/resources", "/nodes/{node}/qemu", "/nodes/{node}/qemu/{vmid}/config",
    "/nodes/{node}/qemu/{vmid}/pending", "/nodes/{node}/qemu/{vmid}/status/current",
    "/nodes/{node}/tasks/{upid}/status",
})
# A request line the loop may answer: characters urlsplit leaves alone, so its path is the one the handler routes.
_REQUEST_LINE = re.compile(rb"GET (/api2/json/[A-Za-z0-9/_.:%@!~+=,-]*)(?:\?[^ #\r\n]*)? HTTP/1\.[01]\r\n")
_BODY_HEADERS = (b"content-length", b"transfer-encoding", b"expect")
MAX_HEAD = 32 * 1024        # longer heads go to a thread (the stdlib answers what is too long)
MAX_HEAD_LINES = 64
MAX_INBOX = 1 << 20         # stop reading a busy connection's pipelined bytes beyond this
RECEIVE = 256 * 1024
IDLE_SECONDS = 60           # _RequestHandler.timeout: a keep-alive connection idle this long is closed

WAIT, HAND_OVER = -1, 0     # classify() results besides the length of an answerable request


def classify(inbox: bytes | bytearray, is_read: Callable[[str], bool]) -> int:
    """The length of the first request in ``inbox`` if the loop may answer it, else WAIT (need more
    bytes) or HAND_OVER (a thread serves this connection from here on)."""
    first = inbox.find(b"\n")
    if first < 0:
        return WAIT if len(inbox) <= MAX_HEAD else HAND_OVER
    match = _REQUEST_LINE.fullmatch(inbox, 0, first + 1)
    if match is None or not is_read(match.group(1)[len(b"/api2/json"):].decode("ascii")):
        return HAND_OVER
    start, lines = first + 1, 0
    while True:
        end = inbox.find(b"\n", start)
        if end < 0:
            return WAIT if len(inbox) <= MAX_HEAD else HAND_OVER
        if inbox[start:end + 1] in (b"\r\n", b"\n"):
            break
        start, lines = end + 1, lines + 1
        if lines > MAX_HEAD_LINES or end > MAX_HEAD:
            return HAND_OVER
    head = bytes(inbox[:end + 1]).lower()
    if any(name in head for name in _BODY_HEADERS):
        return HAND_OVER
    return end + 1


class _PrefixedReader(io.RawIOBase):
    """A socket's byte stream with the bytes the loop already read in front of it."""

    def __init__(self, prefix: bytes, sock: socket.socket):
        self._prefix = memoryview(prefix)
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        return self._sock.recv_into(buffer)


class _Connection:
    __slots__ = ("sock", "address", "inbox", "outbox", "handshaken", "busy", "eof", "close_after", "seen")

    def __init__(self, sock: ssl.SSLSocket, address: Any):
        self.sock, self.address = sock, address
        self.inbox = bytearray()
        self.outbox = memoryview(b"")
        self.handshaken = self.busy = self.eof = self.close_after = False
        self.seen = time.monotonic()


class EventFront:
    """The selector loop over the server's listening socket and its connections (see the module doc).

    ``buffered(data, address, httpd)`` builds a request handler over request bytes (``wfile`` a
    BytesIO); ``handed_over(sock, address, httpd, prefix)`` serves a whole connection in a thread.
    """

    def __init__(self, httpd: Any, buffered: Callable[..., Any], handed_over: Callable[..., Any],
                 is_read: Callable[[str], bool], latency: Callable[[], float], stats: Any):
        self._httpd = httpd
        self._buffered, self._handed_over = buffered, handed_over
        self._is_read, self._latency, self._stats = is_read, latency, stats
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._connections: set[_Connection] = set()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._next_sweep = 0.0

    def start(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        listener = self._httpd.socket
        listener.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping:
                timeout = 1.0
                if self._timers:
                    timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
                for key, _events in self._selector.select(timeout):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        self._wake_r.recv(64)
                    else:
                        self._ready(key.data)
                self._run_due()
                self._sweep()
        finally:
            for conn in list(self._connections):
                self._close(conn)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _at(self, delay: float, action: Callable[[], None]) -> None:
        if delay > 0:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._order), action))
        else:
            action()

    def _run_due(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[2]()

    def _sweep(self) -> None:
        """Close connections idle for IDLE_SECONDS, as the per-connection socket timeout did."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for conn in list(self._connections):
            if not conn.busy and now - conn.seen > IDLE_SECONDS:
                self._close(conn)

    def _accept(self) -> None:
        while True:
            try:
                sock, address = self._httpd.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.debug("accept failed", exc_info=True)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            conn = _Connection(sock, address)
            self._connections.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    # --- one connection --------------------------------------------------------------------------
    def _ready(self, conn: _Connection) -> None:
        if not conn.handshaken:
            try:
                conn.sock.do_handshake()
            except ssl.SSLWantReadError:
                return self._interest(conn, selectors.EVENT_READ)
            except ssl.SSLWantWriteError:
                return self._interest(conn, selectors.EVENT_WRITE)
            except (OSError, ValueError):
                return self._close(conn)
            conn.handshaken = True
        if conn.outbox:
            self._flush(conn)
        if conn in self._connections:
            self._receive(conn)
        if conn in self._connections:
            self._advance(conn)

    def _interest(self, conn: _Connection, events: int) -> None:
        if conn in self._connections and self._selector.get_key(conn.sock).events != events:
            self._selector.modify(conn.sock, events, conn)

    def _receive(self, conn: _Connection) -> None:
        want = selectors.EVENT_READ
        while not conn.eof and len(conn.inbox) < MAX_INBOX:
            try:
                data = conn.sock.recv(RECEIVE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLWantWriteError:
                want = selectors.EVENT_READ | selectors.EVENT_WRITE
                break
            except (OSError, ValueError):
                return self._close(conn)
            if not data:
                conn.eof = True
                break
            conn.inbox += data
            conn.seen = time.monotonic()
        if conn.outbox:
            want |= selectors.EVENT_WRITE
        self._interest(conn, want)

    def _advance(self, conn: _Connection) -> None:
        """Start the next request of an idle connection: answer it here, wait for more, or hand over."""
        if conn.busy or conn not in self._connections:
            return
        if not conn.inbox:
            if conn.eof:
                self._close(conn)
            return
        length = classify(conn.inbox, self._is_read)
        if length == WAIT and not conn.eof:
            return
        if length <= 0:
            return self._hand_over(conn)
        data = bytes(conn.inbox[:length])
        del conn.inbox[:length]
        conn.busy = True
        self._stats.entered()      # in flight from here, the latency included (as _api counts it)
        self._at(self._latency(), lambda: self._answer(conn, data))

    def _answer(self, conn: _Connection, data: bytes) -> None:
        handler = self._buffered(data, conn.address, self._httpd)
        try:
            handler.handle_one_request()
        except Exception:
            self._httpd.handle_error(conn.sock, conn.address)
            return self._close(conn)
        finally:
            if not handler._api_reached:
                self._stats.left()
        conn.close_after = handler.close_connection
        answer = handler.wfile.getvalue()
        self._at(handler._deferred, lambda: self._reply(conn, answer))

    def _reply(self, conn: _Connection, answer: bytes) -> None:
        if conn not in self._connections:
            return
        conn.outbox = memoryview(answer)
        self._flush(conn)

    def _flush(self, conn: _Connection) -> None:
        while conn.outbox:
            try:
                sent = conn.sock.send(conn.outbox)
            except (ssl.SSLWantWriteError, BlockingIOError):
                return self._interest(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
            except ssl.SSLWantReadError:
                return self._interest(conn, selectors.EVENT_READ)
            except (OSError, ValueError):
                return self._close(conn)
            conn.outbox = conn.outbox[sent:]
        conn.busy = False
        conn.seen = time.monotonic()
        if conn.close_after:
            return self._close(conn)
        self._interest(conn, selectors.EVENT_READ)
        self._advance(conn)

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    def _close(self, conn: _Connection) -> None:
        if conn in self._connections:
            self._forget(conn)
            self._httpd.shutdown_request(conn.sock)

    def _hand_over(self, conn: _Connection) -> None:
        """From here a thread serves this connection as ThreadingHTTPServer did, starting with the bytes read."""
        self._forget(conn)
        prefix = bytes(conn.inbox)
        try:
            conn.sock.setblocking(True)
        except OSError:
            self._httpd.shutdown_request(conn.sock)
            return
        threading.Thread(target=self._serve_thread, args=(conn.sock, conn.address, prefix), daemon=True).start()

    def _serve_thread(self, sock: socket.socket, address: Any, prefix: bytes) -> None:
        """socketserver's process_request_thread, with the prefix."""
        try:
            self._handed_over(sock, address, self._httpd, prefix)
        except Exception:
            self._httpd.handle_error(sock, address)
        finally:
            self._httpd.shutdown_request(sock)


def prefixed_rfile(prefix: bytes, sock: socket.socket, buffer_size: int = io.DEFAULT_BUFFER_SIZE) -> io.BufferedReader:
    """The ``rfile`` of a handed-over connection: the loop's bytes, then the socket."""
    return io.BufferedReader(_PrefixedReader(prefix, sock), buffer_size)
