"""The engine core type-checks under ``mypy --strict`` (the CI runs it here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import reconcile

PACKAGE = Path(reconcile.__file__).resolve().parent


def test_core_passes_mypy_strict():
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    core = sorted(str(p) for p in PACKAGE.glob("_*.py") if p.name != "__main__.py")
    assert any(p.endswith("_reconciler.py") for p in core)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *core],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_ships_its_type_marker():
    assert (PACKAGE / "py.typed").is_file()
