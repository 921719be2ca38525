"""mypy over phoenix/ with the project's configuration (pyproject.toml: strict, with the exceptions it names)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_mypy_finds_no_type_errors(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
                             "--no-error-summary", "--hide-error-context"],
                            cwd=ROOT, capture_output=True, text=True, timeout=580)
    assert result.returncode == 0, result.stdout + result.stderr
