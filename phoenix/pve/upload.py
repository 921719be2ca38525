"""Upload a file to a PVE storage as a streaming multipart body: constant memory, size known.

proxmoxer reads an upload under 10 MiB into memory and reports no progress, so uploads do not go
through it: the body is requests-toolbelt's ``MultipartEncoder`` over the open file (its length
gives the ``Content-Length`` PVE requires), read in 1 MiB blocks (http.client would ask for 8 KiB
at a time, which costs more CPU than the transfer), with progress reported as bytes leave.  The
form fields come before the file part in PVE's order (``content``, ``checksum-algorithm``,
``checksum``): pve-http-server only looks for those before the file.  Auth, TLS verification and
retries are the client's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import requests
from requests_toolbelt import MultipartEncoder

from phoenix.pve.client import PVEClient, _connection_error, interpret_answer, join_path, read_response
from phoenix.pve.retry import is_transient_exception

__all__ = ["upload_file", "BLOCK"]

BLOCK = 1 << 20
FIELD_ORDER = ("content", "checksum-algorithm", "checksum")

Progress = Callable[[int, "int | None"], None]


class _Body:
    """The encoder read in large blocks, reporting progress; ``len`` is the whole body's size."""

    def __init__(self, encoder: MultipartEncoder, progress: Progress | None):
        self._encoder = encoder
        self.len = encoder.len
        self._progress = progress
        self._sent = 0
        self._reported = 0

    def read(self, size: int = -1) -> bytes:
        block = self._encoder.read(max(size, BLOCK) if size and size > 0 else BLOCK)
        self._sent += len(block)
        if self._progress is not None and (self._sent - self._reported >= BLOCK or self._sent == self.len):
            self._reported = self._sent
            self._progress(self._sent, self.len)
        return bytes(block)


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
        with open(path, "rb") as handle:
            encoder = MultipartEncoder(fields=[*ordered, ("filename", (filename, handle, "application/octet-stream"))])
            body = _Body(encoder, progress)
            # requests.Session.request, not proxmoxer's override: that one expects a dict body.
            response = requests.Session.request(
                session, "POST", base_url + api_path, data=body,
                headers={"Content-Type": encoder.content_type},
                cookies=auth.get_cookies() if hasattr(auth, "get_cookies") else None,
                verify=getattr(auth, "verify_ssl", True), timeout=getattr(auth, "timeout", 60),
                allow_redirects=False, stream=True)       # the answer is read like every other (capped, checked)
        answer = read_response(response, f"POST {api_path}")
        return interpret_answer(response.status_code, response.reason or "", response.headers.get("location", ""),
                                answer, "POST", api_path)

    try:
        upid = client.policy.call(once, retry_if=lambda exc: is_transient_exception(exc, "POST"))
    except requests.RequestException as exc:
        raise _connection_error(client.settings, exc, "POST", api_path) from None
    return client.wait_task(upid, task_timeout)
