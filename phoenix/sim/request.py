"""One API request of the simulator: PVE's ``/api2/json`` envelope, errors, auth and routing.

A request goes: parse → authenticate → route (schema template) → inject faults → validate
(``schema.py``) → call the handler from ``core.ROUTES`` → answer ``{"data": ...}``.  Errors follow
pve-http-server: reason line = first line of the message, JSON ``{"data":null,"message":...}``
(+``errors``), bare 401s from the auth handler.  ``/_sim/*`` (no auth) exposes stats and faults.
The same handler serves a connection's thread (``http.server``) and, on its buffered bytes, the
event front's loop (:mod:`phoenix.sim.event_front`); :mod:`phoenix.sim.server` starts both.
"""

from __future__ import annotations

import email.parser
import email.policy
import http.client
import io
import ipaddress
import json
import logging
import socket
import ssl
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from phoenix.httpheaders import with_fast_headers
from phoenix.sim.auth import AuthFailure
from phoenix.sim.core import ROUTES, Paged, PVEError, Request
from phoenix.sim.event_front import READS, prefixed_rfile
from phoenix.sim.faults import FaultSpecError
from phoenix.sim.schema import Router, validate
from phoenix.sim.simulator import Simulator
from phoenix.sim.tasks import WAIT_FOR_INSTANT_TASKS
from phoenix.sim.upload_stream import Upload, is_upload_path, receive_upload

if TYPE_CHECKING:
    from phoenix.sim.server import _HTTPServer

__all__ = ["RequestHandler", "BufferedRequest", "HandedOver", "is_read", "latency_seconds", "load_handlers"]

log = logging.getLogger("phoenix.sim.server")     # one access log for the whole server (tests read it)

API_PREFIX = "/api2/json"
CONTENT_TYPE = "application/json;charset=UTF-8"
MAX_BODY = 512 * 1024 * 1024   # other bodies; uploads stream to disk without a limit (upload_stream.py)
_ROUTER = Router()
_JSON = json.JSONEncoder(separators=(",", ":"))   # json.dumps(..., separators=...) without a new encoder per call


def load_handlers() -> None:
    import phoenix.sim.handlers  # noqa: F401  (importing registers every handler module)


def latency_seconds(sim: Simulator) -> float:
    """How long every API request waits before it is handled (settings + the extra-latency fault)."""
    latency = sim.settings.latency_ms + sim.faults.extra_latency_ms
    return latency / 1000.0 if latency > 0 else 0.0


def _not_implemented(method: str, rel: str) -> PVEError:
    return PVEError(f"Method '{method} {rel}' not implemented", status=501)


def _join_repeated(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Repeated form keys are joined with NUL, as pve-http-server's ``extract_params`` does."""
    params: dict[str, str] = {}
    for key, value in pairs:
        params[key] = f"{params[key]}\0{value}" if key in params else value
    return params


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if not message.is_multipart():
        raise PVEError("unable to parse multipart body\n", status=400)
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, payload)
            fields[name] = filename          # PVE passes the client's file name as the parameter
        else:
            fields[name] = payload.decode("utf-8", errors="replace")
    return fields, files


class RequestHandler(BaseHTTPRequestHandler):
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True     # no 40 ms delayed-ACK stalls on any write
    timeout = 60
    server: "_HTTPServer"

    if hasattr(http.client, "_read_headers"):
        parse_request = with_fast_headers(BaseHTTPRequestHandler.parse_request)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s - %s", self.address_string(), format % args)

    _date: tuple[int, str] = (0, "")
    # Set by the event front (event_front.py) when it answers a buffered request in its own thread:
    # it already waited the latency, counts the request in flight itself, and delays the written
    # answer by what the handler asked to sleep (a 401's delay) instead of blocking its thread.
    _buffered = False
    _deferred = 0.0
    _api_reached = False

    def _pause(self, seconds: float) -> None:
        """Sleep before answering (a 401's delay); the event front sends the answer that much later instead."""
        if self._buffered:
            self._deferred += seconds
        else:
            time.sleep(seconds)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header, formatted once per second (it has one-second resolution)."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        cached = RequestHandler._date
        if cached[0] != now:
            cached = RequestHandler._date = (now, super().date_time_string(now))
        return cached[1]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- responses -------------------------------------------------------------------------------
    def _send(self, status: int, reason: str, body: bytes, content_type: str = CONTENT_TYPE) -> None:
        reason = reason.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace").decode("latin-1")
        if self.request_version == "HTTP/0.9":
            self._send_via_stdlib(status, reason, body, content_type)
            return
        # What send_response + send_header print (see _send_via_stdlib), as one string: every part
        # is latin-1 (reason made so above, the rest ASCII), and only a Connection header could
        # change close_connection, which already says close when that header is sent.
        self.log_request(status)
        head = (f"{self.protocol_version} {status:d} {reason}\r\nServer: {self.version_string()}\r\n"
                f"Date: {self.date_time_string()}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: max-age=0\r\n")
        if self.close_connection:
            head += "Connection: close\r\n"         # uploads: the client must not reuse this connection
        buffer: list[bytes] = self.__dict__.setdefault("_headers_buffer", [])
        # headers and body leave in one write (one TLS record, one syscall)
        buffer += (head.encode("latin-1", "strict"), b"\r\n", body)
        self.flush_headers()

    def _send_via_stdlib(self, status: int, reason: str, body: bytes, content_type: str) -> None:
        """The same answer through BaseHTTPRequestHandler's own methods (HTTP/0.9: no header block)."""
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0")
        if self.close_connection:
            self.send_header("Connection", "close")
        buffer: list[bytes] = self.__dict__.setdefault("_headers_buffer", [])   # none for HTTP/0.9
        if self.request_version != "HTTP/0.9":
            buffer.append(b"\r\n")                # end_headers() without its flush
        buffer.append(body)
        self.flush_headers()

    def _send_json(self, payload: Any, status: int = 200, reason: str = "OK") -> None:
        self._send(status, reason, _JSON.encode(payload).encode())

    def _send_error(self, error: PVEError) -> None:
        body: dict[str, Any] = {"data": None, "message": error.message}
        if error.errors:
            body["errors"] = error.errors
        if error.status == 401:
            self._pause(self.server.sim.settings.auth_fail_delay)
        self._send_json(body, error.status, error.reason)

    # --- dispatch --------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        upload: Upload | None = None
        try:
            if method == "POST" and is_upload_path(url.path):
                self.close_connection = True           # PVE switches keep-alive off for uploads
                upload = receive_upload(self.rfile, self.headers, self.server.sim.data_dir / "tmp")
                body = b""
            else:
                body = self._read_body(method)
            if url.path.startswith("/_sim/"):
                self._sim_endpoint(method, url.path, body)
            elif url.path == API_PREFIX or url.path.startswith(API_PREFIX + "/"):
                self._api(method, url.path[len(API_PREFIX):] or "/", url.query, body, upload)
            else:
                self._send(404, "Not Found", b"")
        except AuthFailure as failure:
            if failure.status == 401:
                self._pause(self.server.sim.settings.auth_fail_delay)
            self._send(failure.status, failure.reason, b"")
        except PVEError as error:
            self._send_error(error)
        except (ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a handler bug must never take the server down
            log.exception("internal error answering %s %s", method, url.path)
            self._send_error(PVEError(f"{exc}\n" if str(exc) else f"{exc.__class__.__name__}\n", status=500))
        finally:
            if upload is not None:
                upload.discard()                      # the handler took the file, or nobody will

    def _read_body(self, method: str) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise PVEError("request body too large\n", status=413)
        body = self.rfile.read(length) if length else b""
        if method in ("GET", "DELETE") and body:
            raise PVEError(f"Unexpected content for method '{method}'", status=501)
        return body

    def _params(self, query: str, body: bytes, upload: Upload | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        content_type = self.headers.get("Content-Type", "") or ""
        params: dict[str, Any] = {}
        files: dict[str, Any] = {}
        if upload is not None:
            params.update(upload.fields)
            if upload.path is not None:
                params["filename"] = upload.filename or ""
                files["filename"] = (upload.filename or "", upload.path)
        elif body:
            if content_type.startswith("application/json"):
                try:
                    decoded = json.loads(body)
                except ValueError as exc:
                    raise PVEError(f"unable to parse JSON body - {exc}\n", status=400) from None
                if not isinstance(decoded, dict):
                    raise PVEError("JSON body must be an object\n", status=400)
                params.update(decoded)
            elif content_type.startswith("multipart/form-data"):
                fields, files = _parse_multipart(content_type, body)
                params.update(fields)
            else:
                params.update(_join_repeated(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
        params.update(_join_repeated(parse_qsl(query, keep_blank_values=True)))  # query overrides body
        params.pop("_dc", None)
        return params, files

    def _api(self, method: str, rel: str, query: str, body: bytes, upload: Upload | None = None) -> None:
        stats = self.server.sim.stats
        self._api_reached = True
        if not self._buffered:
            stats.entered()
        try:
            self._api_call(method, rel, query, body, upload)
        finally:
            stats.left()

    def _api_call(self, method: str, rel: str, query: str, body: bytes, upload: Upload | None = None) -> None:
        sim = self.server.sim
        latency = latency_seconds(sim)
        if latency > 0 and not self._buffered:
            time.sleep(latency)
        matched = _ROUTER.match(rel)
        endpoint = matched[2].get(method) if matched else None
        sim.stats.count(f"{method} {matched[0]}" if matched else f"{method} {rel}")
        public = rel.rstrip("/") == "/access/ticket" and method in ("GET", "POST")
        user = "root@pam"
        if not public or (self.headers.get("Authorization") or "").startswith("PVEAPIToken="):
            user = sim.auth.authenticate(method, self.headers, endpoint.allowtoken if endpoint else True, rel).user
        if endpoint is None:
            raise _not_implemented(method, rel)
        template, path_params, _ = matched
        handler = ROUTES.get((method, template))
        if handler is None:
            raise _not_implemented(method, rel)
        fault = sim.faults.hold_if_due(method) or sim.faults.take_endpoint_fault(f"{method} {template}")
        if fault is not None:
            raise fault
        raw_params, files = self._params(query, body, upload)
        params = validate(endpoint, raw_params, path_params)
        request = Request(method=method, template=template, path_params=path_params, params=params,
                          user=user, sim=sim, raw_body=body, files=files)
        sim.refresh()
        sim.tasks.begin_request()
        try:
            result = handler(request)
        finally:
            spawned = sim.tasks.end_request()
        if sim.settings.task_scale == 0:
            for task in spawned:
                task.done.wait(WAIT_FOR_INSTANT_TASKS)
        if isinstance(result, Paged):
            self._send_json({"data": result.data, "total": result.total})
        else:
            self._send_json({"data": result})

    # --- /_sim -----------------------------------------------------------------------------------
    def _sim_endpoint(self, method: str, path: str, body: bytes) -> None:
        sim = self.server.sim
        if not ipaddress.ip_address(self.client_address[0].split("%")[0]).is_loopback:
            self._send_json({"error": "/_sim is only available from loopback"}, 403, "Forbidden")
            return
        path = path.rstrip("/")
        if path == "/_sim/stats" and method == "GET":
            self._send_json(sim.stats.snapshot())
        elif path == "/_sim/stats/reset" and method == "POST":
            sim.stats.reset()
            self._send_json(sim.stats.snapshot())
        elif path == "/_sim/faults" and method == "GET":
            self._send_json(sim.faults.snapshot())
        elif path == "/_sim/faults" and method == "DELETE":
            sim.faults.clear()
            self._send_json(sim.faults.snapshot())
        elif path == "/_sim/faults" and method == "POST":
            try:
                spec = json.loads(body or b"null")
                specs = spec if isinstance(spec, list) else [spec]
                added = [sim.faults.add(item) for item in specs]
            except (ValueError, FaultSpecError) as exc:
                self._send_json({"error": str(exc)}, 400, "Bad Request")
                return
            self._send_json({"added": added})
        else:
            self._send_json({"error": f"no such simulator endpoint: {method} {path}"}, 404, "Not Found")


class BufferedRequest(RequestHandler):
    """A request the event front read whole, handled on its bytes; the answer collects in ``wfile``."""

    _buffered = True

    def __init__(self, data: bytes, client_address: Any, server: "_HTTPServer"):   # no socket: setup() not called
        self.rfile = io.BytesIO(data)
        self.wfile = io.BytesIO()
        self.client_address = client_address
        self.server = server
        self.close_connection = True        # what handle() sets before its first request


class HandedOver(RequestHandler):
    """A connection the event front gave a thread of its own, with the bytes it had already read."""

    def __init__(self, request: Any, client_address: Any, server: "_HTTPServer", prefix: bytes):
        self._prefix = prefix
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        super().setup()
        if self._prefix:
            self.rfile.close()              # the socket's own reader: closed, or the socket would stay open
            self.rfile = prefixed_rfile(self._prefix, self.connection)


def is_read(rel: str) -> bool:
    """Whether ``GET /api2/json<rel>`` routes to a handler the event front may run in its own thread."""
    matched = _ROUTER.match(rel)
    return matched is not None and matched[0] in READS and "GET" in matched[2]
