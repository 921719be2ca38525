"""Upload a file to a PVE storage as a streaming multipart body: constant memory, size known.

proxmoxer reads an upload under 10 MiB into memory and reports no progress, so uploads do not go
through it: the body streams the open file between the multipart framing (its length gives the
``Content-Length`` PVE requires), read in 1 MiB blocks (http.client would ask for 8 KiB at a time,
which costs more CPU than the transfer), with progress reported as bytes leave.  The framing is
byte for byte what requests-toolbelt's ``MultipartEncoder`` writes (the tests compare them; part
headers come from urllib3's ``RequestField``, as the encoder's do), but the file's bytes go from
the file to the socket without passing through the encoder's buffer, which copied each block
three times (~15 % of a 1 GiB upload's throughput on loopback).  The form fields come before the
file part in PVE's order (``content``, ``checksum-algorithm``, ``checksum``): pve-http-server only
looks for those before the file.  Auth, TLS verification and retries are the client's own.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO, Callable

import requests
from urllib3.fields import RequestField

from phoenix.pve.answer import interpret_answer, read_response
from phoenix.pve.client import PVEClient, join_path
from phoenix.pve.errors import connection_error
from phoenix.pve.retry import is_transient_exception

__all__ = ["upload_file", "multipart_framing", "BLOCK"]

BLOCK = 1 << 20
FIELD_ORDER = ("content", "checksum-algorithm", "checksum")

Progress = Callable[[int, "int | None"], None]


def multipart_framing(fields: list[tuple[str, str]], filename: str, boundary: str) -> tuple[bytes, bytes]:
    """The bytes before and after the file's content in a ``multipart/form-data`` body whose last part
    is the file (named ``filename``, as PVE's upload expects)."""
    def part(field: RequestField) -> bytes:
        return b"--" + boundary.encode() + b"\r\n" + field.render_headers().encode("utf-8")

    head = b""
    for name, value in fields:
        field = RequestField(name=name, data=value)
        field.make_multipart()
        head += part(field) + value.encode("utf-8") + b"\r\n"
    file_field = RequestField(name="filename", data=b"", filename=filename)
    file_field.make_multipart(content_type="application/octet-stream")
    return head + part(file_field), b"\r\n--" + boundary.encode() + b"--\r\n"


class _Body:
    """The framing and the file read in large blocks, reporting progress; ``len`` is the whole body's size."""

    def __init__(self, head: bytes, handle: BinaryIO, size: int, tail: bytes, progress: Progress | None):
        self._pieces: deque[bytes | None] = deque([head, None, tail])     # None: the file's bytes
        self._handle, self._file_left = handle, size
        self.len = len(head) + size + len(tail)
        self._progress = progress
        self._sent = 0
        self._reported = 0

    def read(self, size: int = -1) -> bytes:
        want = max(size, BLOCK) if size and size > 0 else BLOCK
        while self._pieces:
            piece = self._pieces[0]
            if piece is not None:
                self._pieces.popleft()
                block = piece
            elif self._file_left == 0:
                self._pieces.popleft()
                continue
            else:
                block = self._handle.read(min(want, self._file_left))
                if not block:
                    raise OSError(f"{getattr(self._handle, 'name', 'the file')} ended early: it changed while "
                                  "uploading")
                self._file_left -= len(block)
            self._sent += len(block)
            if self._progress is not None and (self._sent - self._reported >= BLOCK or self._sent == self.len):
                self._reported = self._sent
                self._progress(self._sent, self.len)
            return block
        return b""


def upload_file(client: PVEClient, node: str, storage: str, path: Path, filename: str,
                fields: dict[str, Any], progress: Progress | None = None,
                task_timeout: float = 3600) -> dict[str, Any]:
    """POST ``path`` as ``filename`` to ``/nodes/{node}/storage/{storage}/upload``; wait for the task."""
    api_path = join_path("nodes", node, "storage", storage, "upload")
    session: requests.Session = client._session  # noqa: SLF001 - the client's authenticated session
    base_url = client.api._store["base_url"]      # noqa: SLF001 - proxmoxer exposes no accessor
    auth: Any = session.auth                      # proxmoxer's auth object (cookies, TLS and timeout settings)
    ordered = [(key, str(fields[key])) for key in FIELD_ORDER if fields.get(key) is not None]
    ordered += [(key, str(value)) for key, value in fields.items() if key not in FIELD_ORDER and value is not None]

    def once() -> Any:
        boundary = uuid.uuid4().hex
        head, tail = multipart_framing(ordered, filename, boundary)
        with open(path, "rb") as handle:
            body = _Body(head, handle, os.fstat(handle.fileno()).st_size, tail, progress)
            # requests.Session.request, not proxmoxer's override: that one expects a dict body.
            response = requests.Session.request(
                session, "POST", base_url + api_path, data=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                cookies=auth.get_cookies() if hasattr(auth, "get_cookies") else None,
                verify=getattr(auth, "verify_ssl", True), timeout=getattr(auth, "timeout", 60),
                allow_redirects=False, stream=True)       # the answer is read like every other (capped, checked)
        answer = read_response(response, f"POST {api_path}")
        return interpret_answer(response.status_code, response.reason or "", response.headers.get("location", ""),
                                answer, "POST", api_path)

    try:
        upid = client.policy.call(once, retry_if=lambda exc: is_transient_exception(exc, "POST"))
    except requests.RequestException as exc:
        raise connection_error(client.settings, exc, "POST", api_path) from None
    return client.wait_task(upid, task_timeout)
