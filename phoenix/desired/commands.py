"""``phoenix validate`` and ``phoenix schema``: print, return an exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def validate_command(path: Path) -> int:
    """Print every problem (``path: message``) and return 1, or a one-line summary and return 0."""
    from phoenix.desired import ConfigError, load_desired

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        cfg = load_desired(path)
    except ConfigError as exc:
        for problem in exc.problems:
            out.print(str(problem), markup=False)
        err.print(f"{path}: invalid — {_plural(len(exc.problems), 'problem')}", markup=False)
        return 1
    except Exception as exc:  # noqa: BLE001 - the promise is "no traceback, ever"
        err.print(f"error: {path}: {type(exc).__name__}: {exc}".splitlines()[0], markup=False)
        return 1
    for warning in cfg.warnings:
        err.print(f"warning: {warning}", markup=False)
    form = " (original project format)" if cfg.format == "legacy" else ""
    out.print(f"{path}: valid — {_plural(len(cfg.templates), 'template')}, "
              f"{len(cfg.vms)} VM{'' if len(cfg.vms) == 1 else 's'}{form}", markup=False)
    return 0


def schema_command() -> int:
    """Print the JSON Schema of the native desired-state form."""
    from phoenix.desired.models import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0
