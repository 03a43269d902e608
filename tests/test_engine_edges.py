"""Edges of the engine's behaviour that a mutation run showed untested
(docs/testing.md): the exact words and thread of each refusal, what an empty parent
id means, who owns a shared message id, negative timestamps, and API misuse."""

from __future__ import annotations

import json

import pytest

from reconcile import (
    LocalProtocolError,
    Reason,
    Reconciler,
    Rejected,
    Status,
)

from .helpers import announce, callback, chunk, done, feed, msg, texts


def _system(payload, **kw):
    return msg("system_info", content=json.dumps(payload), **kw)


# ---------------------------------------------------------------- refusals, word for word

REFUSALS = [
    (chunk("x", parent="P9"), Reason.UNBOUND_EVENT, "stream text from 'opus' binds to no turn"),
    (msg("tool_use", toolName="ls", cat="sonnet"), Reason.UNBOUND_EVENT,
     "tool_use from 'sonnet' binds to no turn"),
    (msg("tool_result", toolName="ls"), Reason.UNBOUND_EVENT,
     "tool_result from 'opus' binds to no turn"),
    (_system({"type": "thinking", "text": "a"}, cat="haiku"), Reason.UNBOUND_EVENT,
     "thinking from 'haiku' binds to no turn"),
    (_system({"type": "rich_block", "block": {"id": "k"}}, cat="haiku"), Reason.UNBOUND_EVENT,
     "rich_block from 'haiku' binds to no turn"),
    (_system({"type": "rich_block", "block": {"idx": "k"}}), Reason.MALFORMED_EVENT,
     "rich_block needs a block object with a string id"),
    (_system({"type": "invocation_created"}), Reason.MALFORMED_EVENT,
     "invocation_created needs an invocationId"),
    (callback("c", None, "m1", cat="sonnet"), Reason.CALLBACK_WITHOUT_INVOCATION,
     "callback from 'sonnet' carries no turn id; it is never guessed"),
    ({"event": "history", "data": {"threadId": "t2", "messages": [
        {"id": "z", "catId": "opus", "content": "q", "origin": "callback"}]}},
     Reason.CALLBACK_WITHOUT_INVOCATION,
     "stored callback 'z' from 'opus' carries no turn id (extra.stream.invocationId); "
     "it is never guessed"),
    ({"event": "history", "data": {"threadId": "t3", "messages": "none"}},
     Reason.MALFORMED_EVENT, "history needs a string threadId and a messages list"),
    ("[1, 2]", Reason.MALFORMED_LINE, "a line must be a JSON object"),
    ('{"event": 5, "data": {}}', Reason.MALFORMED_LINE,
     "needs a string 'event' and an object 'data'"),
]


@pytest.mark.parametrize("event,reason,detail", REFUSALS, ids=[d for _, _, d in REFUSALS])
def test_each_refusal_says_why_and_names_its_thread(event, reason, detail):
    r = Reconciler()
    line = event if isinstance(event, str) else json.dumps(event)
    (refusal,) = r.receive_line(line)
    thread = None if isinstance(event, str) else event["data"]["threadId"]
    assert refusal == Rejected(1, reason, detail, thread)
    assert refusal.to_dict() == {"line": 1, "reason": str(reason), "detail": detail}


def test_unbound_refusals_word_every_agent_as_its_repr_however_many_agents():
    # The wording is kept per agent once made: hundreds of agents, each twice,
    # quotes and escapes included.
    agents = [f"cat{n}" for n in range(300)] + ["it's", 'say "hi"', "tab\there", "\u00e9"]
    lines = [json.dumps(chunk("x", parent="P9", cat=agent)) for agent in agents * 2]
    lines.append(json.dumps(msg("tool_use", toolName="ls", cat="it's")))
    r = Reconciler()
    r.feed(lines)
    details = [refusal.detail for refusal in r.rejected]
    assert details == [f"stream text from {agent!r} binds to no turn"
                       for agent in agents * 2] + ["tool_use from \"it's\" binds to no turn"]


def test_stream_text_after_done_is_refused_naming_the_turn():
    r, changes = feed([announce("T1"), done(turnInvocationId="T1"),
                       msg("text", content="late", turnInvocationId="T1", thread="t1")])
    assert changes[-1] == (Rejected(
        3, Reason.STREAM_AFTER_DONE,
        "turn 'T1' is closed; stream text after done is not appended", "t1"),)


# ---------------------------------------------------------------- binding


def test_an_empty_parent_id_counts_as_absent_and_binds_the_open_turn():
    # Section 3, rule 3: no usable parent id, so the agent's open turn takes it.
    r, _ = feed([announce("T1", parent="P1"), chunk("hi", parent=""), done(parent="")])
    assert texts(r) == [("T1", "stream", "done", "hi")]


def test_a_handoff_line_belongs_to_its_agent():
    r, _ = feed([msg("a2a_handoff", cat="sonnet", content="over to opus")])
    (bubble,) = r.bubbles("t1")
    assert (bubble.cat, bubble.text, bubble.status) == ("sonnet", "over to opus", Status.DONE)


# ---------------------------------------------------------------- message ids


def test_a_shared_message_id_belongs_to_the_first_bubble_made():
    # The stream bubble (made first) and an explicit post share message id m1: the
    # callback that later gives the stream bubble m1 makes it the owner, so a rich
    # block for m1 lands there, not on the post.
    explicit = {"extra": {"isExplicitPost": True}}
    r, _ = feed([
        announce("T1"), chunk("working"),
        callback("a post", "T1", "m1", **explicit),
        callback("final", "T1", "m1"),
        _system({"type": "rich_block", "messageId": "m1", "block": {"id": "k1"}}),
    ])
    stream_bubble, post = r.bubbles("t1")
    assert (stream_bubble.text, post.text) == ("final", "a post")
    assert stream_bubble.blocks == ("k1",) and post.blocks == ()


def test_a_message_id_stays_with_its_first_bubble_when_a_newer_one_reuses_it():
    explicit = {"extra": {"isExplicitPost": True}}
    r, _ = feed([
        announce("T1"), chunk("working"),
        callback("final", "T1", "m1"),
        callback("a post", "T1", "m1", **explicit),
        _system({"type": "rich_block", "messageId": "m1", "block": {"id": "k1"}}),
    ])
    first, post = r.bubbles("t1")
    assert (first.text, post.text) == ("final", "a post")
    assert first.blocks == ("k1",) and post.blocks == ()


def test_a_block_held_for_a_message_attaches_to_its_bubble_once():
    r, _ = feed([
        _system({"type": "rich_block", "messageId": "m1", "block": {"id": "k1"}}),
        _system({"type": "rich_block", "messageId": "m1", "block": {"id": "k1"}}),
        _system({"type": "rich_block", "messageId": "m1", "block": {"id": "k2"}}),
        announce("T1"), callback("final", "T1", "m1"),
    ])
    (bubble,) = r.bubbles("t1")
    assert bubble.blocks == ("k1", "k2")


# ---------------------------------------------------------------- timestamps


def test_an_event_without_a_timestamp_takes_the_largest_seen_even_if_negative():
    r = Reconciler()
    r.receive_message(announce("T1", timestamp=-50))
    r.receive_message(announce("T2", cat="sonnet"))
    assert [t.since for t in r.running_turns("t1")] == [-50, -50]


def _page(*timestamps):
    return {"event": "history", "data": {"threadId": "t1", "messages": [
        {"id": f"s{n}", "catId": "opus", "content": "x", "timestamp": ts}
        for n, ts in enumerate(timestamps)]}}


def test_a_stored_timestamp_counts_as_seen_even_if_negative():
    r = Reconciler()
    r.receive_message(_page(-50))
    r.receive_message(announce("T1"))
    assert [t.since for t in r.running_turns("t1")] == [-50]


def test_a_stored_older_timestamp_does_not_lower_the_largest():
    r = Reconciler()
    r.receive_message(_page(10, 3))
    r.receive_message(_page(7))
    r.receive_message(announce("T1"))
    assert [t.since for t in r.running_turns("t1")] == [10]


def test_the_largest_timestamp_is_kept_when_an_older_one_arrives():
    r = Reconciler()
    for turn, cat, ts in (("T1", "a", 10), ("T2", "b", 3), ("T3", "c", None)):
        r.receive_message(announce(turn, cat=cat, timestamp=ts))
    assert [t.since for t in r.running_turns("t1")] == [10, 3, 10]


# ---------------------------------------------------------------- API misuse


@pytest.mark.parametrize("lines,what", [("a trace", "a str"), (b"a trace", "a bytes object"),
                                        (bytearray(b"x"), "a bytearray object")])
def test_feeding_one_string_is_refused_with_a_hint(lines, what):
    with pytest.raises(LocalProtocolError) as info:
        Reconciler().feed(lines)
    assert str(info.value) == (
        f"feed() takes an iterable of lines, not {what}; to read a file, pass "
        "open(path, 'rb'), or split a trace with .splitlines()")


def test_receive_and_receive_line_name_what_they_were_given():
    r = Reconciler()
    with pytest.raises(LocalProtocolError) as info:
        r.receive({"event": "x", "data": {}})
    assert str(info.value) == (
        "receive() takes AgentMessage, History or OtherEvent, not dict; "
        "use receive_message() for dicts")
    with pytest.raises(LocalProtocolError) as info:
        r.receive_line(5)
    assert str(info.value) == "receive_line takes bytes or str, not int"
    assert r.lines == 0


# ---------------------------------------------------------------- how a bubble prints


def test_a_bubble_prints_its_text_cut_at_forty_characters():
    r, _ = feed([announce("T1"), chunk("x" * 40)])
    (bubble,) = r.bubbles("t1")
    assert repr(bubble).endswith(f"stream streaming {'x' * 40!r}>")
    r.receive_message(chunk("y"))
    assert repr(bubble).endswith(f"stream streaming {'x' * 37 + '...'!r}>")


# ---------------------------------------------------------------- dict subclasses


class _Dict(dict):
    """A dict subclass, as an in-process caller might pass (it takes the careful path)."""


def test_a_dict_subclass_event_is_read_like_a_dict_with_the_same_checks():
    r = Reconciler()
    r.receive_message(announce("T1"))
    changes = r.receive_message(_Dict(event="agent_message", data=_Dict(chunk("hi"))["data"]))
    assert [c.line for c in changes] == [2]
    assert [b.text for b in r.bubbles("t1")] == ["hi"]
    (refusal,) = r.receive_message(_Dict(event="agent_message", data=_Dict(
        chunk("x", seq=10**4300)["data"])))
    assert refusal.line == 3 and refusal.reason is Reason.MALFORMED_EVENT
    assert refusal.detail.startswith("seq is an integer of more than 4300 digits")
