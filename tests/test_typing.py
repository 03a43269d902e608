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


def test_mypy_reports_assigning_a_field_of_a_frozen_value(tmp_path):
    # attrs's mypy plugin said so for the frozen classes; the hand-written ones must too.
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    source = tmp_path / "uses_values.py"
    source.write_text(
        "from reconcile import AgentMessage, Duplicate, Gap, Reason, Rejected, Stats\n"
        "rejected = Rejected(1, Reason.MALFORMED_LINE, 'x')\n"
        "rejected.line = 2\n"
        "gap = Gap('t1', 1, 4)\n"
        "gap.line = 3\n"
        "stats = Stats()\n"
        "stats.events += 1\n"
        "message = AgentMessage(type='text', thread='t1', cat='opus')\n"
        "message.content = 'hi'\n"
        "duplicate = Duplicate(1, 't1', 2)\n"
        "duplicate.line = 5\n"  # a per-event change is a plain value: no error
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(source)],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    read_only = [line for line in result.stdout.splitlines() if "is read-only" in line]
    assert [line.split(":")[1] for line in read_only] == ["3", "5", "7", "9"], result.stdout
    assert len(result.stdout.splitlines()) == 4, result.stdout
