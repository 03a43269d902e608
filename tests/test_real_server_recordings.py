"""Our recordings of the real clowder-ai server (stock and #454-fixed), under protocol 1.1.

The engine, the reference model and `reconcile check` must agree with each recording's
expected results, and the figures that matter to the server's team are pinned here too,
so a wrong expected file cannot pass unnoticed.
"""

from __future__ import annotations

import io
import json

import pytest

from reconcile import Reconciler, TurnClosed, TurnOpened, check_lines
from reconcile.cli import main
from reconcile.testing.reference import replay

from .helpers import HERE, trace_lines

OURS = HERE / "data" / "real-server" / "ours"
NAMES = sorted(p.stem for p in OURS.glob("*.jsonl"))


def expected(name: str) -> dict:
    return json.loads((OURS / f"{name}.expected.json").read_text(encoding="utf-8"))


def test_every_recording_has_its_expected_results():
    assert NAMES == ["fixed-late", "fixed-restart", "fixed-suite", "stock-late", "stock-suite"]
    assert all((OURS / f"{n}.expected.json").is_file() for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_engine_model_and_check_agree_with_the_expected_results(name):
    want = expected(name)
    lines = trace_lines(OURS / f"{name}.jsonl")
    engine, opened, closed = Reconciler(), 0, {}
    for line in lines:
        for change in engine.receive_line(line):
            if isinstance(change, TurnOpened):
                opened += 1
            elif isinstance(change, TurnClosed):
                closed[change.how.value] = closed.get(change.how.value, 0) + 1
    engine._check()
    reasons: dict[str, int] = {}
    for r in engine.rejected:
        reasons[r.reason.value] = reasons.get(r.reason.value, 0) + 1
    got = {
        "threads": len(engine.threads),
        "bubbles": sum(len(engine.bubbles(h)) for h in engine.threads),
        "refused": reasons,
        "superseded": engine.stats.superseded,
        "ignored": engine.stats.ignored,
        "duplicates": engine.stats.duplicates,
        "gaps": len(engine.gaps),
        "turns_opened": opened,
        "turns_closed": closed,
        "running_at_end": sum(len(engine.running_turns(h)) for h in engine.threads),
    }
    assert got == {k: v for k, v in want.items() if k != "check"}
    document = replay(lines)
    assert sum(len(b) for b in document["threads"].values()) == want["bubbles"]
    assert len(document["rejected"]) == sum(want["refused"].values())
    report = check_lines(lines)
    assert [{"rule": r.rule, "key": r.key, "count": r.count, "refused": r.refused}
            for r in report.rules] == want["check"]["rules"]
    assert main(["check", str(OURS / f"{name}.jsonl")], out=io.StringIO()) == (
        want["check"]["exit"])


def _rules(name: str) -> set[int]:
    return {r.rule for r in check_lines(trace_lines(OURS / f"{name}.jsonl")).rules}


def test_check_names_rule_1_on_stock_and_rules_2_and_3_only_on_fixed():
    stock = check_lines(trace_lines(OURS / "stock-suite.jsonl"))
    rule_1 = [r for r in stock.rules if r.rule == 1]
    # one refusal per callback broadcast in the recording
    broadcasts = sum(
        1 for line in trace_lines(OURS / "stock-suite.jsonl")
        if b'"event":"agent_message"' in line and b'"origin":"callback"' in line)
    assert len(rule_1) == 1 and rule_1[0].count == rule_1[0].refused == broadcasts == 16
    assert _rules("fixed-suite") == {2, 3}
    fixed = check_lines(trace_lines(OURS / "fixed-suite.jsonl"))
    assert not fixed.rejected and all(not r.refusal for r in fixed.rules)


def test_a_late_joiner_follows_the_turn_and_sees_it_stop_at_its_stored_message():
    want = expected("fixed-late")
    # Its chunks could not bind (no turn id on them), yet the turn ran and ended.
    assert want["refused"] == {"unbound_event": 30}
    assert (want["turns_opened"], want["turns_closed"], want["running_at_end"]) == (
        1, {"stored": 1}, 0)
    screen = (OURS / "fixed-late-screen-15s.txt").read_text(encoding="utf-8")
    assert "callback   done" in screen and "opus is working… (12s)" in screen
