"""HTTP header blocks parsed without the email feed parser, for the plain blocks PVE and its clients send.

``http.client`` parses every response's (and ``http.server`` every request's) headers with
:mod:`email.parser`: about a fifth of the CPU of a small keep-alive GET on either side.  A plan
of 10,000 VMs sends 10,000 of them, so both the client's fast GET path
(:mod:`phoenix.pve.direct`) and the simulator's server use :func:`parse_headers`, which builds
the same :class:`http.client.HTTPMessage` directly when every line is a plain ``Name: value``
line, and hands anything else to the email parser as before.
"""

from __future__ import annotations

import email.parser
import functools
import http.client
import re
import types
from typing import Any, TypeVar

__all__ = ["parse_headers", "with_fast_headers"]

F = TypeVar("F")

# Plain header lines: a field name of printable ASCII without ':' (what the email parser's headerRE
# accepts, minus the cases that parser treats specially), no continuation, no stray CR.  Each line
# the stdlib reader returns ends at its only LF, so matching the joined block matches every line;
# then one line's name and value (blanks before the value and the line end left out).
_PLAIN_HEADERS = re.compile(rb"(?:[!-9;-~]+:[^\r\n]*\r?\n)*")
_HEADER_FIELD = re.compile(r"([!-9;-~]+):[ \t]*([^\r\n]*)\r?\n")


def parse_headers(fp: Any, _class: Any = http.client.HTTPMessage) -> Any:
    """``http.client.parse_headers`` without the email feed parser for plain header blocks.

    The lines are read by the stdlib's own reader (same limits, same errors).  When every line is
    a plain ``Name: value`` line, the message is built exactly as the feed parser + compat32
    would (name before the first ':', value with leading blanks stripped and the line end
    removed, empty payload); anything else (continuations, malformed lines, EOF before the blank
    line, multipart/message content types) goes through the email parser as before.
    """
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # the stdlib reader, private
    block = b"".join(lines[:-1])
    if lines and lines[-1] in (b"\r\n", b"\n") and _PLAIN_HEADERS.fullmatch(block):
        message = _class()
        message._headers.extend(_HEADER_FIELD.findall(block.decode("iso-8859-1")))
        # without a Content-Type header the content type is text/plain
        if b"content-type:" not in block.lower() or message.get_content_maintype() not in ("multipart", "message"):
            message.set_payload("")
            return message
    return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))


class _Delegate:
    """A stand-in for a module: the given attributes, everything else from ``module``."""

    def __init__(self, module: Any, **overrides: Any):
        self._module = module
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def with_fast_headers(function: F) -> F:
    """The stdlib's own ``function`` (its code, so its exact behaviour on this Python) with both
    ``parse_headers`` and ``http.client.parse_headers`` resolved to :func:`parse_headers`.

    ``http.client.HTTPResponse.begin`` calls the module-level name, ``http.server``'s request
    parsing the qualified one; nothing is patched in the stdlib modules themselves.
    """
    code_owner: Any = function
    module_globals = dict(code_owner.__globals__)
    if "parse_headers" in module_globals:
        module_globals["parse_headers"] = parse_headers
    if "http" in module_globals:
        module_globals["http"] = _Delegate(module_globals["http"],
                                           client=_Delegate(http.client, parse_headers=parse_headers))
    rebuilt = types.FunctionType(code_owner.__code__, module_globals, code_owner.__name__,
                                 code_owner.__defaults__, code_owner.__closure__)
    rebuilt.__kwdefaults__ = code_owner.__kwdefaults__
    return functools.update_wrapper(rebuilt, code_owner)  # type: ignore[return-value]
