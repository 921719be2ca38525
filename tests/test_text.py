"""The one helper for printing outside text (issue 14): control characters escaped, markup inert."""

from __future__ import annotations

from rich.console import Console

from phoenix.text import first_control, markup_safe, printable


def test_printable_escapes_every_control_character():
    hostile = "vm\x1b]0;pwned\x07\x1b[2J\r\nnext\x00\x85\ud800\u202e"
    shown = printable(hostile)
    assert shown == "vm\\x1b]0;pwned\\x07\\x1b[2J\\r\\nnext\\x00\\x85\\ud800\\u202e"
    assert first_control(shown) is None
    assert printable("plain ünïcode text") == "plain ünïcode text"


def test_markup_safe_is_printed_as_written():
    console = Console(record=True, width=200, color_system=None)
    console.print(f"error: {markup_safe('[bold red]boom[/] [link=http://x]y[/link] ' + chr(27) + '[31m')}")
    assert console.export_text().strip() == "error: [bold red]boom[/] [link=http://x]y[/link] \\x1b[31m"
