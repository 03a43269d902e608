"""History pages: the merge loop's shortcuts give what merging each message gives.

``_history`` merges each stored message in its loop: it skips a message without a
``catId`` first, and passes a message read again by without the table where the
table's row says it changes nothing. These tests pin that the shortcuts and the full
merge agree, and the exact-type rules the stored-message reader keeps.
"""

from __future__ import annotations

import json
from typing import Any

from reconcile import Reconciler, check_lines

from .helpers import feed


class Message(dict):  # an in-process caller's dict subclass: read as a dict
    pass


def page(*messages, thread="t1"):
    return {"event": "history", "data": {"threadId": thread, "messages": list(messages)}}


def stored(mid, content, cat="opus", ts=100, **kw):
    return {"id": mid, "type": "assistant", "catId": cat, "content": content,
            "timestamp": ts, **kw}


def user(mid, content, ts=50):
    return {"id": mid, "type": "user", "catId": None, "content": content, "timestamp": ts}


def test_user_messages_make_no_bubble_and_do_not_move_the_threads_clock():
    r, (changes,) = feed([page(user("u1", "hi", ts=900), stored("m1", "answer", ts=100),
                               {"id": "u2", "content": "no catId at all", "timestamp": 950})])
    assert [b.text for b in r.bubbles("t1")] == ["answer"]
    assert len(changes) == 1 and r._threads["t1"].max_ts == 100
    assert list(r.rejected) == []


def test_a_dict_subclass_message_is_merged_as_a_dict_is():
    plain, _ = feed([page(stored("m1", "one"), user("u1", "hi"), stored("m2", "two", ts=99))])
    subclass, _ = feed([page(Message(stored("m1", "one")), Message(user("u1", "hi")),
                             Message(stored("m2", "two", ts=99)))])
    assert plain.to_dict() == subclass.to_dict()
    assert [b.text for b in subclass.bubbles("t1")] == ["two", "one"]


def test_a_message_whose_catid_is_not_a_string_makes_nothing():
    r, (changes,) = feed([page(stored("m1", "x", cat=5), stored("m2", "y", cat=["opus"]),
                               stored("m3", "z", cat=""), "not a message", None, 7)])
    # An empty string is a string: the agent "" gets its bubble.
    assert [(b.cat, b.text) for b in r.bubbles("t1")] == [("", "z")]
    assert len(changes) == 1


def test_only_an_exact_int_timestamp_counts():
    r, _ = feed([page(stored("m1", "first", ts=500)),
                 page(stored("m2", "bool", ts=True), stored("m3", "float", ts=7.0),
                      stored("m4", "str", ts="9"))])
    # Each takes the thread's largest timestamp so far (500), so they follow m1.
    assert [(b.sort_key[0], b.text) for b in r.bubbles("t1")] == [
        (500, "first"), (500, "bool"), (500, "float"), (500, "str")]


def test_what_a_page_lacked_is_counted_as_before_with_user_messages_between():
    lines = [json.dumps(page(user("u1", "hi"), stored("c1", "cb", origin="callback"),
                             user("u2", "again"), stored("draft-T9", "draft", isDraft=True),
                             stored("c2", "cb2", origin="callback",
                                    extra={"stream": {"invocationId": "T3"}})))]
    report = check_lines(lines)
    r = Reconciler()
    r.receive_line(lines[0])
    assert [x.reason.value for x in r.rejected] == ["callback_without_invocation"]
    rules = {rule.key: rule.count for rule in report.rules}
    assert rules["stored_callback_without_turn"] == 1
    assert rules["draft_without_parent"] == 1


def test_draft_ids_are_told_by_their_whole_prefix_as_the_reference_tells_them():
    from reconcile.testing.reference import replay

    from .helpers import without_details

    events = [
        page(stored("d-1", "starts with d"), stored("drafty", "not a draft id"),
             stored("draft-", "the bare prefix"), stored("draft-T1", "a draft"),
             stored("draft-T2", "flagged too", isDraft=True),
             stored("dr", "short", origin="callback"),
             stored("draft-T3", "a stored callback", origin="callback"),
             stored("m9", "flagged, plain id", isDraft=True,
                    extra={"stream": {"invocationId": "T4"}})),
    ]
    r, _ = feed(events)
    assert without_details(r.to_dict()) == without_details(replay(events))
    texts = {b.text: b.invocation for b in r.bubbles("t1")}
    assert texts["starts with d"] is None and texts["not a draft id"] is None
    assert texts["a draft"] == "T1" and texts["flagged, plain id"] == "T4"
    assert "the bare prefix" not in texts  # a draft that names no turn fills nothing
    report = check_lines([json.dumps(e) for e in events])
    rules = {rule.key: rule.count for rule in report.rules}
    assert rules["draft_without_parent"] == 4
    assert rules["stored_callback_without_turn"] == 2


def test_a_stored_callback_without_its_turn_is_refused_on_every_page_with_one_wording():
    # The wording of such a refusal is kept per (agent, message id) once made, since a
    # client that joined mid-turn reads the same page again and again; every page's
    # refusal says the same, and an agent named by a str subclass (an in-process
    # caller's, with its own repr) words its own and never fills the store.
    class Cat(str):
        def __repr__(self) -> str:
            return f"Cat<{str(self)}>"

    callback = stored("m-1", "the answer", origin="callback")
    engine = Reconciler()
    details = []
    for _ in range(3):
        details += [c.detail for c in engine.receive_message(page(callback))]
    expected = (
        "stored callback 'm-1' from 'opus' carries no turn id "
        "(extra.stream.invocationId); it is never guessed"
    )
    assert details == [expected] * 3
    odd = json.loads(json.dumps(callback))
    odd["catId"] = Cat("opus")
    fresh = Reconciler()
    assert [c.detail for c in fresh.receive_message(page(odd))] == [
        expected.replace("'opus'", "Cat<opus>")
    ]
    assert [c.detail for c in fresh.receive_message(page(callback))] == [expected]


# ------------------------------------------------- a page read again: the shortcuts
#
# _history passes a draft or a stored stream message of a known turn by without
# the table when the table's row says it changes nothing (a client that joined
# mid-turn reads the same page about once a second). Each shortcut must do exactly
# what the full merge does: here every turn state is set by hand, and an engine with
# the shortcuts switched off (the sets emptied) is the reference.

import pytest  # noqa: E402

from reconcile import _history  # noqa: E402
from reconcile._bubbles import Status  # noqa: E402
from reconcile._turns import TRANSITIONS, Action, Activity, TurnInput, TurnState  # noqa: E402

from .test_hot_path import describe, final_state  # noqa: E402
from .test_shortcuts import reference_agrees  # noqa: E402

SHORTCUT_SETS = ("_DRAFT_CHANGES_NOTHING", "_STORED_CHANGES_NOTHING", "_STORED_SETS_TEXT")

ANNOUNCE = {"event": "agent_message", "data": {
    "type": "system_info", "threadId": "t1", "catId": "opus", "invocationId": "P",
    "content": json.dumps({"type": "invocation_created", "invocationId": "T"}),
}}
CHUNK = {"event": "agent_message", "data": {
    "type": "text", "threadId": "t1", "catId": "opus", "content": "seen live",
    "origin": "stream", "timestamp": 200, "turnInvocationId": "T",
}}


def engine_with_turn(state: TurnState, bubble: str | None) -> Reconciler:
    """An engine whose turn T of thread t1 is in ``state``; ``bubble`` is None (no
    primary), "streaming" or "done" (the primary's status; its text "seen live")."""
    engine = Reconciler()
    engine.receive_message(ANNOUNCE)
    if bubble is not None:
        engine.receive_message(CHUNK)
        engine._threads["t1"].turns["T"].primary.status = Status(bubble)
    engine._threads["t1"].turns["T"].state = state
    return engine


def turns_of(engine: Reconciler) -> dict[str, Any]:
    return {t: (turn.state, turn.primary is not None)
            for t, turn in engine._threads["t1"].turns.items()}


STORED = {
    "draft": lambda text: stored("draft-T", text, isDraft=True,
                                 extra={"stream": {"invocationId": "T"}}),
    "draft, id only": lambda text: stored("draft-T", text),
    "stored stream message": lambda text: stored("m1", text,
                                                 extra={"stream": {"invocationId": "T"}}),
    "stored callback": lambda text: stored("m2", text, origin="callback",
                                           extra={"stream": {"invocationId": "T"}}),
}


@pytest.mark.parametrize("state", list(TurnState))
@pytest.mark.parametrize("bubble", [None, "streaming", "done"])
@pytest.mark.parametrize("kind", sorted(STORED))
@pytest.mark.parametrize("text", ["seen live", "the stored text"])
def test_a_message_read_again_does_what_the_full_merge_does_in_every_state(
    monkeypatch: pytest.MonkeyPatch, state: TurnState, bubble: str | None, kind: str,
    text: str,
) -> None:
    event = page(user("u1", "hi"), STORED[kind](text))
    fast = engine_with_turn(state, bubble)
    fast_changes = [describe(c) for c in fast.receive_message(event)]
    for name in SHORTCUT_SETS:
        monkeypatch.setattr(_history, name, frozenset())
    full = engine_with_turn(state, bubble)
    assert fast_changes == [describe(c) for c in full.receive_message(event)]
    assert final_state(fast) == final_state(full)
    assert fast.stats == full.stats
    assert turns_of(fast) == turns_of(full)


def test_the_page_shortcuts_cover_exactly_the_rows_that_change_nothing() -> None:
    start, stored_message = TurnInput.START, TurnInput.STORED_MESSAGE
    keeps = {s for s in TurnState
             if TRANSITIONS[s, start] == (s, Action.NOTHING, Activity.NONE)}
    assert _history._DRAFT_CHANGES_NOTHING == keeps
    assert TurnState.RUNNING in keeps  # a late joiner's draft, read again
    assert _history._STORED_CHANGES_NOTHING == {
        s for s in TurnState
        if TRANSITIONS[s, stored_message] == (s, Action.NOTHING, Activity.NONE)}
    assert _history._STORED_SETS_TEXT == {
        s for s in TurnState
        if TRANSITIONS[s, stored_message] == (s, Action.SET_TEXT, Activity.NONE)}
    assert TurnState.CLOSED in _history._STORED_SETS_TEXT  # a closed turn's stored text


def test_a_late_joiners_page_read_again_changes_nothing_and_refuses_its_callback_again() -> None:
    # The page a late joiner gets about once a second from a server without the fix:
    # the user's message, the running turn's draft, a stored callback without its turn.
    event = page(user("u1", "hi"),
                 stored("draft-T", "so far", isDraft=True,
                        extra={"stream": {"invocationId": "T"}}),
                 stored("m9", "final", origin="callback"))
    engine = Reconciler()
    first = engine.receive_message(event)
    assert [type(c).__name__ for c in first] == ["TurnOpened", "BubbleAdded", "Rejected"]
    again = engine.receive_message(event)
    assert [type(c).__name__ for c in again] == ["Rejected"]
    assert again[0] == first[2].__class__(2, first[2].reason, first[2].detail, "t1")
    assert [b.text for b in engine.bubbles("t1")] == ["so far"]


def agent(data: dict[str, Any]) -> dict[str, Any]:
    return {"event": "agent_message", "data": {
        "threadId": "t1", "catId": "opus", "timestamp": 300, **data}}


LIVE = {
    "announced": [ANNOUNCE],
    "running": [ANNOUNCE, CHUNK],
    "announced, replaced": [ANNOUNCE, agent({
        "type": "text", "origin": "callback", "content": "cb", "turnInvocationId": "T"})],
    # Never announced: the callback makes the turn, replaced and not running.
    "replaced": [agent({"type": "text", "origin": "callback", "content": "cb",
                        "turnInvocationId": "T"})],
    "replaced, finished": [ANNOUNCE, CHUNK, agent({
        "type": "text", "origin": "callback", "content": "cb", "turnInvocationId": "T"}),
        page(stored("m1", "final", extra={"stream": {"invocationId": "T"}}))],
    "running, replaced": [ANNOUNCE, CHUNK, agent({
        "type": "text", "origin": "callback", "content": "cb", "turnInvocationId": "T"})],
    "done": [ANNOUNCE, CHUNK, agent({"type": "done", "turnInvocationId": "T"})],
    "done, replaced": [ANNOUNCE, CHUNK, agent({
        "type": "text", "origin": "callback", "content": "cb", "turnInvocationId": "T"}),
        agent({"type": "done", "turnInvocationId": "T"})],
}


@pytest.mark.parametrize("live", sorted(LIVE))
@pytest.mark.parametrize("kind", sorted(STORED))
@pytest.mark.parametrize("text", ["seen live", "the stored text", "cb"])
def test_a_page_read_three_times_gives_what_the_reference_model_gives(
    live: str, kind: str, text: str
) -> None:
    # The naive model shares no code with the shortcuts: a page read again after each
    # way a turn can be left by what was seen live.
    event = page(user("u1", "hi"), STORED[kind](text),
                 stored("m9", "final", origin="callback"))
    reference_agrees([*LIVE[live], event, event, CHUNK, event])


def test_a_stored_callback_whose_id_hashes_otherwise_on_each_call_gets_values() -> None:
    # A stored callback without its turn is refused, or sets the text of the bubble
    # that has its message id. An in-process caller's id whose hash changes between
    # calls may answer "known" to one lookup and "unknown" to the next: it must still
    # get a value (a text set or a refusal), never an exception out of receive_message.
    class Flaky(str):
        calls = 0

        def __hash__(self) -> int:
            Flaky.calls += 1
            return str.__hash__(self) if Flaky.calls % 2 else 12345

        __eq__ = str.__eq__

    engine = Reconciler()
    engine.receive_message({"event": "agent_message", "data": {
        "type": "text", "threadId": "t1", "catId": "opus", "content": "cb",
        "origin": "callback", "invocationId": "T1", "messageId": "m1"}})
    event = page(stored(Flaky("m1"), "stored", origin="callback"))
    for _ in range(4):
        changes = engine.receive_message(event)
        assert len(changes) <= 1
        assert all(type(c).__name__ in ("BubbleUpdated", "Rejected") for c in changes)
    engine._check()
