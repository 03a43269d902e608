"""reconcile._reconciler: the engine's rules one at a time (PROTOCOL sections 2-7)."""

from __future__ import annotations

import json

import pytest

from reconcile import (
    AgentMessage,
    BubbleAdded,
    BubbleUpdated,
    Duplicate,
    Gap,
    LocalProtocolError,
    Reason,
    Reconciler,
    Rejected,
    RunningTurn,
    Superseded,
    TurnClosed,
    TurnEnd,
    TurnOpened,
    Update,
)

from .helpers import announce, bubbles, callback, chunk, done, feed, msg, texts


def reasons(r):
    return [(x.line, x.reason.value) for x in r.rejected]


# ---------------------------------------------------------------- binding (section 3)

def test_turn_invocation_id_wins_over_the_parent_id():
    r, _ = feed([
        announce("T1", "P1"), announce("T2", "P2", cat="codex"),
        chunk("x", "P1", turnInvocationId="T2", cat="codex"),
    ])
    assert texts(r) == [("T2", "stream", "streaming", "x")]


def test_turn_invocation_id_binds_to_a_turn_never_announced():
    r, _ = feed([chunk("x", None, turnInvocationId="T9")])
    assert texts(r) == [("T9", "stream", "streaming", "x")]


def test_unknown_parent_does_not_fall_through_to_the_open_turn():
    r, _ = feed([announce("T1", "P1"), chunk("x", "P-unknown")])
    assert reasons(r) == [(2, "unbound_event")] and bubbles(r) == []


def test_parent_binds_per_agent():
    r, _ = feed([announce("TO", "P1"), chunk("o", "P1", cat="codex")])
    assert reasons(r) == [(2, "unbound_event")]


def test_no_ids_bind_to_the_open_turn_of_the_agent():
    r, _ = feed([announce("T1", "P1"), chunk("x", None)])
    assert texts(r) == [("T1", "stream", "streaming", "x")]


def test_no_ids_after_the_turn_closed_bind_to_nothing():
    r, _ = feed([announce("T1", "P1"), done("P1"), chunk("x", None)])
    assert reasons(r) == [(3, "unbound_event")]


def test_announcing_closes_the_previous_turn_of_the_same_agent_only():
    r, _ = feed([
        announce("T1", "P1"), chunk("one", "P1"),
        announce("TC", "P1", cat="codex"), chunk("c", "P1", cat="codex"),
        announce("T2", "P2"),
    ])
    assert texts(r) == [("T1", "stream", "done", "one"), ("TC", "stream", "streaming", "c")]
    assert r.open_turn("t1", "opus") == "T2" and r.open_turn("t1", "codex") == "TC"


def test_a_closed_turn_is_not_reopened_by_a_new_announcement():
    r, _ = feed([announce("T1", "P1"), done("P1"), announce("T1", "P1"), chunk("x", "P1")])
    assert reasons(r) == [(4, "stream_after_done")]
    assert r.open_turn("t1", "opus") is None


def test_the_latest_turn_under_a_parent_wins_even_if_closed():
    r, _ = feed([
        announce("T1", "P"), chunk("first", "P"), done("P"),
        announce("T3", "P"), done("P"), chunk("late", "P"),
    ])
    assert reasons(r) == [(6, "stream_after_done")]


def test_payload_cat_names_the_agent_of_system_info():
    content = json.dumps({"type": "invocation_created", "invocationId": "TS", "catId": "sonnet"})
    r, _ = feed([msg("system_info", content=content, invocationId="P1"),
                 chunk("s", "P1", cat="sonnet")])
    assert [(b.cat, b.invocation) for b in r.bubbles("t1")] == [("sonnet", "TS")]


def test_invocation_created_without_a_turn_id_is_malformed():
    content = json.dumps({"type": "invocation_created", "invocationId": ""})
    r, _ = feed([msg("system_info", content=content)])
    assert reasons(r) == [(1, "malformed_event")]
    assert r.threads == ("t1",), "the thread exists even when step 7 refuses"


# ---------------------------------------------------------------- closing

def test_done_without_a_turn_does_nothing():
    r, changes = feed([done(None)])
    assert changes == [()] and r.rejected == () and r.threads == ("t1",)


def test_error_sets_status_and_text_and_closes_the_turn():
    r, _ = feed([announce("T1"), chunk("part"), msg("error", error="", content="rate limited",
                                                     invocationId="P1"), chunk("more")])
    (b,) = r.bubbles("t1")
    assert (b.status.value, b.error, b.text) == ("error", "rate limited", "part")
    assert reasons(r) == [(4, "stream_after_done")]


def test_error_without_any_text_has_null_error():
    r, _ = feed([announce("T1"), msg("error", invocationId="P1")])
    assert bubbles(r)[0]["error"] is None and bubbles(r)[0]["status"] == "error"


def test_unbound_error_is_a_system_line():
    r, _ = feed([msg("error", error="boom")])
    assert bubbles(r) == [{
        "thread": "t1", "cat": "opus", "invocation": None, "origin": "system", "text": "",
        "status": "error", "message_id": None, "thinking": "", "tools": [], "blocks": [],
        "error": "boom",
    }]


def test_error_on_a_callback_bubble_keeps_the_callback_text():
    r, _ = feed([announce("T1"), callback("final", "T1", "m1"), msg("error", error="x", invocationId="P1")])
    assert texts(r) == [("T1", "callback", "error", "final")]


def test_tools_thinking_and_blocks_attach_to_a_closed_turn():
    r, _ = feed([
        announce("T1"), done("P1"),
        msg("tool_use", toolName="grep", toolInput={"q": 1}, invocationId="P1"),
        msg("tool_result", toolName="grep", content="3 hits", invocationId="P1"),
        msg("system_info", content=json.dumps({"type": "thinking", "text": "hm"}), invocationId="P1"),
        msg("system_info", content=json.dumps({"type": "rich_block", "block": {"id": "k"}}),
            invocationId="P1"),
    ])
    (b,) = bubbles(r)
    assert b["status"] == "done", "a primary made for a closed turn starts done"
    assert b["tools"] == [{"kind": "use", "name": "grep", "input": {"q": 1}},
                          {"kind": "result", "name": "grep", "content": "3 hits"}]
    assert (b["thinking"], b["blocks"]) == ("hm", ["k"])


def test_tool_entries_have_nulls_for_absent_values():
    r, _ = feed([announce("T1"), msg("tool_use", invocationId="P1"), msg("tool_result", invocationId="P1")])
    assert bubbles(r)[0]["tools"] == [{"kind": "use", "name": None, "input": None},
                                      {"kind": "result", "name": None, "content": None}]


def test_thinking_joins_with_a_blank_line_and_replaces_an_empty_value():
    think = lambda t: msg("system_info", content=json.dumps({"type": "thinking", "text": t}),  # noqa: E731
                          invocationId="P1")
    r, _ = feed([announce("T1"), think(""), think("a"), think(7), think("b")])
    assert bubbles(r)[0]["thinking"] == "a\n\n\n\nb"


# ---------------------------------------------------------------- callbacks (section 4)

def test_callback_turn_id_can_come_as_turn_invocation_id():
    r, _ = feed([announce("T1"), chunk("s"), msg("text", content="cb", origin="callback",
                                                 turnInvocationId="T1", invocationId="P1")])
    assert texts(r) == [("T1", "callback", "done", "cb")]


def test_callback_for_an_unannounced_turn_makes_its_bubble():
    r, _ = feed([callback("hi", "T7", "m1")])
    assert texts(r) == [("T7", "callback", "done", "hi")]


def test_redelivery_without_message_id_only_sets_the_text():
    r, changes = feed([announce("T1"), callback("v1", "T1", "m1"), callback("v2", "T1"),
                       callback("v2", "T1", "m1")])
    assert texts(r) == [("T1", "callback", "done", "v2")]
    assert bubbles(r)[0]["message_id"] == "m1"
    assert changes[-1] == (), "setting the same text again reports nothing"


def test_second_post_then_its_redelivery():
    r, _ = feed([announce("T1"), callback("one", "T1", "m1"), callback("two", "T1", "m2"),
                 callback("two!", "T1", "m2")])
    assert [(b.message_id, b.text) for b in r.bubbles("t1")] == [("m1", "one"), ("m2", "two!")]


def test_a_callback_with_an_id_after_one_without_is_a_second_post():
    r, _ = feed([announce("T1"), callback("one", "T1"), callback("two", "T1", "m2")])
    assert [(b.message_id, b.text) for b in r.bubbles("t1")] == [(None, "one"), ("m2", "two")]


def test_explicit_posts_never_replace_and_without_id_are_always_new():
    explicit = {"extra": {"isExplicitPost": True}}
    r, _ = feed([announce("T1"), chunk("log"), callback("p", "T1", **explicit),
                 callback("p", "T1", **explicit), chunk(" more")])
    assert texts(r) == [("T1", "stream", "streaming", "log more"),
                        ("T1", "callback", "done", "p"), ("T1", "callback", "done", "p")]


def test_callback_in_one_thread_never_touches_another():
    r, _ = feed([announce("T1"), chunk("a"), announce("T1", thread="t2"), chunk("b", thread="t2"),
                 callback("final", "T1", "m1", thread="t2")])
    assert texts(r, "t1") == [("T1", "stream", "streaming", "a")]
    assert texts(r, "t2") == [("T1", "callback", "done", "final")]


# ---------------------------------------------------------------- rich blocks

def block(block_id, message_id=None, **kw):
    payload = {"type": "rich_block", "block": {"id": block_id}}
    if message_id is not None:
        payload["messageId"] = message_id
    return msg("system_info", content=json.dumps(payload), **kw)


def test_blocks_for_a_message_wait_for_it_and_dedupe():
    r, _ = feed([block("b1", "m1"), block("b2", "m1"), block("b1", "m1"),
                 callback("x", "T1", "m1"), block("b2", "m1"), block("b3", "m1")])
    assert bubbles(r)[0]["blocks"] == ["b1", "b2", "b3"]


def test_held_blocks_are_per_thread():
    r, _ = feed([block("k", "m1", thread="t2"), callback("x", "T1", "m1")])
    assert bubbles(r)[0]["blocks"] == []


@pytest.mark.parametrize("payload", [
    {"type": "rich_block"}, {"type": "rich_block", "block": []},
    {"type": "rich_block", "block": {"id": 3}}, {"type": "rich_block", "block": {}},
])
def test_bad_rich_blocks_are_malformed(payload):
    r, _ = feed([announce("T1"), msg("system_info", content=json.dumps(payload), invocationId="P1")])
    assert reasons(r) == [(2, "malformed_event")] and bubbles(r) == []


def test_rich_block_without_message_id_binds_like_a_chunk():
    r, _ = feed([block("k", invocationId="P1")])
    assert reasons(r) == [(1, "unbound_event")]


# ---------------------------------------------------------------- system lines, ignoring

def test_plain_and_non_object_system_info_are_system_lines():
    r, _ = feed([msg("system_info", content=c) for c in ("Canceled", "[1]", "3", '"s"')]
                + [msg("a2a_handoff", content="opus → codex"), msg("a2a_handoff")])
    assert [(b.origin.value, b.text) for b in r.bubbles("t1")] == [
        ("system", "Canceled"), ("system", "[1]"), ("system", "3"), ("system", '"s"'),
        ("system", "opus → codex"), ("system", "")]


def test_other_events_types_and_payloads_are_counted_as_ignored():
    r, changes = feed([
        {"event": "intent_mode", "data": {}}, msg("session_init"),
        msg("system_info", content=json.dumps({"type": "invocation_usage"})),
        msg("system_info", content=json.dumps({"type": 5})),
    ])
    assert changes == [(), (), (), ()]
    assert r.stats.ignored == 4 and r.stats.events == 4
    assert r.threads == ("t1",), "ignored payloads still make the thread; unknown types do not"


def test_unknown_type_does_not_make_the_thread():
    r, _ = feed([msg("session_init", thread="tx")])
    assert r.threads == ()


# ---------------------------------------------------------------- order and timestamps

def test_bubbles_sort_by_creating_timestamp_then_creation():
    r, _ = feed([
        announce("T1", timestamp=500), chunk("late clock", timestamp=500),
        announce("T2", "P2", cat="codex"), chunk("early clock", "P2", cat="codex", timestamp=100),
        msg("system_info", content="same time", timestamp=500),
    ])
    assert [b.text for b in r.bubbles("t1")] == ["early clock", "late clock", "same time"]


def test_missing_timestamp_takes_the_threads_largest():
    r, _ = feed([
        announce("T1", timestamp=900), announce("T2", "P2", cat="codex", timestamp=100),
        chunk("c", "P2", cat="codex", timestamp=100), chunk("o"),
    ])
    assert [b.text for b in r.bubbles("t1")] == ["c", "o"]
    assert [b.sort_key[0] for b in r.bubbles("t1")] == [100, 900]


def test_threads_are_listed_in_order_of_existence():
    r, _ = feed([msg("system_info", content="x", thread="b"), {"event": "history",
                 "data": {"threadId": "a", "messages": []}}, chunk("z", thread="c")])
    assert r.threads == ("b", "a", "c")


# ---------------------------------------------------------------- seq (section 6)

def test_seq_duplicates_are_skipped_and_gaps_reported():
    r, changes = feed([
        announce("T1", seq=1), chunk("a", seq=2), chunk("a", seq=2), chunk("c", seq=5),
        chunk("d", seq=1, seqEpoch="e2"),
    ])
    assert texts(r) == [("T1", "stream", "streaming", "acd")]
    assert changes[2] == (Duplicate(3, "t1", 2),)
    assert isinstance(changes[3][0], Gap) and changes[3][0].to_dict() == {
        "thread": "t1", "after": 2, "before": 5}
    assert r.stats.duplicates == 1 and len(r.gaps) == 1


def test_a_refused_event_still_advances_seq():
    r, _ = feed([chunk("orphan", seq=1), announce("T1", seq=2), chunk("x", seq=1)])
    assert reasons(r) == [(1, "unbound_event")] and r.stats.duplicates == 1


def test_a_malformed_event_does_not_touch_seq():
    r, _ = feed([announce("T1", seq=1), msg("text", content=3, seq=2), chunk("x", seq=2)])
    assert texts(r) == [("T1", "stream", "streaming", "x")]


def test_seq_is_per_thread():
    r, _ = feed([announce("T1", seq=1), announce("T1", thread="t2", seq=1)])
    assert r.stats.duplicates == 0 and r.gaps == ()


# ---------------------------------------------------------------- history (section 7)

def history(messages, thread="t1"):
    return {"event": "history", "data": {"threadId": thread, "messages": messages}}


def stored(mid, content, cat="opus", **kw):
    return {"id": mid, "catId": cat, "content": content, **kw}


def test_bad_history_events_are_malformed():
    r, _ = feed([{"event": "history", "data": {"threadId": "t1"}},
                 {"event": "history", "data": {"messages": []}}])
    assert reasons(r) == [(1, "malformed_event"), (2, "malformed_event")] and r.threads == ()


def test_history_skips_user_and_malformed_messages():
    r, _ = feed([history([5, {"id": "u", "catId": None}, {"id": "", "catId": "opus"},
                          {"catId": "opus", "content": "no id"}])])
    assert bubbles(r) == [] and r.threads == ("t1",)


def test_stored_stream_message_finishes_the_live_turn():
    r, _ = feed([announce("T1"), chunk("part"),
                 history([stored("s1", "part and rest", extra={"stream": {"invocationId": "T1"}})]),
                 chunk("late")])
    assert texts(r) == [("T1", "stream", "done", "part and rest")]
    assert reasons(r) == [(4, "stream_after_done")]


def test_stored_stream_message_never_overrides_a_callback():
    r, _ = feed([announce("T1"), callback("cb", "T1", "m1"),
                 history([stored("s1", "stream text", extra={"stream": {"invocationId": "T1"}})])])
    assert texts(r) == [("T1", "callback", "done", "cb")]


def test_drafts_only_fill_turns_without_a_bubble():
    r, _ = feed([announce("T1"), chunk("live"),
                 history([stored("draft-T1", "stale draft", isDraft=True),
                          stored("draft-T2", "fresh draft", cat="codex"),
                          stored("draft-", "no turn"), stored("d3", "no turn", isDraft=True)])])
    assert texts(r) == [("T1", "stream", "streaming", "live"), ("T2", "stream", "streaming", "fresh draft")]


def test_history_callbacks_merge_by_message_id():
    r, _ = feed([announce("T1", timestamp=100), callback("live", "T1", "m1", timestamp=100),
                 history([stored("m1", "edited", origin="callback"),
                          stored("m0", "older", origin="callback", timestamp=1,
                                 extra={"stream": {"invocationId": "T0"}}),
                          stored("m9", "turnless", origin="callback")])])
    assert texts(r) == [("T0", "callback", "done", "older"), ("T1", "callback", "done", "edited")]
    # 1.1: the stored callback without its turn is refused, the rest of the page applies
    assert [(x.line, x.reason.value) for x in r.rejected] == [(3, "callback_without_invocation")]


def test_a_turnless_stored_callback_is_refused_once_per_message():
    r, changes = feed([history([stored("m8", "a", origin="callback"), stored("x1", "kept"),
                                stored("m9", "b", origin="callback")])])
    assert [(x.line, x.reason.value) for x in r.rejected] == [
        (1, "callback_without_invocation"), (1, "callback_without_invocation")]
    assert texts(r) == [(None, "stream", "done", "kept")]


def test_a_late_joiners_draft_naming_its_parent_binds_the_turns_chunks():
    draft = stored("draft-T2", "so f", timestamp=10,
                   extra={"stream": {"invocationId": "T2", "parentInvocationId": "P2"}})
    r, _ = feed([history([{**draft, "isDraft": True}]),
                 chunk("ar", parent="P2", timestamp=11), done(parent="P2")])
    assert texts(r) == [("T2", "stream", "done", "so far")]
    assert not r.rejected


def test_a_draft_announces_only_a_turn_the_thread_does_not_know():
    # T1 is known (announced under P1, closed by done): the draft must not reopen it
    # nor move parent P9 onto it.
    draft = stored("draft-T1", "old draft", extra={"stream": {"parentInvocationId": "P9"}})
    r, _ = feed([announce("T1", parent="P1"), chunk("live"),
                 done(), history([{**draft, "isDraft": True}]),
                 chunk("stray", parent="P9")])
    assert texts(r) == [("T1", "stream", "done", "live")]
    assert [x.reason.value for x in r.rejected] == ["unbound_event"]
    assert r.open_turn("t1", "opus") is None


def test_a_stored_explicit_post_never_becomes_the_primary():
    # Section 7 applies a stored callback "exactly as a callback"; section 4.3 says an
    # explicit post never becomes or replaces the primary bubble.
    turn = {"stream": {"invocationId": "T1"}}
    r, _ = feed([announce("T1", timestamp=1), chunk("stream", timestamp=2),
                 history([stored("m5", "explicit", origin="callback", timestamp=3,
                                 extra={"isExplicitPost": True, **turn}),
                          stored("m6", "final", origin="callback", timestamp=4, extra=turn)])])
    assert [(b.origin.value, b.message_id, b.text) for b in r.bubbles("t1")] == [
        ("callback", "m6", "final"), ("callback", "m5", "explicit")]


def test_turnless_stored_messages_are_keyed_by_their_id():
    r, _ = feed([history([stored("x1", "v1")]), history([stored("x1", "v2"), stored("x2", "w")])])
    assert texts(r) == [(None, "stream", "done", "v2"), (None, "stream", "done", "w")]
    assert [b["message_id"] for b in bubbles(r)] == [None, None]


def test_history_timestamps_count_as_seen():
    r, _ = feed([history([stored("x1", "v", timestamp=5000)]), msg("system_info", content="after")])
    assert [b.sort_key[0] for b in r.bubbles("t1")] == [5000, 5000]


# ---------------------------------------------------------------- changes and API

def test_changes_describe_each_step():
    r = Reconciler()
    assert r.receive_message(announce("T1")) == (TurnOpened("t1", "opus", "T1", 1, 0),)
    (added,) = r.receive_message(chunk("a"))
    (appended,) = r.receive_message(chunk("b"))
    (closed, stopped) = r.receive_message(done())
    assert stopped == TurnClosed("t1", "opus", "T1", TurnEnd.DONE, 4)
    (rejected,) = r.receive_message(chunk("c"))
    (replaced,) = r.receive_message(callback("final", "T1", "m1"))
    (superseded,) = r.receive_message(chunk("d", turnInvocationId="T1"))
    assert isinstance(added, BubbleAdded) and added.line == 2
    assert isinstance(appended, BubbleUpdated) and (appended.how, appended.delta) == (Update.APPENDED, "b")
    assert closed.how is Update.CLOSED
    assert isinstance(rejected, Rejected) and rejected.reason is Reason.STREAM_AFTER_DONE
    assert replaced.how is Update.REPLACED and replaced.bubble is added.bubble
    assert superseded == Superseded(7, "t1", "T1")
    assert r.stats.superseded == 1


def test_lines_straight_from_a_file_keep_their_numbers(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(announce("T1")) + "\n\n  \r\n" + json.dumps(chunk("x")) + "\n{bad\n")
    r = Reconciler()
    with open(path, "rb") as f:
        assert r.feed(f) == 5
    assert texts(r) == [("T1", "stream", "streaming", "x")]
    assert reasons(r) == [(5, "malformed_line")]


def test_in_process_subclasses_of_dict_and_str_are_accepted():
    import collections

    class Id(str):
        pass

    r = Reconciler()
    r.receive_message(collections.OrderedDict(announce("T1")))
    r.receive_message({"event": "agent_message", "data": collections.OrderedDict(
        chunk("x", None, turnInvocationId=Id("T1"))["data"])})
    assert r.rejected == () and texts(r) == [("T1", "stream", "streaming", "x")]


def test_many_blocks_on_one_bubble_stay_unique_and_ordered():
    r, _ = feed([announce("T1")] + [block(f"k{i % 500}", invocationId="P1") for i in range(2000)])
    assert bubbles(r)[0]["blocks"] == [f"k{i}" for i in range(500)]


def test_lines_count_blank_lines_and_messages():
    r = Reconciler()
    r.receive_line(b"")
    r.receive_line("   ")
    r.receive_message({"event": "heartbeat", "data": {}})
    (rej,) = r.receive_line(b"{bad")
    assert rej.line == 4 and r.lines == 4 and r.stats.events == 1


def test_feed_takes_lines_with_their_newlines():
    r = Reconciler()
    assert r.feed([json.dumps(announce("T1")) + "\n", json.dumps(chunk("x")).encode() + b"\n"]) == 2
    assert texts(r) == [("T1", "stream", "streaming", "x")]


@pytest.mark.parametrize("thing", [None, 3, ["event"], "text", {"event": 1, "data": {}},
                                   {"event": "x"}, {"event": "x", "data": []}])
def test_receive_message_refuses_what_is_not_an_event(thing):
    r = Reconciler()
    (rej,) = r.receive_message(thing)
    assert rej.reason is Reason.MALFORMED_LINE


def test_misusing_the_api_raises():
    r = Reconciler()
    with pytest.raises(LocalProtocolError):
        r.receive({"event": "agent_message", "data": {}})
    with pytest.raises(LocalProtocolError):
        r.receive_line(42)
    with pytest.raises(KeyError):
        r.bubbles("nope")
    with pytest.raises(KeyError):
        r.bubble("b1")


def test_logs_are_live_views_that_copy_nothing():
    r = Reconciler()
    rejected, gaps = r.rejected, r.gaps
    assert rejected == () and gaps == [] and len(rejected) == 0
    r.receive_message(chunk("orphan"))
    r.receive_message(announce("T1", seq=1))
    r.receive_message(chunk("x", seq=3))
    assert len(rejected) == 1 and rejected[0].reason is Reason.UNBOUND_EVENT
    assert gaps == (Gap("t1", 1, 3),) and list(gaps)[0].line == 3
    assert rejected != "not a log" and "LogView" in repr(gaps)


# One event for each place the engine refuses: _refuse (malformed line and event, a
# live callback without its turn, stream after done), _unbound, the fast path's own
# unbound refusal, and a stored callback without its turn.
EVERY_REFUSAL = [
    b"{bad",
    msg("text", thread=5, content="x", origin="stream"),
    announce("T1", "P1"),
    chunk("x", "P-unknown"),
    msg("tool_use", invocationId="P-unknown", toolName="grep", toolInput={}),
    msg("system_info", content=json.dumps({"type": "thinking", "text": "hm"}),
        invocationId="P-unknown"),
    callback("y", None),
    done("P1"),
    chunk("late", None, turnInvocationId="T1"),
    {"event": "history", "data": {"threadId": "t1", "messages": [
        {"id": "c1", "type": "assistant", "catId": "opus", "content": "cb", "timestamp": 1,
         "origin": "callback"}]}},
]


def receive_all(events, r=None):
    """Feed ``events`` (bytes as lines) one call each; return the engine and the
    refusals those calls returned."""
    r = r if r is not None else Reconciler()
    returned = []
    for event in events:
        changes = r.receive_line(event) if isinstance(event, bytes) else r.receive_message(event)
        returned += [c for c in changes if isinstance(c, Rejected)]
    r._check()
    return r, returned


def test_rejected_holds_values_equal_to_the_refusals_handed_out():
    r, returned = receive_all(EVERY_REFUSAL)
    assert {x.reason for x in returned} == set(Reason)
    assert len(returned) == 8 and [x.line for x in returned] == [1, 2, 4, 5, 6, 7, 9, 10]
    assert list(r.rejected) == returned and r.rejected == returned
    for i, x in enumerate(returned):
        made = r.rejected[i]
        # A new value each read, equal in every way to the one returned.
        assert made == x and made is not x and made is not r.rejected[i]
        assert made.reason is x.reason and type(made) is Rejected
        assert repr(made) == repr(x) and made.to_dict() == x.to_dict() and hash(made) == hash(x)
    assert r.to_dict()["rejected"] == [x.to_dict() for x in returned]
    # The batch path builds no change objects; its log reads the same.
    batch = Reconciler()
    batch.feed(e if isinstance(e, bytes) else json.dumps(e) for e in EVERY_REFUSAL)
    assert batch.rejected == returned and batch.to_dict() == r.to_dict()


def test_the_refusal_log_is_lines_beside_plain_tuples_the_collector_does_not_keep():
    import gc

    r, returned = receive_all(EVERY_REFUSAL)
    gc.collect()
    lines, whys = r._refusal_lines, r._refusals
    assert lines == [x.line for x in returned]
    assert whys == [(x.reason.value, x.detail, x.thread) for x in returned]
    for reason, detail, thread in whys:
        assert reason.__class__ is str and detail.__class__ is str
        assert thread is None or thread.__class__ is str
    assert not any(gc.is_tracked(why) for why in whys)


def test_repeated_refusals_share_one_logged_tuple():
    # A late joiner's unbound chunks and the stored callback it meets on every page:
    # each refusal costs two list slots and no new object.
    r = Reconciler()
    page = {"event": "history", "data": {"threadId": "t1", "messages": [
        {"id": "m1", "catId": "opus", "content": "hi", "origin": "callback"},
    ]}}
    for n in range(3):
        r.receive_message({"event": "agent_message", "data": {
            "type": "text", "threadId": "t1", "catId": "opus", "content": f"c{n}",
            "origin": "stream", "invocationId": "never-announced",
        }})
        r.receive_message(page)
    r._check()
    whys = r._refusals
    assert [why[0] for why in whys] == ["unbound_event", "callback_without_invocation"] * 3
    assert whys[0] is whys[2] is whys[4] and whys[1] is whys[3] is whys[5]
    assert r._refusal_lines == [1, 2, 3, 4, 5, 6]
    assert [x.line for x in r.rejected] == [1, 2, 3, 4, 5, 6]


def test_the_refusal_view_is_a_live_read_only_sequence():
    r = Reconciler()
    view = r.rejected
    assert view == [] and view == () and len(view) == 0 and list(view) == []
    with pytest.raises(IndexError):
        view[0]
    _, returned = receive_all(EVERY_REFUSAL, r)
    assert len(view) == 8 and view == tuple(returned) and view == r.rejected
    assert view[-1] == returned[-1] and view[2:4] == returned[2:4] and view[::-3] == returned[::-3]
    assert type(view[1:3]) is list and view[5:2] == []
    assert list(reversed(view)) == returned[::-1] and returned[3] in view
    assert view.index(returned[4]) == 4 and view.count(returned[0]) == 1
    assert view != returned[:-1] and view != "not a log" and view != {"line": 1}
    assert repr(view) == f"LogView({returned!r})"
    with pytest.raises(TypeError):
        view[0] = returned[0]  # type: ignore[index]
    with pytest.raises(TypeError):
        hash(view)


def test_copies_and_pickles_of_an_engine_keep_its_refusals():
    import copy
    import pickle

    r, returned = receive_all(EVERY_REFUSAL)
    for other in (copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
        assert other.rejected == returned and other.to_dict() == r.to_dict()
        assert other._refusal_lines == r._refusal_lines
        assert all(why.__class__ is tuple for why in other._refusals)
        other._check()


def test_str_subclass_ids_give_the_same_refusals_as_plain_strings():
    class Name(str):
        pass

    def wrapped(event):
        if isinstance(event, bytes) or event["event"] != "agent_message":
            return event
        data = dict(event["data"])
        for key in ("threadId", "catId", "invocationId"):
            if isinstance(data.get(key), str):
                data[key] = Name(data[key])
        return {"event": "agent_message", "data": data}

    plain, returned = receive_all(EVERY_REFUSAL)
    subclass, returned_too = receive_all([wrapped(e) for e in EVERY_REFUSAL])
    assert returned_too == returned and subclass.rejected == plain.rejected
    assert repr(subclass.rejected) == repr(plain.rejected)
    assert subclass.to_dict() == plain.to_dict()
    assert json.dumps(subclass.to_dict()) == json.dumps(plain.to_dict())


def test_bubble_lookup_and_views():
    r, _ = feed([announce("T1"), chunk("x"), callback("y", "T2")])
    view = r.bubbles("t1")
    assert len(view) == 2 and view[-1].text == "y" and [b.text for b in view[0:1]] == ["x"]
    assert r.bubble(view[0].id) is view[0]
    assert "ThreadBubbles" in repr(view) and "b1" in repr(view[0])
    assert r.open_turn("nope", "opus") is None


def test_a_long_stream_appends_without_recopying():
    r = Reconciler()
    r.receive_message(announce("T1"))
    for i in range(10_000):
        r.receive_message(chunk(f"{i % 10}"))
    (b,) = r.bubbles("t1")
    assert len(b._text) == 10_000, "chunks are kept as parts until read"
    assert b.text == "0123456789" * 1000 and b._text.__class__ is str, "joined once, kept"
    r.receive_message(chunk("!"))
    assert b.text.endswith("9!")


def test_refusals_name_their_thread_when_the_event_did():
    r, _ = feed([chunk("orphan", thread="t2"), msg("text", thread="t3", content=5),
                 {"event": "history", "data": {"threadId": "t4"}},
                 {"event": "agent_message", "data": {"type": "text", "threadId": 7, "catId": "x"}}])
    r.receive_line(b"{bad")
    assert [(x.reason.value, x.thread) for x in r.rejected] == [
        ("unbound_event", "t2"), ("malformed_event", "t3"), ("malformed_event", "t4"),
        ("malformed_event", None), ("malformed_line", None)]
    assert "thread" not in r.rejected[0].to_dict(), "the section 9 document is unchanged"


# ---------------------------------------------------------------- turn activity


def _activity(changes):
    return [c for c in changes if isinstance(c, (TurnOpened, TurnClosed))]


def test_a_callback_mid_turn_leaves_the_turn_running_until_done():
    r = Reconciler()
    r.receive_message(announce("T1", timestamp=1000))
    r.receive_message(chunk("working"))
    assert _activity(r.receive_message(callback("final", "T1", "m1"))) == []
    assert r.bubbles("t1")[0].status == "done"
    assert [t.turn for t in r.running_turns("t1")] == ["T1"]
    r.receive_message(msg("tool_use", toolName="grep", invocationId="P1"))
    assert [t.turn for t in r.running_turns("t1")] == ["T1"]
    assert _activity(r.receive_message(done())) == [
        TurnClosed("t1", "opus", "T1", TurnEnd.DONE, 5)]
    assert r.running_turns("t1") == ()


def test_a_late_joiner_sees_a_replaced_turn_stop_running_at_its_stored_message():
    # Seen on the real server: the client joined mid-turn (the draft names the parent),
    # the callback replaced the bubble, and the turn's `done` carries only the parent
    # id... which does bind here; but a client that missed it (or a server without the
    # parent on the draft) learns the turn ended from the stored stream message.
    draft = stored("draft-T1", "so far", extra={"stream": {"invocationId": "T1"}},
                   isDraft=True, timestamp=10)
    r = Reconciler()
    assert _activity(r.receive_message(history([draft]))) == [
        TurnOpened("t1", "opus", "T1", 1, 10)]
    r.receive_message(callback("final", "T1", "m1", timestamp=20))
    assert [t.turn for t in r.running_turns("t1")] == ["T1"]
    final = stored("s1", "streamed in full", extra={"stream": {"invocationId": "T1"}},
                   timestamp=30)
    assert _activity(r.receive_message(history([final]))) == [
        TurnClosed("t1", "opus", "T1", TurnEnd.STORED, 3)]
    assert r.running_turns("t1") == ()
    assert texts(r) == [("T1", "callback", "done", "final")]  # the callback still wins


def test_running_turn_says_since_when_and_which_line():
    r = Reconciler()
    r.receive_message(chunk("x", parent=None, turnInvocationId="T9", timestamp=70))
    assert r.running_turns("t1") == (RunningTurn("t1", "opus", "T9", 70, 1),)
    assert r.running_turns("nowhere") == ()


def test_a_callback_alone_does_not_open_a_turn_and_one_that_never_ran_closes_silently():
    r = Reconciler()
    assert _activity(r.receive_message(callback("final", "T1"))) == []
    assert r.running_turns("t1") == ()
    assert _activity(r.receive_message(msg("done", turnInvocationId="T1"))) == []


@pytest.mark.parametrize("closing,how", [
    (done(), TurnEnd.DONE),
    (msg("error", error="boom", invocationId="P1"), TurnEnd.ERROR),
    (announce("T2"), TurnEnd.SUPERSEDED),
    ({"event": "history", "data": {"threadId": "t1", "messages": [
        {"id": "s1", "catId": "opus", "content": "all", "extra": {"stream": {"invocationId": "T1"}}}
    ]}}, TurnEnd.STORED),
])
def test_each_way_a_turn_stops_running(closing, how):
    r = Reconciler()
    r.receive_message(announce("T1"))
    closed = [c for c in r.receive_message(closing) if isinstance(c, TurnClosed)]
    assert closed == [TurnClosed("t1", "opus", "T1", how, 2)]
    assert "T1" not in [t.turn for t in r.running_turns("t1")]


def test_a_draft_opens_its_turn():
    r = Reconciler()
    page = {"event": "history", "data": {"threadId": "t1", "messages": [
        {"id": "draft-T1", "catId": "opus", "content": "so far", "isDraft": True,
         "timestamp": 40}]}}
    assert _activity(r.receive_message(page)) == [TurnOpened("t1", "opus", "T1", 1, 40)]


def test_interrupt_closes_running_turns_and_stops_streaming():
    r = Reconciler()
    r.receive_message(announce("T1"))
    r.receive_message(chunk("half"))
    r.receive_message(announce("T2", parent="P2", cat="sonnet"))
    changes = r.interrupt("t1")
    assert r.lines == 3, "interrupt uses no line number"
    assert [(c.turn, c.how, c.line) for c in _activity(changes)] == [
        ("T1", TurnEnd.INTERRUPTED, 3), ("T2", TurnEnd.INTERRUPTED, 3)]
    (updated,) = [c for c in changes if isinstance(c, BubbleUpdated)]
    assert updated.how is Update.CLOSED and updated.bubble.status == "done"
    assert r.running_turns("t1") == ()
    assert r.interrupt("t1") == () and r.interrupt("nowhere") == ()
    (refused,) = r.receive_message(chunk("more"))
    assert refused.reason is Reason.STREAM_AFTER_DONE


def test_feed_ends_where_receive_line_does_on_every_kind_of_line():
    # feed takes the usual line straight to its handler; everything else (blank,
    # malformed, not an object, other events, pages with integers beyond 64 bits)
    # through receive_line's own path. Same state, same refusals, same counts.
    huge = 10**20  # orjson alone reads it as 1e+20

    def page(messages, thread="t1"):
        return {"event": "history", "data": {"threadId": thread, "messages": messages}}

    events = [
        announce("T1"), chunk("a", turnInvocationId="T1", timestamp=huge),
        chunk("b", parent="P9"), callback("final", "T1", "m1"), done(turnInvocationId="T1"),
        page([{"id": "s1", "catId": "opus", "content": "x", "timestamp": huge}]),
        page([{"id": "s2", "catId": "opus", "content": "y", "timestamp": -huge},
              {"id": "s3", "catId": "opus", "content": "z", "timestamp": 1.5}]),
        page([{"id": "s4", "catId": "opus", "origin": "callback", "content": "w"}, 7]),
        page("not a list"), {"event": "history", "data": []},
        {"event": "intent_mode", "data": {"threadId": "t2"}}, {"event": 3, "data": {}},
        {"data": {}}, [1, 2], msg("text", content=5), msg("tool_use", toolInput={"n": huge}),
        msg("done", seq=1, seqEpoch=huge), msg("done", seq=1, seqEpoch=huge + 1),
    ]
    lines = [json.dumps(e).encode() for e in events]
    lines += [b"", b"  \n", b"{not json", b'{"event": "x", "data": 1e999}', "\u00e9".encode()]
    fed, one_by_one = Reconciler(), Reconciler()
    assert fed.feed(iter(lines)) == len(lines)
    for line in lines:
        one_by_one.receive_line(line)
    assert fed.to_dict() == one_by_one.to_dict()
    assert list(fed.rejected) == list(one_by_one.rejected) and len(fed.rejected) > 5
    assert list(fed.gaps) == list(one_by_one.gaps)
    assert fed.lines == one_by_one.lines == len(lines)
    assert {h: [b.sort_key[:2] for b in fed.bubbles(h)] for h in fed.threads} == {
        h: [b.sort_key[:2] for b in one_by_one.bubbles(h)] for h in one_by_one.threads}
    assert any(b.sort_key[0] == huge for b in fed.bubbles("t1"))


def test_feed_check_and_receive_line_agree_on_pages_deeper_than_the_exact_decoder_reads():
    # orjson reads 1000 levels, the standard library's exact decode does not. A page
    # that holds a 20-digit number but no float timestamp needs no exact decode: merged
    # by every entry point. One with a float timestamp is refused as malformed_line by
    # every entry point, having changed nothing (not even the message before it, nor
    # its thread).
    from reconcile import check_lines

    deep = "[" * 1000 + "]" * 1000
    first = '{"id":"m1","catId":"opus","content":"x","timestamp":5}'
    pages = [
        '{"id":"m2","catId":"opus","content":"y","timestamp":6,"n":100000000000000000000,'
        '"deep":' + deep + "}",
        '{"id":"m3","catId":"opus","content":"z","timestamp":100000000000000000000,'
        '"deep":' + deep + "}",
    ]
    for second, refused in zip(pages, ([], ["malformed_line"])):
        line = '{"event":"history","data":{"threadId":"t1","messages":[' + first + "," + second + "]}}"
        fed, one_by_one = Reconciler(), Reconciler()
        fed.feed([line])
        one_by_one.receive_line(line)
        report = check_lines([line])
        assert fed.to_dict() == one_by_one.to_dict()
        assert [r.reason.value for r in one_by_one.rejected] == refused
        assert [r.reason.value for r in report.rejected] == refused
        if refused:
            assert fed.threads == one_by_one.threads == () and "t1" not in report.threads
            assert fed.stats.events == report.events == 0
        else:
            assert report.threads["t1"].bubbles == len(fed.bubbles("t1")) == 2


@pytest.mark.parametrize("junk", ['"junk"', "[1]", "7", None])
def test_a_page_with_a_timestamp_beyond_64_bits_is_ordered_by_its_exact_value(junk):
    # orjson reads 10**20 as a float; the page is then merged from the exact decode,
    # whether or not it also holds a message that is not an object (the one-pass
    # test over the messages falls back for those): m1 sorts after m2.
    messages = [junk] if junk else []
    messages += [
        '{"id":"m1","catId":"opus","content":"x","timestamp":100000000000000000000}',
        '{"id":"m2","catId":"opus","content":"y","timestamp":7}',
    ]
    line = '{"event":"history","data":{"threadId":"t1","messages":[' + ",".join(messages) + "]}}"
    fed, one, exact = Reconciler(), Reconciler(), Reconciler()
    fed.feed([line])
    one.receive_line(line)
    exact.receive_message(json.loads(line))
    assert [b.text for b in fed.bubbles("t1")] == ["y", "x"]
    assert fed.to_dict() == one.to_dict() == exact.to_dict()


def test_events_alternating_between_threads_land_in_their_own_thread():
    # The fast path looks at the last event's thread first (_last_thread).
    r = Reconciler()
    for thread in ("t1", "t2", "t3"):
        r.receive_message(announce(f"T-{thread}", thread=thread))
    for i in range(4):
        for thread in ("t1", "t2", "t1", "t3"):
            r.receive_message(chunk(f"{thread}.{i} ", thread=thread))
            r._check()
    assert [b.text for b in r.bubbles("t1")] == ["".join(f"t1.{i} t1.{i} " for i in range(4))]
    assert [b.text for b in r.bubbles("t2")] == ["".join(f"t2.{i} " for i in range(4))]
    assert [b.text for b in r.bubbles("t3")] == ["".join(f"t3.{i} " for i in range(4))]


def test_the_last_thread_shortcut_keeps_only_a_plain_string_id():
    # A str subclass that calls itself equal to every string: kept as the last
    # thread, it would take every later event of any thread.
    class Greedy(str):
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        __hash__ = str.__hash__

    r = Reconciler()
    r.receive_message(announce("T1", thread=Greedy("t1")))  # the general path makes t1
    r.receive_message(announce("T2", thread="t2"))
    r.receive_message(chunk("one", thread="t1"))  # found by the dict: the Greedy thread
    r._check()
    assert r._last_thread.id.__class__ is str or r._last_thread.id is None
    r.receive_message(chunk("two", thread="t2"))
    r._check()
    assert [b.text for b in r.bubbles("t2")] == ["two"]
    assert [b.text for b in r.bubbles("t1")] == ["one"]


def test_receive_message_given_its_line_reads_a_big_integer_exactly():
    # orjson reads an integer beyond 64 bits as a float; with the line beside the
    # decoded message, the engine reads the value from the line, as receive_line does.
    import orjson

    lines = [
        json.dumps(announce("T1", timestamp=10**20)).encode(),
        json.dumps(chunk("hi", timestamp=10**20 + 1)).encode(),
    ]
    by_line = Reconciler()
    for line in lines:
        by_line.receive_line(line)
    with_raw, without = Reconciler(), Reconciler()
    returned = [with_raw.receive_message(orjson.loads(line), line) for line in lines]
    for line in lines:
        without.receive_message(orjson.loads(line))
    assert with_raw.to_dict() == by_line.to_dict() and not with_raw.rejected
    assert [type(c).__name__ for c in returned[1]] == ["BubbleAdded"]
    # Without it, the float is what the engine got: refused, as any float timestamp.
    assert [r.reason.value for r in without.rejected] == ["malformed_event"] * 2


class _UncomparableName:
    """An event name from an in-process caller that cannot be compared."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparisons")

    __hash__ = object.__hash__


class _AlwaysEqualName(str):
    """A str subclass whose ``==`` says yes to everything (its ``!=`` is str's)."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


def test_receive_message_reads_the_event_name_only_when_data_is_an_object():
    # Without an object as data the message is malformed whatever its name: refused
    # as a value, the name never compared (so its comparison cannot raise).
    r = Reconciler()
    (rej,) = r.receive_message({"event": _UncomparableName(), "data": ["x"]})
    assert rej.reason is Reason.MALFORMED_LINE and r.stats.events == 0


def test_receive_message_routes_by_the_names_equality_as_the_general_path_does():
    # The event name is compared with == alone, as everywhere else: a name that
    # equals "agent_message" is an agent_message, whatever its != says.
    event = chunk("hi", timestamp=5)
    r = Reconciler()
    (rej,) = r.receive_message({"event": _AlwaysEqualName("other"), "data": event["data"]})
    assert rej.reason is Reason.UNBOUND_EVENT  # a stream chunk of no known turn


def test_copies_and_pickles_of_an_engine_before_its_first_chunk_keep_its_invariants():
    # Before the fast path has met a thread, the engine's last thread is the marker
    # of none: a copy or a pickle keeps that marker, not a stray thread of no id.
    import copy
    import pickle

    fresh = Reconciler()
    paged = Reconciler()
    paged.receive_message({"event": "history", "data": {"threadId": "t1", "messages": []}})
    for r in (fresh, paged):
        for other in (copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
            other._check()
            other.receive_message(chunk("hi"))
            other._check()


def test_chunks_append_to_a_bubble_whose_first_text_was_a_str_subclass():
    # An in-process caller's first chunk may be a str subclass (the general path
    # takes it as it is); the chunks after it append, on either path, without the
    # text being read in between.
    class Text(str):
        pass

    plain, sub = Reconciler(), Reconciler()
    for r, wrap in ((plain, str), (sub, Text)):
        r.receive_message(announce("T1"))
        r.receive_message(chunk(wrap("a")))
        r.receive_message(chunk("b"))  # the fast path
        r.receive_message(chunk(wrap("c")))  # the general path
        r.receive_message(chunk("d"))
    assert texts(sub) == texts(plain) == [("T1", "stream", "streaming", "abcd")]
    assert sub.to_dict() == plain.to_dict()


def test_a_subclass_overriding_receive_message_is_not_called_for_lines_or_typed_events():
    # receive_line and receive take the engine's own path, as they always did.
    seen = []

    class Logged(Reconciler):
        def receive_message(self, message):  # type: ignore[override]
            seen.append(message)
            return super().receive_message(message)

    r = Logged()
    r.receive_line(json.dumps(announce("T1")))
    r.receive(AgentMessage(type="text", thread="t1", cat="opus", content="hi",
                           origin="stream", invocation_id="P1"))
    assert seen == [] and [b.text for b in r.bubbles("t1")] == ["hi"]
    r.receive_message(chunk(" there"))
    assert len(seen) == 1 and [b.text for b in r.bubbles("t1")] == ["hi there"]
