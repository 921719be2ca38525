"""``phoenix validate`` and ``phoenix schema``: print, return an exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import sys
from typing import TextIO


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _say(line: str, stream: "TextIO | None" = None) -> None:
    """One line, flushed at once so problems and the summary never interleave out of order; what
    came from the file is printed as text (control characters escaped)."""
    from phoenix.text import printable

    print(printable(line), file=stream or sys.stdout, flush=True)


def validate_command(path: Path) -> int:
    """Print every problem (``path: message``) and return 1, or a one-line summary and return 0."""
    from phoenix.desired import ConfigError, load_desired

    try:
        cfg = load_desired(path)
    except ConfigError as exc:
        for problem in exc.problems:
            _say(str(problem))
        _say(f"{path}: invalid — {_plural(len(exc.problems), 'problem')}", sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the promise is "no traceback, ever"
        _say(f"error: {path}: {type(exc).__name__}: {exc}", sys.stderr)
        return 1
    for warning in cfg.warnings:
        _say(f"warning: {warning}", sys.stderr)
    form = " (original project format)" if cfg.format == "legacy" else ""
    _say(f"{path}: valid — {_plural(len(cfg.templates), 'template')}, "
         f"{len(cfg.vms)} VM{'' if len(cfg.vms) == 1 else 's'}{form}")
    return 0


def schema_command() -> int:
    """Print the JSON Schema of the native desired-state form."""
    from phoenix.desired.models import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0
