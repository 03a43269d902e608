"""The README's commands and code stay true: CI runs its test command, the example runs."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_exactly_two_setup_commands():
    first = blocks("sh")[0].strip().splitlines()
    assert len(first) == 2
    assert "reconcile replay examples/late_callback_race.jsonl" in first[0]
    assert "pytest" in first[1] and "[test]" in first[1]


def test_ci_runs_the_readme_test_command():
    test_command = blocks("sh")[0].strip().splitlines()[1]
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_embedding_example_runs_and_prints_bubbles():
    code = blocks("python")[0]
    assert len(code.strip().splitlines()) <= 10
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "t-opus-a callback done Two ids travel under one name" in lines[0]


def test_readme_activates_the_environment_right_after_the_setup_commands():
    assert blocks("sh")[1].strip() == "source .venv/bin/activate"


def test_readme_sample_output_is_what_replay_prints():
    import subprocess
    import sys

    sample = blocks("text")[0]
    printed = subprocess.run(
        [sys.executable, "-m", "reconcile", "replay", "examples/late_callback_race.jsonl"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env=dict(os.environ, COLUMNS="120", PYTHONIOENCODING="utf-8"),
    ).stdout
    assert printed == sample


def test_readme_states_the_test_command_duration_and_python_versions():
    assert "about 2 minutes" in README
    assert "Python 3.11 to 3.13" in README
