"""User-facing errors: one line, exit code 1, never a traceback."""

from __future__ import annotations


class PhoenixError(Exception):
    """An error the CLI prints as a single line (``error: <message>``) before exiting 1."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
