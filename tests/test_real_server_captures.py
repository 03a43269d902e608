"""The captures recorded against the real clowder-ai server, under PROTOCOL 1.1."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from reconcile import Reconciler, check_lines
from reconcile.cli import main
from reconcile.testing.reference import replay

from .helpers import HERE, trace_lines

CAPTURES = HERE / "data" / "real-server"
TOOLS = HERE.parent / "tools"
NAMES = sorted(p.stem for p in CAPTURES.glob("*.jsonl"))

# The figures recorded with the captures (bubbles, refusals by reason, superseded,
# ignored): pinned here too, so a wrong expected.json cannot pass unnoticed.
RECORDED = {
    "fixed-record": (16, {}, 19, 88),
    "stock-record": (16, {"callback_without_invocation": 11}, 0, 88),
    "watch-record": (3, {}, 42, 18),
    "history-record2": (4, {"callback_without_invocation": 2, "unbound_event": 15}, 0, 6),
}


def expected(name: str) -> dict:
    return json.loads((CAPTURES / f"{name}.expected.json").read_text(encoding="utf-8"))


def sync_tool():
    sys.path.insert(0, str(TOOLS))
    try:
        import sync_conformance
    finally:
        sys.path.pop(0)
    return sync_conformance


def test_every_capture_is_vendored_with_its_expected_results():
    assert NAMES == sorted(RECORDED)
    for name in NAMES:
        assert (CAPTURES / f"{name}.expected.json").is_file()
    assert {p.name for p in CAPTURES.glob("*.txt")} == {
        "watch-screen-16s.txt", "watch-screen-33s.txt"}
    assert (CAPTURES / "README.md").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_expected_results_are_the_recorded_figures(name):
    want = expected(name)
    bubbles, refused, superseded, ignored = RECORDED[name]
    assert (want["bubbles"], want["refused"], want["superseded"], want["ignored"]) == (
        bubbles, refused, superseded, ignored)


@pytest.mark.parametrize("name", NAMES)
def test_the_engine_gives_the_expected_results(name):
    want = expected(name)
    engine = Reconciler()
    engine.feed(trace_lines(CAPTURES / f"{name}.jsonl"))
    engine._check()
    reasons: dict[str, int] = {}
    for r in engine.rejected:
        reasons[r.reason.value] = reasons.get(r.reason.value, 0) + 1
    assert len(engine.threads) == want["threads"]
    assert sum(len(engine.bubbles(h)) for h in engine.threads) == want["bubbles"]
    assert reasons == want["refused"]
    stats = engine.stats
    assert (stats.superseded, stats.ignored, stats.duplicates, len(engine.gaps)) == (
        want["superseded"], want["ignored"], want["duplicates"], want["gaps"])


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_model_agrees(name):
    want = expected(name)
    document = replay(trace_lines(CAPTURES / f"{name}.jsonl"))
    assert sum(len(b) for b in document["threads"].values()) == want["bubbles"]
    reasons: dict[str, int] = {}
    for r in document["rejected"]:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    assert reasons == want["refused"]
    assert document["stats"]["superseded"] == want["superseded"]


@pytest.mark.parametrize("name", NAMES)
def test_check_reports_the_expected_rules(name):
    want = expected(name)["check"]
    report = check_lines(trace_lines(CAPTURES / f"{name}.jsonl"))
    got = [{"rule": r.rule, "key": r.key, "count": r.count, "refused": r.refused}
           for r in report.rules]
    assert got == want["rules"]
    out = io.StringIO()
    assert main(["check", str(CAPTURES / f"{name}.jsonl")], out=out) == want["exit"]
    document = io.StringIO()
    assert main(["check", "--json", str(CAPTURES / f"{name}.jsonl")], out=document) == want["exit"]
    assert [r["key"] for r in json.loads(document.getvalue())["rules"]] == [
        r["key"] for r in want["rules"]]


def test_check_names_rule_1_on_the_stock_server_and_only_advisories_on_the_fixed_one():
    out = io.StringIO()
    assert main(["check", str(CAPTURES / "stock-record.jsonl")], out=out) == 1
    lines = out.getvalue().splitlines()
    assert lines[-3].startswith("rule 1 (refused): 11 live callbacks without a turn id: lines ")
    out = io.StringIO()
    assert main(["check", str(CAPTURES / "fixed-record.jsonl")], out=out) == 0
    assert [x.split(":")[0] for x in out.getvalue().splitlines()[:-1]] == ["rule 3 (advisory)"]
    assert main(["check", "--strict", str(CAPTURES / "fixed-record.jsonl")],
                out=io.StringIO()) == 1


def test_the_watch_screen_shows_callback_done_for_the_turn_still_running():
    screen = (CAPTURES / "watch-screen-33s.txt").read_text(encoding="utf-8")
    assert "callback   done     [opus] callback for w1" in screen


def test_sync_tool_prints_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        sync_tool().main(["--help"])
    assert exit_.value.code == 0 and "--check" in capsys.readouterr().out


SHARED_CAPTURES = sync_tool().SHARED_CAPTURES


@pytest.mark.skipif(not SHARED_CAPTURES.is_dir(), reason="the shared folder is not beside the project")
def test_vendored_captures_are_in_sync_with_shared():
    tool = sync_tool()
    assert tool.capture_differences(SHARED_CAPTURES, CAPTURES) == [], (
        "run python tools/sync_conformance.py")


def test_drift_is_detected(tmp_path):
    tool = sync_tool()
    shared, mine = tmp_path / "shared", tmp_path / "mine"
    shared.mkdir()
    mine.mkdir()
    (shared / "a.jsonl").write_text("{}\n")
    (shared / "s.txt").write_text("screen\n")
    (mine / "a.jsonl").write_text("{}\n")
    (mine / "a.expected.json").write_text("{}\n")  # ours: never compared
    (mine / "old.jsonl").write_text("{}\n")
    assert tool.capture_differences(shared, mine) == [
        "missing capture s.txt", "extra capture old.jsonl"]
    (mine / "s.txt").write_text("other\n")
    (mine / "old.jsonl").unlink()
    assert tool.capture_differences(shared, mine) == ["capture s.txt differs"]
