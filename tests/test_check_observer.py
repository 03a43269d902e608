"""``check_lines`` against the same rules written out plainly.

``check_lines`` dispatches each line itself and takes what the engine's fast path
hands back (a thread, or a thread with the event's type and origin) instead of
reading the event's fields again. :func:`plain_check` below reads every event's
fields through the public API only: each line goes to ``receive_line``, then the
observer decodes the line again and applies section 10's rules to what it reads.
Both must give the same report, to the byte, on every fixture and on generated
traces with and without turn ids, with faults, history, seq gaps and dual ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile import CheckReport, Reconciler, RuleReport, ThreadCounts, check_lines
from reconcile._contract import FIRST_LINES, RULES
from reconcile.testing.simulate import Shape, generate

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("conformance/*/trace.jsonl")) + sorted(
    DATA.glob("real-server/**/*.jsonl")
)
STREAM_TYPES = {"text", "tool_use", "tool_result", "done", "error"}
MALFORMED = {"malformed_line", "malformed_event"}


def is_id(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def binds(data: dict[str, Any]) -> bool:
    """A system_info payload that binds to a turn: thinking, or a rich block that
    names no message."""
    content = data.get("content")
    try:
        payload = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    kind = payload.get("type")
    return kind == "thinking" or (kind == "rich_block" and not is_id(payload.get("messageId")))


def stored_kind(message: Any) -> str | None:
    if not isinstance(message, dict):
        return None
    if not isinstance(message.get("catId"), str) or not is_id(message.get("id")):
        return None
    extra = message.get("extra")
    stream = extra.get("stream") if isinstance(extra, dict) else None
    if not isinstance(stream, dict):
        stream = {}
    if message.get("origin") == "callback":
        return None if is_id(stream.get("invocationId")) else "callback"
    if message.get("isDraft") is True or message["id"].startswith("draft-"):
        return None if is_id(stream.get("parentInvocationId")) else "draft"
    return None


def plain_check(lines: list[bytes] | list[str]) -> CheckReport:
    """Section 10's observer, one rule at a time, beside a plain engine."""
    engine = Reconciler()
    found: dict[str, list[Any]] = {key: [0, 0, []] for key in RULES}

    def add(key: str, line: int, refused: bool) -> None:
        finding = found[key]
        finding[0] += 1
        finding[1] += refused
        if len(finding[2]) < FIRST_LINES and finding[2][-1:] != [line]:
            finding[2].append(line)

    events: dict[str, int] = {}
    live: set[str] = set()
    for raw in lines:
        before = len(engine.rejected)
        engine.receive_line(raw)
        line = engine.lines
        new = [r.reason.value for r in list(engine.rejected)[before:]]
        if MALFORMED & set(new):
            continue
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        data = message.get("data") if isinstance(message, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("threadId"), str):
            continue
        thread = data["threadId"]
        events[thread] = events.get(thread, 0) + 1
        if message.get("event") == "agent_message":
            live.add(thread)
            kind = data.get("type")
            named = is_id(data.get("turnInvocationId"))
            if kind == "text" and data.get("origin") == "callback":
                if not named and not is_id(data.get("invocationId")):
                    add("live_callback_without_turn", line,
                        "callback_without_invocation" in new)
            elif not named and (
                kind in STREAM_TYPES or (kind == "system_info" and binds(data))
            ):
                add("stream_without_turn_id", line, "unbound_event" in new)
        elif message.get("event") == "history":
            messages = data.get("messages")
            if not isinstance(messages, list):
                continue
            if not messages and thread in live:
                add("empty_history", line, False)
            refusals = new.count("callback_without_invocation")
            for stored in messages:
                kind = stored_kind(stored)
                if kind == "callback":
                    add("stored_callback_without_turn", line, refusals > 0)
                    refusals -= 1
                elif kind == "draft":
                    add("draft_without_parent", line, False)
    counts = {h: [n, 0, 0, 0] for h, n in events.items()}
    for h in engine.threads:
        counts.setdefault(h, [0, 0, 0, 0])[1] = len(engine.bubbles(h))
    reasons: dict[str, int] = {}
    for r in engine.rejected:
        reasons[r.reason.value] = reasons.get(r.reason.value, 0) + 1
        if r.thread is not None:
            counts.setdefault(r.thread, [0, 0, 0, 0])[2] += 1
    for g in engine.gaps:
        counts.setdefault(g.thread, [0, 0, 0, 0])[3] += 1
    stats = engine.stats.to_dict()
    return CheckReport(
        lines=engine.lines,
        events=stats["events"],
        stats=stats,
        rejected=tuple(engine.rejected),
        reasons=dict(sorted(reasons.items())),
        rules=tuple(
            RuleReport(rule, key, title, found[key][0], found[key][1], tuple(found[key][2]))
            for key, (rule, title) in RULES.items()
            if found[key][0]
        ),
        threads={h: ThreadCounts(*c) for h, c in counts.items()},
        gaps=tuple(engine.gaps),
    )


def assert_same_report(lines: list[bytes]) -> None:
    expected = json.dumps(plain_check(lines).to_dict())
    assert json.dumps(check_lines(lines).to_dict()) == expected
    # As read from a file: each line with its newline.
    assert json.dumps(check_lines([line + b"\n" for line in lines]).to_dict()) == expected


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_check_reports_every_fixture_as_the_plain_observer_does(path: Path) -> None:
    assert_same_report(path.read_bytes().splitlines())


SHAPES = {
    "no-turn-ids": Shape(turns=30, threads=3, agents=3, dual_ids=0.0, faults=0.05),
    "no-turn-ids-history": Shape(turns=30, threads=2, agents=3, dual_ids=0.0, seq=1.0,
                                 loss=0.1, redeliver=0.1, history=1.0, faults=0.05),
    "dual-ids": Shape(turns=30, threads=3, agents=2, dual_ids=0.5, seq=1.0, loss=0.05,
                      redeliver=0.05, history=1.0, faults=0.05, late=0.5),
    "turn-ids": Shape(turns=30, threads=2, agents=3, dual_ids=1.0, faults=0.1),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_check_reports_generated_traces_as_the_plain_observer_does(name: str) -> None:
    for seed in range(12):
        lines = generate(seed, SHAPES[name])
        assert_same_report([line.encode() for line in lines])
        # Text lines take the same path as bytes.
        assert check_lines(lines).to_dict() == plain_check(lines).to_dict()


EVENTS = [
    {"event": "agent_message", "data": data}
    for data in (
        {"type": "system_info", "threadId": "t", "catId": "opus", "invocationId": "P",
         "content": json.dumps({"type": "invocation_created", "invocationId": "T"})},
        {"type": "system_info", "threadId": "t", "catId": "opus", "invocationId": "P",
         "content": json.dumps({"type": "invocation_created"})},
        {"type": "text", "threadId": "t", "catId": "opus", "invocationId": "P",
         "content": "a"},
        {"type": "text", "threadId": "t", "catId": "opus", "content": "b"},
        {"type": "text", "threadId": "t", "catId": "opus", "content": "c",
         "turnInvocationId": "T", "origin": "stream"},
        {"type": "text", "threadId": "t", "catId": "opus", "content": "c",
         "turnInvocationId": "", "seq": 1},
        {"type": "text", "threadId": "u", "catId": "opus", "content": "cb",
         "origin": "callback"},
        {"type": "text", "threadId": "t", "catId": "opus", "content": "cb",
         "origin": "callback", "invocationId": "T", "messageId": "m1"},
        {"type": "system_info", "threadId": "t", "catId": "opus", "invocationId": "P",
         "content": json.dumps({"type": "thinking", "text": "hm"})},
        {"type": "system_info", "threadId": "t", "catId": "opus",
         "content": '{"type": "thinkin\\u0067", "text": "hm"}'},
        {"type": "system_info", "threadId": "t", "catId": "opus",
         "content": json.dumps({"type": "rich_block", "block": {"id": "k"}})},
        {"type": "system_info", "threadId": "t", "catId": "opus",
         "content": json.dumps({"type": "rich_block", "block": {}})},
        {"type": "system_info", "threadId": "t", "catId": "opus",
         "content": json.dumps({"type": "rich_block", "messageId": "m1",
                                "block": {"id": "k"}})},
        {"type": "system_info", "threadId": "t", "catId": "opus", "content": "thinking"},
        {"type": "tool_use", "threadId": "t", "catId": "opus", "toolName": "x",
         "toolInput": {"n": 123456789012345678901}},
        {"type": "tool_result", "threadId": "t", "catId": "opus", "content": "r"},
        {"type": "error", "threadId": "t", "catId": "opus", "error": "boom"},
        {"type": "done", "threadId": "t", "catId": "opus", "invocationId": "P"},
        {"type": "done", "threadId": "t", "catId": "opus", "timestamp": 1.5},
        {"type": "session_init", "threadId": "v", "catId": "opus"},
        {"type": "text", "threadId": "t", "catId": 5, "content": "x"},
        {"type": "text", "threadId": "t", "catId": "opus", "content": "x",
         "timestamp": 123456789012345678901},
    )
] + [
    {"event": "history", "data": {"threadId": "t", "messages": []}},
    {"event": "history", "data": {"threadId": "w", "messages": []}},
    {"event": "history", "data": {"threadId": "t", "messages": [
        {"id": "s1", "catId": "opus", "origin": "callback", "content": "x"},
        {"id": "m1", "catId": "opus", "origin": "callback", "content": "y"},
        {"id": "draft-T", "catId": "opus", "content": "d"},
        {"id": "d2", "catId": "opus", "isDraft": True, "content": "d",
         "extra": {"stream": {"parentInvocationId": "P"}}},
        {"id": "u1", "content": "from a user"},
    ]}},
    {"event": "history", "data": {"threadId": "t", "messages": [
        {"id": "s2", "catId": "opus", "origin": "callback", "content": "x",
         "timestamp": 123456789012345678901},
        {"id": "draft-U", "catId": "opus", "isDraft": True, "content": "d"},
    ]}},
    {"event": "history", "data": {"threadId": "t", "messages": "no"}},
    {"event": "intent_mode", "data": {"threadId": "x"}},
    {"event": "agent_message", "data": []},
    {"event": 3, "data": {"threadId": "t"}},
]
RAW = [b"", b"   ", b"{nope", b"[1, 2]", b"\xff", b'{"event": "x", "data": {"threadId": "y"}}']


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([json.dumps(e).encode() for e in EVENTS] + RAW),
                max_size=30))
def test_check_reports_any_mix_of_events_as_the_plain_observer_does(lines: list[bytes]) -> None:
    assert_same_report(lines)
