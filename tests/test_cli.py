"""reconcile.cli: replay (readable and --json), check, exit codes, stdin, errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconcile.cli import main
from reconcile.cli._common import shorten

from .helpers import CONFORMANCE, announce, callback, chunk, done

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "late_callback_race.jsonl"


def run(*argv, stdin: bytes | None = None):
    """Run the CLI in a subprocess, as a user would; returns (status, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "reconcile", *argv], input=stdin,
                       capture_output=True, cwd=ROOT)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def call(*argv):
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def write_trace(tmp_path, events, name="t.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def test_replay_shows_bubbles_per_thread_then_a_summary():
    status, out = call("replay", str(EXAMPLE))
    assert status == 0
    assert out.startswith("thread design-review (3 bubbles)\n")
    assert "thread ops (2 bubbles)" in out
    assert "t-opus-a" in out and "callback" in out and "message msg-a" in out
    assert out.rstrip().splitlines()[-1].startswith("2 threads, 5 bubbles, 0 refused, 2 superseded")


def test_replay_shortens_long_text_to_the_width(tmp_path):
    path = write_trace(tmp_path, [announce("T1"), chunk("word " * 100)])
    _, out = call("replay", "--width", "30", str(path))
    line = next(x for x in out.splitlines() if "T1" in x)
    assert line.endswith("…") and "word word" in line and len(line) < 100


def test_shorten_flattens_whitespace():
    assert shorten("a\n\nb   c", 10) == "a b c"
    assert shorten("abcdefghij", 5) == "abcd…"


def test_replay_lists_refusals_with_line_numbers():
    status, out = call("replay", str(CONFORMANCE / "22_edge_rules" / "trace.jsonl"))
    assert status == 0
    assert "refused (3)" in out
    assert "line 10: stream_after_done:" in out and "line 12: callback_without_invocation:" in out


def test_replay_json_is_the_section_9_document():
    status, out = call("replay", "--json", str(EXAMPLE))
    doc = json.loads(out)
    assert status == 0 and set(doc) == {"threads", "rejected", "stats", "gaps"}
    assert doc["stats"] == {"events": 35, "ignored": 6, "superseded": 2, "duplicates": 0}
    bubble = doc["threads"]["design-review"][0]
    assert set(bubble) == {"id", "thread", "cat", "invocation", "origin", "text", "status",
                           "message_id", "thinking", "tools", "blocks", "error"}


def test_replay_json_handles_integers_beyond_64_bits(tmp_path):
    path = write_trace(tmp_path, [announce("T1"), {"event": "agent_message", "data": {
        "type": "tool_use", "threadId": "t1", "catId": "opus", "invocationId": "P1",
        "toolInput": {"n": 2**80}}}])
    status, out = call("replay", "--json", str(path))
    assert status == 0 and json.loads(out)["threads"]["t1"][0]["tools"][0]["input"] == {"n": 2**80}


def test_output_on_a_terminal_that_is_not_utf8(tmp_path):
    path = write_trace(tmp_path, [msg_handoff("héllo ✓")])
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    for argv in (["replay"], ["replay", "--json"]):
        p = subprocess.run([sys.executable, "-m", "reconcile", *argv, str(path)],
                           capture_output=True, env=env, cwd=ROOT)
        assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)  # still valid JSON, with \u escapes
    assert doc["threads"]["t1"][0]["text"] == "héllo ✓"


def msg_handoff(text):
    return {"event": "agent_message", "data": {"type": "a2a_handoff", "threadId": "t1",
                                               "catId": "opus", "content": text}}


def test_replay_reads_stdin():
    status, out, _ = run("replay", "--json", "-", stdin=EXAMPLE.read_bytes())
    assert status == 0 and len(json.loads(out)["threads"]["ops"]) == 2


def test_check_is_clean_on_a_good_trace():
    status, out, _ = run("check", str(EXAMPLE))
    # The example's stream events carry only the parent id: fine for a live client,
    # an advisory for late joiners (PROTOCOL section 10 rule 3), exit 0 all the same.
    assert status == 0
    assert out.splitlines() == [
        "rule 3 (advisory): 20 stream events without turnInvocationId (a late joiner "
        "cannot bind them): lines 3, 6, 7, 8, 9, ...",
        "35 lines, 35 events: clean; PROTOCOL section 10: advisory rule 3",
    ]


def test_check_strict_fails_on_advisories():
    assert run("check", "--strict", str(EXAMPLE))[0] == 1


def test_check_lists_every_callback_without_turn_id(tmp_path):
    # A stock server (before issue #454) broadcasts callbacks with no turn id at all.
    events = [announce("T1"), chunk("a"), done()]
    events += [callback(f"final {i}", None, f"m{i}") for i in range(5)]
    events += [announce("T2", "P2"), chunk("b", "P2"), callback("ok", "T2", "m9")]
    status, out, _ = run("check", str(write_trace(tmp_path, events)))
    lines = out.strip().splitlines()
    assert status == 1
    assert lines[:5] == [f"{n}: callback_without_invocation: callback from 'opus' carries no "
                         "turn id; it is never guessed" for n in range(4, 9)]
    assert lines[5] == "rule 1 (refused): 5 live callbacks without a turn id: lines 4, 5, 6, 7, 8"
    assert lines[6].startswith("rule 3 (advisory): 3 stream events without turnInvocationId")
    assert lines[-1] == ("11 lines, 11 events: 5 refused (5 callback_without_invocation); "
                         "PROTOCOL section 10: breaks rule 1; advisory rule 3")


def test_check_reports_malformed_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"event": "x", "data": {}}\n\n{nope\n\xff\xfe\n')
    status, out = call("check", str(path))
    assert status == 1
    lines = out.splitlines()
    assert [x.split(":")[:2] for x in lines[:2]] == [["3", " malformed_line"], ["4", " malformed_line"]]
    assert lines[2] == "4 lines, 1 events: 2 refused (2 malformed_line)"


@pytest.mark.parametrize("argv,message", [
    (["check", "missing.jsonl"], "no such trace file: missing.jsonl"),
    (["replay", "."], "is a directory"),
])
def test_missing_files_are_usage_errors_without_traceback(argv, message):
    status, out, err = run(*argv)
    assert status == 2 and out == ""
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["replay"], ["check", "a", "b"]])
def test_bad_command_lines_exit_2_with_usage(argv):
    status, _, err = run(*argv)
    assert status == 2 and "usage:" in err and "Traceback" not in err


def test_help_and_version_exit_0():
    assert run("--help")[0] == 0
    status, out, _ = run("--version")
    assert status == 0 and out.startswith("reconcile ")


def test_console_script_is_installed():
    # The README's first command runs `reconcile replay ...` through the entry point.
    exe = Path(sys.executable).with_name("reconcile")
    if not exe.exists():
        pytest.skip("package not installed with its console script in this interpreter")
    p = subprocess.run([str(exe), "check", str(EXAMPLE)], capture_output=True, text=True)
    assert p.returncode == 0 and "clean" in p.stdout


def test_output_to_a_closed_pipe_is_not_an_error(tmp_path):
    big = write_trace(tmp_path, [announce("T1")] + [chunk("x")] * 2000 +
                      [msg for i in range(2000) for msg in [announce(f"S{i}", f"Q{i}", thread=f"h{i}"),
                                                             chunk("y", f"Q{i}", thread=f"h{i}")]])
    p = subprocess.run(f"{sys.executable} -m reconcile replay {big} | head -1", shell=True,
                       capture_output=True, text=True, cwd=ROOT)
    assert p.stdout.startswith("thread t1") and "Traceback" not in p.stderr


# ---------------------------------------------------------------- hostile surroundings


def shell(command: str):
    """Run a shell command line (for redirections a list of arguments cannot say)."""
    p = subprocess.run(["/bin/bash", "-c", command], capture_output=True, cwd=ROOT)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


RECONCILE = f"{sys.executable} -m reconcile"
COMMANDS = [f"replay {EXAMPLE}", f"replay --json {EXAMPLE}", f"check {EXAMPLE}",
            "simulate --turns 5"]


def test_closed_stdin_is_a_message_not_a_traceback():
    status, out, err = shell(f"{RECONCILE} replay - <&-")
    assert status == 2 and out == ""
    assert err == "reconcile: error: standard input is closed; give a trace file instead of -\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_closed_stdout_is_a_message_not_a_traceback(command):
    status, _, err = shell(f"{RECONCILE} {command} >&-")
    assert status == 2
    assert err == "reconcile: standard output is closed; nothing could be printed\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_full_disk_is_a_message_not_a_traceback(command):
    status, _, err = shell(f"{RECONCILE} {command} > /dev/full")
    assert status == 2
    assert err == "reconcile: error: cannot write the output: No space left on device\n"


def test_check_keeps_exit_1_when_the_reader_leaves_early(tmp_path):
    events = [callback(f"final {i}", None, f"m{i}") for i in range(3000)]
    path = write_trace(tmp_path, events)
    status, out, err = shell(f"{RECONCILE} check {path} | head -1; exit ${{PIPESTATUS[0]}}")
    assert status == 1 and out.startswith("1: callback_without_invocation") and err == ""
    status, _, err = shell(f"{RECONCILE} check --json {path} | head -1; exit ${{PIPESTATUS[0]}}")
    assert status == 1 and err == ""
    status, _, _ = shell(f"{RECONCILE} check {EXAMPLE} | head -1; exit ${{PIPESTATUS[0]}}")
    assert status == 0


def test_check_on_an_empty_trace_says_there_was_nothing_to_check(tmp_path):
    # Exit 1: a check that saw no event vouches for nothing (a recorder pointed at the
    # wrong server or user id writes exactly this), so it must not pass a CI gate.
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert call("check", str(empty)) == (1, "0 lines, 0 events: empty trace: nothing to check\n")
    empty.write_bytes(b"\n  \n")
    assert call("check", str(empty)) == (1, "2 lines, 0 events: empty trace: nothing to check\n")
    status, out = call("check", "--json", str(empty))
    assert status == 1 and json.loads(out)["verdict"] == "empty"


def test_an_integer_of_5000_digits_is_never_a_traceback(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps(announce("T1")) + "\n" + json.dumps(chunk("x"))[:-2]
                    + ', "timestamp": ' + "9" * 5000 + "}}\n", encoding="utf-8")
    for argv in (["check", str(path)], ["check", "--json", str(path)], ["replay", str(path)],
                 ["replay", "--json", str(path)]):
        status, out, err = run(*argv)
        assert "Traceback" not in err, argv
        # Today the engine lets Python's conversion limit escape and the CLI words it;
        # once the engine refuses such a line, check exits 1 and replay 0.
        assert status in (0, 1, 2) and (status != 2 or "could not read" in err), (argv, err)


def test_json_output_survives_integers_beyond_the_conversion_limit():
    from reconcile.cli._common import dumps

    limit = sys.get_int_max_str_digits()
    text = dumps({"n": 10 ** 5000, "deep": [[[1]]]})
    assert text.startswith('{"n": 1000') and len(text) > 5000
    assert sys.get_int_max_str_digits() == limit  # restored


# ---------------------------------------------------------------- start-up

#: What `check` and `replay` must not load: the live client and its network stack,
#: the terminal UI, and the simulator / reference model.
HEAVY = ("asyncio", "ssl", "aiohttp", "socketio", "engineio", "rich", "reconcile.client",
         "reconcile.cli._live", "reconcile.testing")


@pytest.mark.parametrize("argv", [["check"], ["check", "--json"], ["replay"],
                                  ["replay", "--json"]])
def test_check_and_replay_load_no_client_ui_or_simulator(argv):
    code = (
        "import io, sys, reconcile.cli\n"
        f"status = reconcile.cli.main({argv + [str(EXAMPLE)]!r}, out=io.StringIO())\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
        f"or any(m == h or m.startswith(h + '.') for h in {HEAVY!r}))\n"
        "print(status, heavy)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.stdout.strip() == "0 []", p.stdout + p.stderr


def test_building_the_parser_loads_no_command_implementation():
    code = ("import sys, reconcile.cli\nreconcile.cli.build_parser()\n"
            f"print(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
            f"for h in {HEAVY!r})))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr


@pytest.mark.parametrize("command", ["record", "watch"])
def test_record_and_watch_without_attrs_name_it_and_the_client_extra(
    command, monkeypatch, capsys
):
    # attrs comes with the client extra only (the engine does not use it); the client
    # does, so a missing attrs is the install hint, not a traceback from its import.
    monkeypatch.setitem(sys.modules, "attrs", None)  # `import attrs` raises ImportError
    output = ["-o", "-"] if command == "record" else []
    status, _ = call(command, "--url", "ftp://nowhere", "--thread", "t1", *output)
    assert status == 2
    assert capsys.readouterr().err == (
        f"reconcile: error: {command} needs attrs: pip install 'reconcile-chat[client]'\n"
    )


def test_check_keeps_what_existed_before_out_of_the_collectors_walks(monkeypatch):
    # Frozen while the trace is checked (a collection no longer walks the start-up
    # objects), unfrozen after, so an in-process caller's collector is as it was.
    import gc

    import reconcile.cli.check as check_command

    frozen_during = []
    check_lines = check_command.check_lines

    def watched(lines):
        frozen_during.append(gc.get_freeze_count())
        return check_lines(lines)

    monkeypatch.setattr(check_command, "check_lines", watched)
    before = gc.get_freeze_count()
    status, out = call("check", str(EXAMPLE))
    assert status == 0 and "35 lines, 35 events: clean" in out
    assert frozen_during and frozen_during[0] > 0
    assert gc.get_freeze_count() == before
