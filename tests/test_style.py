"""The tree is ruff-clean with the configuration in pyproject.toml ([tool.ruff]).

Skipped when ruff is not installed, except under CI=true, where a missing linter is a failure
(a check that silently does not run is no check: tests/requirements.py).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from tests.requirements import need

ROOT = Path(__file__).resolve().parents[1]


def ruff_command() -> list[str]:
    need("ruff")
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    return [shutil.which("ruff")]


def test_ruff_check_is_clean():
    proc = subprocess.run([*ruff_command(), "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-10000:] + proc.stderr[-3000:]
