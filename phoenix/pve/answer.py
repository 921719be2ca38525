"""PVE's answers as untrusted input: bounded reads, the ``{"data": …}`` envelope, field shapes.

phoenix trusts PVE to tell the truth about its cluster, but not to answer in bounded size or with
well-formed JSON: a proxy in the way, a broken node or a hostile server must end in a one-line
error naming the endpoint (and the field), never in a traceback, an unbounded read, or — worst —
a missing ``data`` read as "an empty cluster" that plans to create everything again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests
import urllib3

from phoenix.errors import PhoenixError
from phoenix.pve.errors import PVEApiError
from phoenix.text import printable

__all__ = ["MAX_ANSWER_BYTES", "PVEAnswerError", "read_body", "read_capped", "too_large", "decode_answer", "error_details",
           "expect_list", "expect_dict", "int_field", "str_field", "read_response", "interpret_answer"]

# Far above any real PVE answer (a 10,000-guest /cluster/resources is about 5 MiB).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


class PVEAnswerError(PhoenixError):
    """An answer phoenix cannot use: too large, not JSON, or not the shape the endpoint promises."""


def _mib(size: int) -> str:
    return f"{round(size / (1 << 20), 1):g} MiB"


def too_large(where: str, size: int | None = None, limit: int = MAX_ANSWER_BYTES) -> PVEAnswerError:
    """The error for an answer over ``limit``: its announced ``size``, or (streamed) just "larger"."""
    if size is not None:
        return PVEAnswerError(f"{where}: the answer is {_mib(size)}, more than the {_mib(limit)} phoenix reads from PVE")
    return PVEAnswerError(f"{where}: the answer is larger than the {_mib(limit)} phoenix reads from PVE")


def read_body(response: Any, where: str, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """Read a urllib3 response's body (decoded), refusing more than ``limit`` bytes (checked while streaming)."""
    return read_capped(lambda size: response.read(size, decode_content=True), response.headers.get("content-length"),
                       where, limit, one_read="content-encoding" not in response.headers)


def read_capped(read: Callable[[int | None], bytes], length: str | None, where: str, limit: int = MAX_ANSWER_BYTES,
                *, one_read: bool = True) -> bytes:
    """A body through ``read(size)``, refusing more than ``limit`` bytes.

    An announced ``length`` above the limit is refused before reading; a body of announced length
    is read in one call (when ``one_read``: the reader stops at, and enforces, that length);
    anything else is read in chunks, counted as it streams.
    """
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise too_large(where, int(length), limit)
    if length is not None and length.strip().isdigit() and one_read:
        return read(None)
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise too_large(where, limit=limit)
        chunks.append(chunk)


def _parse(body: bytes, where: str) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise PVEAnswerError(f"{where}: the answer is not usable JSON (nested too deep)") from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise PVEAnswerError(f"{where}: the answer is not JSON ({reason}; {len(body)} bytes)") from None


def decode_answer(body: bytes, where: str) -> Any:
    """The ``data`` of a successful answer; an error naming ``where`` if the envelope is wrong."""
    parsed = _parse(body, where)
    if not isinstance(parsed, dict):
        raise PVEAnswerError(f"{where}: the answer is a JSON {_kind(parsed)}, not an object with 'data'")
    if "data" not in parsed:
        raise PVEAnswerError(f"{where}: the answer has no 'data' field")
    return parsed["data"]


def error_details(body: bytes) -> dict[str, str]:
    """PVE's per-parameter ``errors`` of a failed answer, if it sent a usable map (else empty)."""
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return {}
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    if isinstance(errors, dict):
        return {str(k): str(v) for k, v in errors.items() if isinstance(v, (str, int, float))}
    return {}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def expect_list(data: Any, where: str, field: str = "data") -> list[dict[str, Any]]:
    """``data`` must be a JSON array of objects (what every PVE listing returns)."""
    if not isinstance(data, list):
        raise PVEAnswerError(f"{where}: {field} is a {_kind(data)}, not an array")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise PVEAnswerError(f"{where}: {field}[{index}] is a {_kind(item)}, not an object")
    return data


def expect_dict(data: Any, where: str, field: str = "data") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PVEAnswerError(f"{where}: {field} is a {_kind(data)}, not an object")
    return data


def int_field(entry: dict[str, Any], key: str, where: str, field: str) -> int:
    """An integer field (PVE sends numbers; a numeric string is tolerated, anything else is not)."""
    value = entry.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise PVEAnswerError(f"{where}: {field}.{key} is {_show(value)}, not an integer")


def str_field(entry: dict[str, Any], key: str, where: str, field: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if isinstance(value, str):
        return value
    raise PVEAnswerError(f"{where}: {field}.{key} is {_show(value)}, not a string")


def _show(value: Any) -> str:
    if value is None:
        return "null or missing"
    text = printable(json.dumps(value) if not isinstance(value, str) else repr(value))
    return text if len(text) <= 40 else text[:37] + "..."


def read_response(response: requests.Response, where: str) -> bytes:
    """The whole body of a streamed requests answer (capped, see ``read_body``), the answer always closed;
    a connection cut mid-body is a requests ``ConnectionError`` for the retry policy."""
    try:
        return read_body(response.raw, where)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.exceptions.ConnectionError(str(exc)) from None
    finally:
        response.close()


def interpret_answer(status: int, reason: str, location: str, body: bytes, method: str, path: str) -> Any:
    """PVE's answer → its ``data``, or the one-line error it amounts to."""
    where = f"{method} {path}"
    if 300 <= status < 400:
        target = f" to {printable(location)[:120]}" if location else ""
        raise PVEAnswerError(f"{where}: answered with a redirect (HTTP {status}{target}); PVE's API does not "
                             "redirect, so phoenix does not follow it")
    if not 200 <= status < 300:
        raise PVEApiError(status, reason, error_details(body), method, path)
    return decode_answer(body, where)
