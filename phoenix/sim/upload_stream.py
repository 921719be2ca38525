"""Receiving ``POST .../storage/{storage}/upload`` the way pve-http-server does: streamed to a temp file.

PVE never holds an upload in memory and sets no size limit (behaviors.md §23): the multipart body
is parsed as it arrives (``file_upload_multipart``) and the file part is written to
``/var/tmp/pveupload-<md5hex>`` (O_EXCL, 0600); the API call then runs with that temp file.  Here
the temp directory is ``<data dir>/tmp`` and the parser is python-multipart's streaming one, so
memory stays constant whatever the size.  Before the file part only ``content``,
``checksum-algorithm`` and ``checksum`` are taken; the file part must be named ``filename``; a
body that ends before the closing boundary is ``upload failed``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from phoenix.sim.core import PVEError

__all__ = ["Upload", "receive_upload", "is_upload_path"]

READ_BLOCK = 1 << 20
EARLY_FIELDS = ("content", "checksum-algorithm", "checksum")
MAX_FIELD = 64 * 1024


def is_upload_path(path: str) -> bool:
    parts = path.rstrip("/").split("/")
    return len(parts) == 8 and parts[1:4] == ["api2", "json", "nodes"] and parts[5] == "storage" and parts[7] == "upload"


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None          # the client's file name (becomes the ``filename`` parameter)
    path: Path | None = None             # the temp file holding the data
    size: int = 0

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _Receiver:
    """python-multipart callbacks: early fields into ``fields``, the file part into the temp file."""

    def __init__(self, tmp_dir: Path):
        self.tmp_dir = tmp_dir
        self.upload = Upload()
        self.ended = False
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._field: str | None = None
        self._value = bytearray()
        self._out: BinaryIO | None = None
        self._file_done = False

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value_cb, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end, "on_end": self._end}

    def _part_begin(self) -> None:
        self._headers, self._field, self._value = {}, None, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data":
            raise PVEError("upload failed\n")
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._file_done:
            return                                   # PVE discards what follows the file part
        if b"filename" in options:
            if name != "filename":
                raise PVEError(f"wrong field name '{name}' for file upload, expected 'filename'\n")
            self.upload.filename = options[b"filename"].decode("utf-8", "replace")
            self._open_temp()
        elif name in EARLY_FIELDS:
            self._field = name

    def _open_temp(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        path = self.tmp_dir / f"pveupload-{hashlib.md5(os.urandom(16)).hexdigest()}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.upload.path = path
        self._out = os.fdopen(fd, "wb", buffering=READ_BLOCK)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            self._out.write(data[start:end])
            self.upload.size += end - start
        elif self._field is not None and len(self._value) < MAX_FIELD:
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out, self._file_done = None, True
        elif self._field is not None:
            self.upload.fields[self._field] = self._value.decode("utf-8", "replace")
            self._field = None

    def _end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def receive_upload(rfile: BinaryIO, headers: Any, tmp_dir: Path) -> Upload:
    """Read the whole multipart body from ``rfile`` (``Content-Length`` bytes) into a temp file."""
    content_type = headers.get("Content-Type", "") or ""
    ctype, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise PVEError(f"upload 'Content-Type '{content_type}' not implemented\n", status=501)
    length_header = headers.get("Content-Length")
    if not length_header or not length_header.strip().isdigit():
        raise PVEError("upload without content length header not supported\n", status=501)
    remaining = int(length_header)
    receiver = _Receiver(tmp_dir)
    parser = MultipartParser(boundary, receiver.callbacks())
    try:
        while remaining > 0:
            block = rfile.read(min(READ_BLOCK, remaining))
            if not block:
                break
            remaining -= len(block)
            if not receiver.ended:
                parser.write(block)
        receiver.close()
        if remaining > 0 or not receiver.ended:
            raise PVEError("upload failed\n")
    except PVEError:
        receiver.close()
        receiver.upload.discard()
        raise
    except Exception as exc:                       # the parser's own errors: a malformed body
        receiver.close()
        receiver.upload.discard()
        raise PVEError("upload failed\n") from exc
    return receiver.upload
