"""The fast path's shortcuts past the transition table, state by state.

The fast path (``_message_path`` in ``_agent_message``) applies the most frequent
events without asking the table: a chunk appended to a running turn, a chunk
superseded on a replaced turn, an unbound chunk refused. Each shortcut must do exactly what the general path
(``_agent_message_slowly``, which asks the table for every event) does. The generated
traces of tests/test_hot_path.py reach the usual states; here every turn state is set
by hand, so each shortcut is compared with the table in every state, with every way a
chunk can name its turn.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from reconcile import Reconciler
from reconcile._agent_message import _STALE_STREAM_STATES
from reconcile._turns import _REPLACED_STATES as REPLACED_STATES
from reconcile.testing.reference import activity
from reconcile.testing.reference import replay as reference_replay
from reconcile._turns import TRANSITIONS, Action, Activity, TurnInput, TurnState

from .test_hot_path import GeneralPath, describe, final_state

ANNOUNCE = {"event": "agent_message", "data": {
    "type": "system_info", "threadId": "t", "catId": "opus", "invocationId": "P",
    "content": json.dumps({"type": "invocation_created", "invocationId": "T"}),
}}


class TablePath(GeneralPath):
    """The engine with every agent_message on the general path (the table's): section
    2's steps one by one, the transition table asked for every event."""


def test_the_table_path_takes_no_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every comparison below is only worth something while TablePath really runs the
    # general path (a class attribute that no longer exists would make it the fast
    # path again, compared with itself).
    from reconcile._agent_message import AgentMessageHandlers

    calls = []
    general = AgentMessageHandlers._agent_message_slowly

    def counted(self: Any, *args: Any) -> None:
        calls.append(args[0]["type"])
        general(self, *args)

    monkeypatch.setattr(AgentMessageHandlers, "_agent_message_slowly", counted)
    table = TablePath()
    for event in (ANNOUNCE, chunk("a", invocationId="P"), chunk("b", invocationId="Q")):
        table.receive_message(event)
    assert calls == ["system_info", "text", "text"]
    Reconciler().receive_message(chunk("c", invocationId="Q"))
    assert calls == ["system_info", "text", "text"]  # the fast path did not go there


def chunk(text: str, **ids: Any) -> dict[str, Any]:
    return {"event": "agent_message", "data": {
        "type": "text", "threadId": "t", "catId": "opus", "content": text, "origin": "stream",
        "timestamp": 1767225600000, **ids,
    }}


def engine_in(cls: type[Reconciler], state: TurnState, with_bubble: bool) -> Reconciler:
    """An engine whose turn T (announced under parent P) is in ``state``."""
    engine = cls()
    engine.receive_message(ANNOUNCE)
    if with_bubble:
        engine.receive_message(chunk("first ", turnInvocationId="T"))
    engine._threads["t"].turns["T"].state = state
    return engine


IDS = {
    "turn id": {"turnInvocationId": "T"},
    "turn id and parent": {"turnInvocationId": "T", "invocationId": "P"},
    "parent": {"invocationId": "P"},
    "no id": {},
    "unknown parent": {"invocationId": "Q"},
    "unknown turn id": {"turnInvocationId": "U"},
    "empty turn id, parent": {"turnInvocationId": "", "invocationId": "P"},
}


@pytest.mark.parametrize("state", list(TurnState))
@pytest.mark.parametrize("with_bubble", [True, False])
@pytest.mark.parametrize("ids", sorted(IDS))
@pytest.mark.parametrize("text", ["more", ""])
def test_a_chunk_does_what_the_table_says_in_every_state(
    state: TurnState, with_bubble: bool, ids: str, text: str
) -> None:
    fast = engine_in(Reconciler, state, with_bubble)
    table = engine_in(TablePath, state, with_bubble)
    event = chunk(text, **IDS[ids])
    assert [describe(c) for c in fast.receive_message(event)] == [
        describe(c) for c in table.receive_message(event)
    ]
    assert final_state(fast) == final_state(table)
    assert fast.stats == table.stats
    assert {h: {t: (turn.state, turn.primary is not None) for t, turn in s.turns.items()}
            for h, s in fast._threads.items()} == {
        h: {t: (turn.state, turn.primary is not None) for t, turn in s.turns.items()}
        for h, s in table._threads.items()}


def test_the_superseding_shortcut_covers_exactly_the_rows_that_only_supersede() -> None:
    rows = {s for s in TurnState
            if TRANSITIONS[s, TurnInput.STREAM_TEXT] == (s, Action.SUPERSEDE, Activity.NONE)}
    assert _STALE_STREAM_STATES == rows
    assert TurnState.RUNNING_REPLACED in rows  # a callback mid-turn: the usual case


# ---------------------------------------------------------------- other event types

def system_info(content: str, **ids: Any) -> dict[str, Any]:
    return {"event": "agent_message", "data": {
        "type": "system_info", "threadId": "t", "catId": "opus", "content": content,
        "timestamp": 1767225600001, **ids,
    }}


PAYLOADS = [
    json.dumps({"type": "invocation_created", "invocationId": "T2"}),
    " \n" + json.dumps({"type": "invocation_created", "invocationId": "T2"}),  # white space
    json.dumps({"type": "invocation_created", "invocationId": "T2", "catId": "codex"}),
    json.dumps({"type": "invocation_created", "invocationId": ""}),
    json.dumps({"type": "invocation_created", "invocationId": 7}),
    json.dumps({"type": "invocation_created", "invocationId": "T"}),  # the same turn again
    json.dumps({"type": "thinking", "text": "hmm"}),
    json.dumps({"type": "thinking", "text": 5, "catId": 3}),
    json.dumps({"type": "rich_block", "block": {"id": "b1"}}),
    json.dumps({"type": "rich_block", "block": {"id": "b1"}, "messageId": "m1"}),
    json.dumps({"type": "rich_block", "block": []}),
    json.dumps({"type": "invocation_usage", "usage": {"in": 10**30}}),
    json.dumps({"type": 5}),
    json.dumps({}),
    '{"type": "thinking", "text": "x"',  # not JSON: a plain system line
    '{"type": "thinking", "text": 1e999}',  # beyond a double: the exact decoder
    "[1, 2]",
    "plain text",
    "",
    "  ",
    "{",
]


@pytest.mark.parametrize("state", [TurnState.OPEN, TurnState.RUNNING, TurnState.CLOSED,
                                   TurnState.RUNNING_REPLACED])
@pytest.mark.parametrize("content", PAYLOADS)
@pytest.mark.parametrize("ids", ["turn id", "parent", "no id"])
def test_a_system_info_payload_does_what_the_general_path_does(
    state: TurnState, content: str, ids: str
) -> None:
    fast, table = engine_in(Reconciler, state, True), engine_in(TablePath, state, True)
    event = system_info(content, **IDS[ids])
    assert [describe(c) for c in fast.receive_message(event)] == [
        describe(c) for c in table.receive_message(event)
    ]
    assert final_state(fast) == final_state(table)
    assert fast.stats == table.stats


def other(kind: str, **fields: Any) -> dict[str, Any]:
    return {"event": "agent_message", "data": {
        "type": kind, "threadId": "t", "catId": "opus", "timestamp": 1767225600002, **fields,
    }}


EVENTS = {
    "done": other("done", isFinal=True),
    "tool use": other("tool_use", toolName="Read", toolInput={"path": "a"}),
    "tool result": other("tool_result", toolName="Read", content="ok"),
    "tool result without name": other("tool_result", content="ok"),
    "error": other("error", error="boom"),
    "error with content": other("error", content="boom"),
    "handoff": other("a2a_handoff", content="to codex"),
    "callback": other("text", origin="callback", content="final"),
    "callback with message id": other("text", origin="callback", content="final",
                                      messageId="m1"),
    "explicit post": other("text", origin="callback", content="post", messageId="m2",
                           extra={"isExplicitPost": True}),
    "extra that is not an explicit post": other("text", origin="callback", content="post",
                                                extra={"isExplicitPost": 1}),
}


# A replaced turn always has its callback's bubble.
POSSIBLE = [(state, with_bubble) for state in TurnState for with_bubble in (True, False)
            if with_bubble or state not in REPLACED_STATES]


@pytest.mark.parametrize("state,with_bubble", POSSIBLE)
@pytest.mark.parametrize("name", sorted(EVENTS))
@pytest.mark.parametrize("ids", ["turn id", "parent", "no id", "unknown turn id"])
def test_every_type_does_what_the_general_path_does_in_every_state(
    state: TurnState, with_bubble: bool, name: str, ids: str
) -> None:
    fast = engine_in(Reconciler, state, with_bubble)
    table = engine_in(TablePath, state, with_bubble)
    event = json.loads(json.dumps(EVENTS[name]))
    event["data"].update(IDS[ids])
    assert [describe(c) for c in fast.receive_message(event)] == [
        describe(c) for c in table.receive_message(event)
    ]
    assert final_state(fast) == final_state(table)
    assert fast.stats == table.stats


# The general path shares the handlers of step 7 with the fast path, so for what those
# handlers write out (the payload decode, closing, announcing, tools, callbacks) the
# judge is the reference model, on short natural traces.
def reference_agrees(events: list[dict[str, Any]]) -> None:
    engine = Reconciler()
    for event in events:
        engine.receive_message(event)
    engine._check()
    expected = reference_replay(events)
    document = engine.to_dict()
    assert document["threads"] == expected["threads"]
    assert document["stats"] == expected["stats"]
    assert [(r["line"], r["reason"]) for r in document["rejected"]] == [
        (r["line"], r["reason"]) for r in expected["rejected"]
    ]
    assert activity(events)["running"] == {
        h: [(t.cat, t.turn, t.since, t.line) for t in engine.running_turns(h)]
        for h in engine.threads
        if engine.running_turns(h)
    }


@pytest.mark.parametrize("content", PAYLOADS)
@pytest.mark.parametrize("ids", ["turn id", "parent", "no id"])
def test_a_system_info_payload_gives_what_the_reference_gives(content: str, ids: str) -> None:
    reference_agrees([
        ANNOUNCE, chunk("a ", turnInvocationId="T"), system_info(content, **IDS[ids]),
        chunk("b ", **IDS[ids]), system_info(content, invocationId="P2"),
        other("done", invocationId="P"), chunk("c ", **IDS[ids]),
        system_info(content, **IDS[ids]), chunk("d "), other("done"), chunk("e "),
    ])


@pytest.mark.parametrize("name", sorted(EVENTS))
@pytest.mark.parametrize("ids", ["turn id", "parent", "no id", "unknown turn id"])
@pytest.mark.parametrize("before", ["nothing", "chunk", "callback", "done", "both"])
def test_every_type_gives_what_the_reference_gives(name: str, ids: str, before: str) -> None:
    event = json.loads(json.dumps(EVENTS[name]))
    event["data"].update(IDS[ids])
    first = {
        "nothing": [],
        "chunk": [chunk("a ", turnInvocationId="T")],
        "callback": [other("text", origin="callback", content="cb", invocationId="T")],
        "done": [chunk("a ", turnInvocationId="T"), other("done", turnInvocationId="T")],
        "both": [chunk("a ", turnInvocationId="T"),
                 other("text", origin="callback", content="cb", invocationId="T"),
                 other("done", turnInvocationId="T")],
    }[before]
    reference_agrees([ANNOUNCE, *first, event, chunk("z ", **IDS[ids]), event])


@pytest.mark.parametrize("field", ["timestamp", "seq"])
@pytest.mark.parametrize("value", [10**4300 - 1, 10**4300, -(10**4300) + 1, -(10**4300),
                                   2**63, -(2**63) - 1, 0, -1],
                         ids=["10^4300-1", "10^4300", "-10^4300+1", "-10^4300", "2^63",
                              "-2^63-1", "0", "-1"])
def test_the_bounds_of_a_decoded_integer_are_the_general_paths(field: str, value: int) -> None:
    # Integers of more than 4,300 digits (only an in-process caller can pass them) are
    # refused; the fast path tests the bounds in its own way.
    fast, table = engine_in(Reconciler, TurnState.RUNNING, True), engine_in(
        TablePath, TurnState.RUNNING, True)
    event = chunk("more", turnInvocationId="T")
    event["data"][field] = value
    got = [describe(c) for c in fast.receive_message(event)]
    assert got == [describe(c) for c in table.receive_message(event)]
    assert (got[0][0] == "Rejected") == (abs(value) >= 10**4300)
    assert final_state(fast) == final_state(table)


def test_a_payload_in_a_str_subclass_reads_as_the_same_text() -> None:
    # Only an in-process caller can pass one; it takes the general path, whose
    # system_info handler must still decode it.
    class Text(str):
        pass

    content = json.dumps({"type": "invocation_created", "invocationId": "T2"})
    plain, subclass = Reconciler(), Reconciler()
    event = system_info(content, invocationId="P2")
    odd = system_info(Text(content), invocationId="P2")
    assert [describe(c) for c in plain.receive_message(event)] == [
        describe(c) for c in subclass.receive_message(odd)
    ]
    assert final_state(plain) == final_state(subclass)
    assert subclass.running_turns("t")[0].turn == "T2"


def _life_of_a_turn() -> list[dict[str, Any]]:
    """Events that make every change the engine builds inline: a bubble added, a
    chunk appended, a turn opened and closed with its bubble, a chunk superseded."""
    done = {"event": "agent_message", "data": {
        "type": "done", "threadId": "t", "catId": "opus", "invocationId": "P",
        "timestamp": 1767225600009,
    }}
    callback = {"event": "agent_message", "data": {
        "type": "text", "threadId": "t", "catId": "opus", "content": "all of it",
        "origin": "callback", "invocationId": "T2", "timestamp": 1767225600010,
    }}
    announce_t2 = system_info(json.dumps({"type": "invocation_created", "invocationId": "T2"}),
                              invocationId="P2")
    return [
        ANNOUNCE, chunk("first ", turnInvocationId="T"), chunk("more", invocationId="P"), done,
        announce_t2, callback, chunk("late", turnInvocationId="T2"),
    ]


def test_changes_built_inline_equal_the_ones_their_class_builds() -> None:
    # The fast path and the turn operations build their changes with object.__new__
    # and slot stores; each must be the value its class's constructor makes, every
    # field set (a missing one would raise here), with the same repr.
    seen = set()
    engine = Reconciler()
    for event in _life_of_a_turn():
        for change in engine.receive_message(event):
            rebuilt = type(change)(*(getattr(change, name) for name in change._fields))
            assert change == rebuilt
            assert repr(change) == repr(rebuilt)
            seen.add((type(change).__name__, getattr(change, "how", None)))
    assert {name for name, _ in seen} >= {
        "BubbleAdded", "BubbleUpdated", "TurnOpened", "TurnClosed", "Superseded"}
    assert ("BubbleUpdated", "appended") in seen and ("BubbleUpdated", "closed") in seen


def test_events_decoded_by_orjson_and_by_the_standard_library_give_the_same_changes() -> None:
    # The fast path reads fields with orjson's own key objects (decoder_keys); an
    # event whose keys are other, equal strings must read the same.
    import orjson

    lines = [json.dumps(event).encode() for event in _life_of_a_turn()]
    by_orjson, by_json = Reconciler(), Reconciler()
    for line in lines:
        assert [describe(c) for c in by_orjson.receive_message(orjson.loads(line))] == [
            describe(c) for c in by_json.receive_message(json.loads(line))
        ]
    assert final_state(by_orjson) == final_state(by_json)


def test_decoder_keys_are_the_key_objects_orjson_hands_out() -> None:
    import orjson

    from reconcile._agent_message import decoder_keys

    keys = decoder_keys("content", "threadId")
    assert keys == ("content", "threadId")
    decoded = list(orjson.loads(b'{"threadId": "t", "content": "x"}'))
    assert decoded[1] is keys[0] and decoded[0] is keys[1]


def test_an_unbound_refusal_of_an_agent_named_by_a_str_subclass_words_no_other_engine() -> None:
    # The wording of unbound refusals is kept per agent; an agent name of a str
    # subclass (only from an in-process caller) with its own repr is equal to the
    # plain name, so it must not fill that store for the plain name, in the same
    # engine or another.
    class Cat(str):
        def __repr__(self) -> str:
            return f"Cat<{str(self)}>"

    event = chunk("lost", invocationId="nowhere")
    odd = json.loads(json.dumps(event))
    odd["data"]["catId"] = Cat("opus")
    first = Reconciler().receive_message(odd)
    assert [c.detail for c in first] == ["stream text from Cat<opus> binds to no turn"]
    again = Reconciler().receive_message(event)
    assert [c.detail for c in again] == ["stream text from 'opus' binds to no turn"]
    same = Reconciler()
    same.receive_message(odd)
    assert [c.detail for c in same.receive_message(event)] == [
        "stream text from 'opus' binds to no turn"
    ]


def test_a_dict_subclass_that_invents_missing_fields_is_read_as_its_items() -> None:
    # The fast path reads fields by subscript, which in a defaultdict would call
    # __missing__ (inventing "" for invocationId and timestamp, and storing them in the
    # caller's dict). A subclass goes the general way, which reads what is there.
    from collections import defaultdict

    events = [ANNOUNCE, chunk("a", invocationId="P"), {"event": "agent_message", "data": {
        "type": "text", "threadId": "t", "catId": "opus", "content": "b", "origin": "stream",
        "turnInvocationId": "T"}}, {"event": "agent_message", "data": {
        "type": "done", "threadId": "t", "catId": "opus", "turnInvocationId": "T"}}]
    plain = Reconciler()
    expected = [[describe(c) for c in plain.receive_message(event)] for event in events]
    wrapped = [{"event": e["event"], "data": defaultdict(str, e["data"])} for e in events]
    sub = Reconciler()
    assert [[describe(c) for c in sub.receive_message(event)] for event in wrapped] == expected
    assert final_state(sub) == final_state(plain) and not list(sub.rejected)
    assert [dict(event["data"]) for event in wrapped] == [event["data"] for event in events]


def test_unbound_chunks_of_agents_taking_turns_are_refused_as_the_table_refuses_them() -> None:
    # A client that joined mid-turn: a thread with no announcement yet (the fast path
    # then looks no parent up), chunks of two agents by turns (the fast path keeps the
    # last agent's Refusal beside its name, the other's apart), then an announcement
    # under another parent. Each event as the general path applies it, and each
    # agent's refusals in a thread share one logged Refusal.
    from reconcile._invariants import check

    def by(cat: str, parent: str, thread: str = "t") -> dict[str, Any]:
        event = chunk(f"{cat} {parent}", invocationId=parent)
        event["data"].update(catId=cat, threadId=thread)
        return event

    events = [
        by("opus", "P1"), by("codex", "P2"), by("opus", "P1"), by("codex", "P2"),
        by("codex", "P2", thread="u"), by("gemini", "P3"), by("opus", "P1"),
        ANNOUNCE, by("opus", "P1"), by("codex", "P2"), chunk("bound", invocationId="P"),
    ]
    fast, table = Reconciler(), TablePath()
    for event in events:
        assert [describe(c) for c in fast.receive_message(event)] == [
            describe(c) for c in table.receive_message(event)
        ]
        check(fast)
    assert final_state(fast) == final_state(table)
    assert [r.detail for r in fast.rejected][:3] == [
        "stream text from 'opus' binds to no turn",
        "stream text from 'codex' binds to no turn",
        "stream text from 'opus' binds to no turn",
    ]
    whys = fast._refusals
    for cat, thread in (("opus", "t"), ("codex", "t"), ("codex", "u"), ("gemini", "t")):
        shared = [why for why in whys if f"{cat!r}" in why[1] and why[2] == thread]
        assert shared and all(why is shared[0] for why in shared), (cat, thread)


# The shape shortcut of step 3: an event whose fields are exactly the six of a
# system_info or the eight of a stream chunk as clowder-ai sends them skips the
# lookups of turnInvocationId, seq, messageId, error and toolName. Each variant
# below changes what is in such a shape (a rare field added, good or bad, one of the
# known fields swapped for a rare one, keeping the size, or set to null), so the
# shortcut must not apply, or must apply and agree with the table.
SHAPED = {
    "system_info": {
        "type": "system_info", "threadId": "t", "catId": "opus", "invocationId": "P",
        "timestamp": 1767225600000, "content": "plain line",
    },
    "chunk": {
        "type": "text", "threadId": "t", "catId": "opus", "invocationId": "P",
        "timestamp": 1767225600000, "content": "more", "origin": "stream",
        "metadata": {"provider": "x"},
    },
}
RARE = {
    "turnInvocationId": ["T", 5], "seq": [1, "1"], "messageId": ["m1", 5],
    "error": ["boom", 5], "toolName": ["Read", 5],
}


def shaped_variants() -> list[tuple[str, dict[str, Any]]]:
    variants = []
    for shape, data in SHAPED.items():
        variants.append((f"{shape} as sent", dict(data)))
        for rare, values in RARE.items():  # one field more
            for value in values:
                variants.append((f"{shape} and {rare}={value!r}", {**data, rare: value}))
        for known in data:
            if known in ("type", "threadId", "catId"):
                continue
            variants.append((f"{shape}, {known} null", {**data, known: None}))
            for rare, values in RARE.items():
                for value in values:
                    swapped = {k: v for k, v in data.items() if k != known}
                    swapped[rare] = value
                    variants.append((f"{shape}, {known} -> {rare}={value!r}", swapped))
    return variants


@pytest.mark.parametrize(("name", "data"), shaped_variants(), ids=lambda v: v if isinstance(v, str) else "")
def test_an_event_of_a_known_size_is_checked_as_the_table_checks_it(
    name: str, data: dict[str, Any]
) -> None:
    events = [ANNOUNCE, {"event": "agent_message", "data": data}]
    fast, table = Reconciler(), TablePath()
    for event in events:
        assert [describe(c) for c in fast.receive_message(event)] == [
            describe(c) for c in table.receive_message(event)
        ], name
    assert final_state(fast) == final_state(table)
    # and through feed (the batch path), line by line
    lines = "".join(json.dumps(event) + "\n" for event in events)
    fed = Reconciler()
    fed.feed(io.StringIO(lines))
    assert final_state(fed)["document"] == final_state(table)["document"]
