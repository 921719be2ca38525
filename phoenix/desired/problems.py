"""Problems found in a desired-state file, and the one error that carries all of them.

Validation collects every problem instead of stopping at the first, so a user fixes a file in
one round.  Each problem names the JSON path (``vms[1].network_config.ip``) it is about.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from phoenix.errors import PhoenixError

ROOT = "(top level)"
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")  # fullmatch: "$" would accept a trailing newline


@dataclass(frozen=True)
class Problem:
    """One problem: ``path`` is a JSON path such as ``vms[1].user_config.password_hash``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(PhoenixError):
    """The desired-state file is unusable; ``problems`` lists every reason, one per path."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(_summary(self.problems, source))


def _summary(problems: list[Problem], source: str | None) -> str:
    """A single line: the problem itself, or a count with the first problem."""
    prefix = f"{source}: " if source else ""
    if len(problems) == 1:
        return f"{prefix}{problems[0]}"
    more = len(problems) - 1
    return f"{prefix}{len(problems)} problems, first: {problems[0]} (and {more} more; 'phoenix validate' lists all)"


def join_path(base: str, part: str | int) -> str:
    """Append a key or list index to a JSON path (``vms`` + 1 → ``vms[1]``)."""
    if base == ROOT:
        base = ""
    if isinstance(part, int):
        return f"{base}[{part}]"
    if not _PLAIN_KEY.fullmatch(part):  # odd keys stay readable and on one line: vms[0]["a b"]
        return f"{base}[{json.dumps(part)}]"
    return f"{base}.{part}" if base else part


def path_of(parts: Iterable[str | int]) -> str:
    """Turn a location tuple (as pydantic reports it) into a JSON path string."""
    path = ""
    for part in parts:
        path = join_path(path, part)
    return path or ROOT


def unknown_key_message(key: object, allowed: Iterable[str]) -> str:
    """``unknown key 'nmae' (did you mean 'name'?)`` — the hint comes from difflib."""
    allowed = sorted(set(allowed))
    text = str(key)[:60]
    close = difflib.get_close_matches(text, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key {text!r} (did you mean {close[0]!r}?)"
    shown = ", ".join(allowed)
    return f"unknown key {text!r} (allowed: {shown})"
