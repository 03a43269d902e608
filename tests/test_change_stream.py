"""Every change names the line that caused it, and turn activity names its agent and
time: what a UI or a log needs to point back at the trace. Pinned over the whole
conformance corpus and a trace that takes every handler (docs/testing.md: these are the
mutants the rest of the suite let live)."""

from __future__ import annotations

import json

import pytest

from reconcile import (
    AgentMessage,
    BubbleAdded,
    BubbleUpdated,
    Reconciler,
    Rejected,
    TurnOpened,
    Update,
    announce as typed_announce,
    stream as typed_stream,
)

from .helpers import announce, callback, case_dirs, chunk, done, msg, trace_lines

EXPLICIT = {"extra": {"isExplicitPost": True}}


def _system(payload, **kw):
    content = payload if isinstance(payload, str) else json.dumps(payload)
    return msg("system_info", content=content, **kw)


def _history(*messages, thread="t1"):
    return {"event": "history", "data": {"threadId": thread, "messages": list(messages)}}


def _stored(mid, content, **kw):
    return {"id": mid, "catId": "opus", "content": content, **kw}


# One event of every kind the engine handles, with and without a turn, live and stored.
EVERY_HANDLER = [
    announce("T1", timestamp=10),
    chunk("Hel", timestamp=11),
    chunk("lo", turnInvocationId="T1"),
    _system({"type": "thinking", "text": "hm"}, turnInvocationId="T1"),
    msg("tool_use", toolName="grep", toolInput={"q": 1}, turnInvocationId="T1"),
    msg("tool_result", toolName="grep", content="ok", turnInvocationId="T1"),
    _system({"type": "rich_block", "block": {"id": "k1"}}, turnInvocationId="T1"),
    _system({"type": "rich_block", "messageId": "m9", "block": {"id": "k2"}}),
    _system({"type": "rich_block", "messageId": "m8", "block": {"id": "k8"}}),
    callback("log line", "T1", "m8", **EXPLICIT),
    callback("log line, fixed", "T1", "m8", **EXPLICIT),
    callback("Hello!", "T1", "m1"),
    callback("Hello!!", "T1", "m1"),
    _system({"type": "rich_block", "messageId": "m1", "block": {"id": "k5"}}),
    done(turnInvocationId="T1"),
    msg("text", content="late", origin="stream", turnInvocationId="T1"),
    chunk("nobody", parent="P9"),
    msg("text", content="x", origin="callback"),
    _system("the build is green"),
    msg("a2a_handoff", content="over to sonnet"),
    msg("tool_use", toolName="ls", turnInvocationId="T2", timestamp=20),
    msg("error", error="boom", turnInvocationId="T2"),
    _system({"type": "thinking", "text": "again"}, turnInvocationId="T3", timestamp=30),
    _system({"type": "rich_block", "block": {"id": "k3"}}, turnInvocationId="T4"),
    msg("error", error="lost", cat="sonnet"),
    callback("final", "T9", "m9", timestamp=40),
    _history(
        _stored("s1", "plain stored", catId="sonnet"),
        _stored("s1b", "stored again"),
        {"id": "s3", "catId": "opus"},
        _stored("draft-X", "x draft"),
        _stored("draft-T5", "draft text", extra={"stream": {"parentInvocationId": "P5"}}),
        _stored("s2", "final text", extra={"stream": {"invocationId": "T5"}}),
        _stored("m1", "Hello, stored", origin="callback"),
        _stored("c7", "stored cb", origin="callback", extra={"stream": {"invocationId": "T7"}}),
        _stored("c8", "orphan", origin="callback"),
        _stored("s6", "turn six", extra={"stream": {"invocationId": "T6"}}),
    ),
    _history(_stored("s1", "plain stored, edited", catId="sonnet"),
             _stored("s2", "final text, edited", extra={"stream": {"invocationId": "T5"}}),
             _stored("draft-T5", "older draft")),
    chunk("more", turnInvocationId="T6"),
    msg("error", error="early", cat="haiku", turnInvocationId="T8"),
]


def _traces():
    yield "every-handler", [json.dumps(e).encode() for e in EVERY_HANDLER]
    for case in case_dirs():
        yield case.name, trace_lines(case / "trace.jsonl")


@pytest.mark.parametrize("name,lines", list(_traces()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_change_carries_the_line_that_caused_it(name, lines):
    r = Reconciler()
    for number, line in enumerate(lines, start=1):
        for change in r.receive_line(line):
            assert change.line == number, (name, number, change)
            if isinstance(change, TurnOpened):
                assert type(change.timestamp) is int and isinstance(change.cat, str)
            if isinstance(change, Rejected):
                assert isinstance(change.detail, str) and change.detail
            if isinstance(change, BubbleUpdated):
                assert isinstance(change.how, Update)
    r._check()


def test_the_every_handler_trace_takes_every_kind_of_update():
    r = Reconciler()
    hows = set()
    for e in EVERY_HANDLER:
        hows |= {c.how for c in r.receive_message(e) if isinstance(c, BubbleUpdated)}
    assert hows == set(Update)


def test_a_new_bubble_is_reported_once_not_also_updated_by_the_same_event():
    # Its BubbleAdded already shows its text and status. Two exceptions: rich blocks
    # held for a callback's message id attach right after (one BLOCK update each),
    # and a history page is many messages, so a later one may update what an earlier
    # one made.
    for name, lines in _traces():
        r = Reconciler()
        for number, line in enumerate(lines, start=1):
            changes = r.receive_line(line)
            if b'"history"' in line:
                continue
            added = {id(c.bubble) for c in changes if isinstance(c, BubbleAdded)}
            held = b'"callback"' in line
            updated = {id(c.bubble) for c in changes if isinstance(c, BubbleUpdated)
                       and not (held and c.how is Update.BLOCK)}
            assert not added & updated, (name, number, changes)


def test_the_first_sign_of_a_turn_opens_it_with_its_agent_and_time():
    r = Reconciler()
    firsts = [
        msg("tool_use", toolName="ls", cat="opus", turnInvocationId="T1", timestamp=5),
        _system({"type": "thinking", "text": "x"}, cat="sonnet", turnInvocationId="T2",
                timestamp=6),
        _system({"type": "rich_block", "block": {"id": "k"}}, cat="haiku",
                turnInvocationId="T3", timestamp=7),
        announce("T4", cat="gemini", timestamp=8),
    ]
    opened = []
    for number, e in enumerate(firsts, start=1):
        opened += [c for c in r.receive_message(e) if isinstance(c, TurnOpened)]
    assert opened == [
        TurnOpened("t1", "opus", "T1", 1, 5),
        TurnOpened("t1", "sonnet", "T2", 2, 6),
        TurnOpened("t1", "haiku", "T3", 3, 7),
        TurnOpened("t1", "gemini", "T4", 4, 8),
    ]
    assert [(t.cat, t.turn, t.since, t.line) for t in r.running_turns("t1")] == [
        ("opus", "T1", 5, 1), ("sonnet", "T2", 6, 2), ("haiku", "T3", 7, 3),
        ("gemini", "T4", 8, 4)]


def test_typed_events_count_one_line_each_and_keep_huge_numbers_out():
    r = Reconciler()
    assert [c.line for c in r.receive(typed_announce("t1", "opus", "T1", "P1"))] == [1]
    changes = r.receive(typed_stream("t1", "opus", "hi", "P1"))
    assert [c.line for c in changes] == [2]
    huge = 10**4300
    (refusal,) = r.receive(AgentMessage(type="text", thread="t1", cat="opus", content="x",
                                        turn_invocation_id="T1", seq=huge))
    assert refusal.line == 3 and refusal.detail.startswith(
        "seq is an integer of more than 4300 digits")
    (refusal,) = r.receive_message(msg("text", content="x", turnInvocationId="T1",
                                       timestamp=-huge))
    assert refusal.line == 4 and refusal.detail.startswith(
        "timestamp is an integer of more than 4300 digits")


def test_the_every_handler_trace_ends_in_these_bubbles():
    # (agent, turn, origin, status, text, message id, thinking, tools, blocks, error)
    r = Reconciler()
    for e in EVERY_HANDLER:
        r.receive_message(e)
    r._check()
    assert [(b.cat, b.invocation, b.origin.value, b.status.value, b.text, b.message_id,
             b.thinking, len(b.tools), b.blocks, b.error) for b in r.bubbles("t1")] == [
        ("opus", "T1", "callback", "done", "Hello, stored", "m1", "hm", 2, ("k1", "k5"), None),
        ("opus", "T1", "callback", "done", "log line, fixed", "m8", "", 0, ("k8",), None),
        ("opus", None, "system", "done", "the build is green", None, "", 0, (), None),
        ("opus", None, "system", "done", "over to sonnet", None, "", 0, (), None),
        ("opus", "T2", "stream", "error", "", None, "", 1, (), "boom"),
        ("opus", "T3", "stream", "streaming", "", None, "again", 0, (), None),
        ("opus", "T4", "stream", "streaming", "", None, "", 0, ("k3",), None),
        ("sonnet", None, "system", "error", "", None, "", 0, (), "lost"),
        ("opus", "T9", "callback", "done", "final", "m9", "", 0, ("k2",), None),
        ("sonnet", None, "stream", "done", "plain stored, edited", None, "", 0, (), None),
        ("opus", None, "stream", "done", "stored again", None, "", 0, (), None),
        ("opus", None, "stream", "done", "", None, "", 0, (), None),
        ("opus", "X", "stream", "streaming", "x draft", None, "", 0, (), None),
        ("opus", "T5", "stream", "done", "final text, edited", None, "", 0, (), None),
        ("opus", "T7", "callback", "done", "stored cb", "c7", "", 0, (), None),
        ("opus", "T6", "stream", "done", "turn six", None, "", 0, (), None),
        ("haiku", "T8", "stream", "error", "", None, "", 0, (), "early"),
    ]
    assert [(t.turn, t.cat, t.since) for t in r.running_turns("t1")] == [
        ("T3", "opus", 30), ("T4", "opus", 30), ("X", "opus", 40)]
    assert r.stats.superseded == 1
