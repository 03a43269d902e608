"""Start-up: ``check`` and ``replay`` load only what they use; the lazy parser says the same.

``reconcile check`` on a short trace is mostly start-up, and every module imported on
the way costs each run (issue 9: at most 1.5x a bare ``import orjson``, in
instructions; benchmarks/bench_instructions.py measures it). These tests pin what
must stay off that path, and that building one command's parser instead of all six
changes nothing a user sees.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconcile import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "late_callback_race.jsonl"

#: Modules `check` and `replay` must not import: attrs (the engine's classes are
#: hand-written), the live client and its network stack, the terminal UI, the
#: simulator, the audit, the other commands, and the standard library modules only
#: those need (shutil brings zlib, bz2 and lzma; signal is for record and watch).
OFF_THE_PATH = (
    "attr", "attrs", "asyncio", "ssl", "socketio", "engineio", "aiohttp", "rich",
    "dask", "reconcile.client", "reconcile.testing", "reconcile.audit",
    "reconcile.cli.audit", "reconcile.cli.simulate", "reconcile.cli.record",
    "reconcile.cli.watch", "shutil", "signal",
)

#: Run `python -m reconcile ARGS` in this process as the interpreter would, then
#: report the exit status and every module loaded (on standard error: standard
#: output is the command's).
RUN_AND_LIST_MODULES = """
import json, runpy, sys
sys.argv = ["reconcile", *json.loads(sys.argv[1])]
try:
    runpy.run_module("reconcile", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    status = exc.code
print(json.dumps([status, sorted(sys.modules)]), file=sys.stderr)
"""


def loaded_by(*argv: str) -> tuple[int, list[str]]:
    p = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, json.dumps(argv)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    status, modules = json.loads(p.stderr.strip().splitlines()[-1])
    return status, modules


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in OFF_THE_PATH)]


@pytest.mark.parametrize("argv", [["check"], ["check", "--json"], ["replay"],
                                  ["replay", "--json"]], ids=" ".join)
def test_check_and_replay_import_nothing_they_do_not_use(argv):
    status, modules = loaded_by(*argv, str(EXAMPLE))
    assert status == 0
    assert "reconcile.cli._common" in modules  # the command did run
    assert heavy(modules) == []


def test_the_list_of_what_stays_off_the_path_can_catch_something():
    # `simulate` needs the simulator: the same check sees it (so it is not vacuous).
    status, modules = loaded_by("simulate", "--turns", "1")
    assert status == 0
    assert "reconcile.testing" in heavy(modules)


def help_text(argv: list[str], parser_for: str | None) -> tuple[int | str | None, str]:
    """What ``argv`` prints (and its exit code) with the parser for one command or all."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            cli.build_parser(parser_for).parse_args(argv)
        except SystemExit as exc:
            return exc.code, out.getvalue()
    return None, out.getvalue()


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_one_commands_parser_says_what_the_whole_parser_says(command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    for argv in ([command, "--help"], [command, "--no-such-option"], [command, "a", "b", "c"]):
        assert help_text(argv, command) == help_text(argv, None), argv


def test_top_level_help_lists_every_command_with_its_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    status, text = help_text(["--help"], None)
    assert status == 0
    for name in cli.COMMANDS:
        module = __import__(f"reconcile.cli.{name}", fromlist=["HELP"])
        assert f"    {name}" in text and module.HELP in text, name


def test_main_builds_only_the_parser_of_the_command_it_runs(monkeypatch):
    built = []
    real = cli.build_parser

    def build_parser(command=None):
        built.append(command)
        return real(command)

    monkeypatch.setattr(cli, "build_parser", build_parser)
    assert cli.main(["check", str(EXAMPLE)], out=io.StringIO()) == 0
    assert cli.main(["--version"], out=io.StringIO()) == 0
    assert cli.main(["nonsense"], out=io.StringIO()) == 2
    assert built == ["check", None, None]


@pytest.mark.parametrize("columns", ["", "40", "0", "x"])
def test_help_is_as_wide_as_argparse_makes_it(columns, monkeypatch):
    import argparse
    import shutil

    if columns:
        monkeypatch.setenv("COLUMNS", columns)
    else:
        monkeypatch.delenv("COLUMNS", raising=False)
    assert cli._columns() == shutil.get_terminal_size().columns
    ours = cli.build_parser("check")
    monkeypatch.setattr(cli, "_formatter", argparse.HelpFormatter)
    assert ours.format_help() == cli.build_parser("check").format_help()
