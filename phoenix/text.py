"""Text that came from outside phoenix, made safe to print — and the one test for control characters.

PVE's error texts, task logs, names, URLs and lock notes are data, not terminal commands: an
``ESC`` sequence in a VM name must not clear the screen or set the window title, and a ``[red]``
in an error must not become rich markup.  :func:`printable` shows every control character as a
Python-style escape; :func:`markup_safe` also escapes rich markup for ``console.print``.
:func:`first_control` is what validation uses to refuse such characters before they reach PVE,
user-data or a file name.
"""

from __future__ import annotations

import re

__all__ = ["CONTROL_RE", "first_control", "printable", "markup_safe"]

# C0, DEL, C1 and lone surrogates (JSON's "\ud800" decodes to one): never valid in a name or value.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What printing escapes: the above plus line/paragraph separators and bidi overrides (which
# reorder what a reader sees without being "control characters" to Python).
_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def first_control(text: str) -> int | None:
    """Index of the first control character (C0, DEL, C1, lone surrogate) in ``text``, or None."""
    match = CONTROL_RE.search(text)
    return match.start() if match else None


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``str(value)`` with every control character shown as an escape (``\\x1b``, ``\\n``, ``\\ud800``)."""
    return _UNPRINTABLE_RE.sub(_escape, str(value))


def markup_safe(value: object) -> str:
    """:func:`printable`, then rich markup escaped: for outside text inside a ``console.print`` string."""
    from rich.markup import escape

    return escape(printable(value))
