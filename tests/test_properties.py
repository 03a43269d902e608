"""Properties of the engine over generated traces (the protocol).

Each property is checked at *every* position of a generated trace where it applies,
not just once per trace, so one example tests many events.
"""

from __future__ import annotations

import collections
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from reconcile import Duplicate, Reason, Reconciler, Rejected

from . import strategies as gen
from .model import replay

# ---------------------------------------------------------------------- helpers


def snapshot(r: Reconciler) -> dict[str, dict[str, Any]]:
    """Every bubble, by id, as a detached dict."""
    return {b.id: b.to_dict() for h in r.threads for b in r.bubbles(h)}


def body(event: Any) -> dict[str, Any] | None:
    """The data of an agent_message, or None."""
    if isinstance(event, dict) and event.get("event") == "agent_message":
        data = event.get("data")
        if isinstance(data, dict):
            return data
    return None


def callback_identity(event: Any) -> tuple[Any, str] | None:
    """(thread, turn) a callback names (section 4.1), or None if it is no callback."""
    data = body(event)
    if data is None or data.get("type") != "text" or data.get("origin") != "callback":
        return None
    for field in ("turnInvocationId", "invocationId"):
        turn = data.get(field)
        if isinstance(turn, str) and turn:
            return data.get("threadId"), turn
    return None


def is_explicit_post(event: Any) -> bool:
    extra = (body(event) or {}).get("extra")
    return isinstance(extra, dict) and extra.get("isExplicitPost") is True


def fed(events: list[Any]) -> Reconciler:
    r = Reconciler()
    for event in events:
        r.receive_message(event)
    return r


def refused_or_skipped(changes: tuple[Any, ...]) -> bool:
    return any(isinstance(c, (Rejected, Duplicate)) for c in changes)


# ---------------------------------------------------------------------- identity


@gen.FAST
@given(st.data())
def test_callback_never_touches_other_turns(data):
    """Section 4.2: a callback in thread H never touches a bubble of another thread
    or another turn, however many turns began since."""
    pools = data.draw(gen.id_pools(), label="pools")
    trace = data.draw(gen.traces(pools=pools), label="trace")
    extra = data.draw(st.lists(gen.callbacks(pools), max_size=4), label="callbacks")
    trace = trace + extra  # late callbacks after everything else, too
    r = Reconciler()
    for event in trace:
        identity = callback_identity(event)
        before = snapshot(r) if identity is not None else None
        r.receive_message(event)
        if before is None:
            continue
        after = snapshot(r)
        for bubble_id, old in before.items():
            if (old["thread"], old["invocation"]) != identity:
                assert after[bubble_id] == old, f"callback for {identity} changed {bubble_id}"
        for bubble_id in after.keys() - before.keys():
            new = after[bubble_id]
            assert (new["thread"], new["invocation"]) == identity
    r._check()


@gen.FAST
@given(gen.traces(max_size=40))
def test_a_turn_never_has_two_primary_bubbles(trace):
    """Every turn has at most one primary bubble; any other bubble of the turn is a
    second or explicit post (a done callback with no stream-side content)."""
    r = fed(trace)
    r._check()
    stream_bubbles = collections.Counter(
        (b.thread, b.invocation)
        for h in r.threads
        for b in r.bubbles(h)
        if b.origin == "stream" and b.invocation is not None
    )
    assert all(n == 1 for n in stream_bubbles.values()), stream_bubbles
    for h, thread in r._threads.items():
        primaries = {t.id: t.primary for t in thread.turns.values() if t.primary is not None}
        for bubble in r.bubbles(h):
            if bubble.invocation is None:
                assert bubble.origin != "callback" or bubble.message_id is not None
                continue
            if primaries.get(bubble.invocation) is bubble:
                continue
            # Not the primary: a post.
            assert bubble.origin == "callback" and bubble.status == "done", bubble
            assert bubble.tools == () and bubble.thinking == "" and bubble.error is None


# ---------------------------------------------------------------------- redelivery


def _unchanged_except_counters(before: dict, after: dict, duplicate: bool) -> None:
    assert after["threads"] == before["threads"]
    assert after["rejected"] == before["rejected"]
    assert after["gaps"] == before["gaps"]
    stats = dict(before["stats"])
    stats["events"] += 1
    stats["duplicates"] += 1 if duplicate else 0
    assert after["stats"] == stats


@gen.FAST
@given(gen.traces(max_size=25))
def test_redelivered_callback_is_a_no_op(trace):
    """A callback delivered twice in a row changes nothing the second time (a
    redelivery sets the same text again), except an explicit post without messageId,
    which by section 4.3 is a new bubble each time."""
    for i, event in enumerate(trace):
        if callback_identity(event) is None:
            continue
        if is_explicit_post(event) and not (body(event) or {}).get("messageId"):
            continue
        r = fed(trace[:i])
        first = r.receive_message(event)
        if any(isinstance(c, Rejected) for c in first):
            continue  # refused once, refused again: not a redelivery
        before = r.to_dict()
        again = r.receive_message(event)
        _unchanged_except_counters(before, r.to_dict(), any(isinstance(c, Duplicate) for c in again))
        r._check()


@gen.FAST
@given(gen.traces(max_size=25))
def test_late_redelivered_callback_is_a_no_op(trace):
    """A callback redelivered at the end of the trace changes nothing, provided no
    other callback of its turn and no history page of its thread came in between."""
    r = Reconciler()
    accepted = []
    for i, event in enumerate(trace):
        changes = r.receive_message(event)
        if callback_identity(event) is not None and not refused_or_skipped(changes):
            accepted.append(i)
    for i in accepted:
        event = trace[i]
        identity = callback_identity(event)
        if is_explicit_post(event) and not body(event).get("messageId"):
            continue
        later = trace[i + 1 :]
        if any(callback_identity(e) == identity for e in later):
            continue
        if any(
            isinstance(e, dict) and e.get("event") == "history"
            and isinstance(e.get("data"), dict) and e["data"].get("threadId") == identity[0]
            for e in later
        ):
            continue
        if body(event).get("seq") is not None and any(
            (b := body(e)) is not None and b.get("threadId") == identity[0]
            and b.get("seq") is not None
            for e in later
        ):
            # The thread's seq counter moved on (maybe under another epoch): the old seq
            # is now a gap or a duplicate, which section 6 decides and the seq
            # properties test. Found by Hypothesis: epoch 1 seq 2, null seq 0, 1 seq 0.
            continue
        r = fed(trace)
        before = r.to_dict()
        again = r.receive_message(event)
        _unchanged_except_counters(before, r.to_dict(), any(isinstance(c, Duplicate) for c in again))
        r._check()


_WELL_FORMED = [
    gen.announces,
    gen.stream_chunks,
    gen.callbacks,
    gen.dones,
    gen.errors,
    gen.tool_events,
    gen.thinkings,
    gen.rich_blocks,
    gen.system_lines,
    gen.handoffs,
]


@st.composite
def sequenced_events(draw: Any, pools: gen.Pools) -> dict[str, Any]:
    """An agent_message of a known type that passes the field checks, with a seq."""
    event = draw(st.one_of(*(build(pools) for build in _WELL_FORMED)))
    event["data"]["seq"] = draw(st.integers(0, 8))
    epoch = draw(st.sampled_from([gen.ABSENT, None, "e1", 2]))
    if epoch is gen.ABSENT:
        event["data"].pop("seqEpoch", None)
    else:
        event["data"]["seqEpoch"] = epoch
    return event


def _epoch(data: dict[str, Any]) -> str:
    return json.dumps(data.get("seqEpoch"), sort_keys=True)


@gen.FAST
@given(st.data())
def test_redelivered_event_with_seq_is_a_duplicate_and_changes_nothing(data):
    """Section 6: with seq, delivering any event twice is idempotent: the second is
    skipped and counted, bubbles and refusals stay as they are. Checked right after
    the first delivery and again at the end of the trace when no later event of the
    thread moved its seq to another epoch."""
    pools = data.draw(gen.id_pools(), label="pools")
    trace = data.draw(gen.traces(pools=pools, max_size=20), label="trace")
    event = data.draw(sequenced_events(pools), label="sequenced event")
    i = data.draw(st.integers(0, len(trace)), label="position")
    trace = trace[:i] + [event] + trace[i:]

    r = fed(trace[: i + 1])
    before = r.to_dict()
    again = r.receive_message(event)
    assert any(isinstance(c, Duplicate) for c in again)
    _unchanged_except_counters(before, r.to_dict(), duplicate=True)

    thread, epoch = event["data"]["threadId"], _epoch(event["data"])
    moved = any(
        (b := body(e)) is not None
        and b.get("threadId") == thread
        and b.get("seq") is not None
        and _epoch(b) != epoch
        for e in trace[i + 1 :]
    )
    if not moved:
        r = fed(trace)
        before = r.to_dict()
        again = r.receive_message(event)
        assert any(isinstance(c, Duplicate) for c in again)
        _unchanged_except_counters(before, r.to_dict(), duplicate=True)
    r._check()


# ---------------------------------------------------------------------- refusals


@gen.FAST
@given(gen.traces(max_size=40))
def test_refused_event_changes_no_bubble(trace):
    """Section 8: a refused event changes no bubble (its thread may come to exist,
    empty, and its seq still counts); it adds exactly one refusal."""
    r = Reconciler()
    for event in trace:
        before, document = snapshot(r), r.to_dict()
        changes = r.receive_message(event)
        if not any(isinstance(c, Rejected) for c in changes) or _is_page(event):
            continue  # a history page is judged message by message: see below
        after = r.to_dict()
        assert snapshot(r) == before
        for thread, bubbles in after["threads"].items():
            assert bubbles == document["threads"].get(thread, [])
        assert len(after["rejected"]) == len(document["rejected"]) + 1
        assert after["rejected"][:-1] == document["rejected"]
        assert after["rejected"][-1]["line"] == r.lines
        stats = dict(after["stats"])
        stats["events"] = document["stats"]["events"]
        assert stats == document["stats"]
    r._check()


def _is_page(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and event.get("event") == "history"
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("messages"), list)
        and isinstance(event["data"].get("threadId"), str)
    )


@gen.FAST
@given(gen.traces(max_size=30))
def test_refused_stored_message_changes_no_bubble(trace):
    """Sections 7 and 8 (1.1): a history page is judged message by message. Fed one
    message at a time, a refused stored message changes no bubble and adds exactly one
    refusal, and the rest of the page still applies."""
    for i, event in enumerate(trace):
        if not _is_page(event):
            continue
        data = event["data"]
        r = fed(trace[:i])
        for message in data["messages"]:
            before, document = snapshot(r), r.to_dict()
            changes = r.receive_message({"event": "history", "data": {**data, "messages": [message]}})
            refused = [c for c in changes if isinstance(c, Rejected)]
            if not refused:
                continue
            assert len(refused) == 1 and refused[0].reason == Reason.CALLBACK_WITHOUT_INVOCATION
            assert len(changes) == 1
            assert snapshot(r) == before
            after = r.to_dict()
            for thread, bubbles in after["threads"].items():
                assert bubbles == document["threads"].get(thread, [])
            assert after["rejected"][:-1] == document["rejected"]
        r._check()


# ---------------------------------------------------------------------- vs model


def _announce(turn: str, parent: str, cat: str = "opus") -> dict[str, Any]:
    payload = json.dumps({"type": "invocation_created", "invocationId": turn})
    return gen.agent_message("system_info", "t1", cat, content=payload, invocationId=parent)


@gen.FAST
@given(gen.traces(max_size=40))
@example(  # two bubbles share message id m1; the one created first is addressed by it
    [
        _announce("T1", "P1"),
        gen.agent_message("text", "t1", "opus", content="s", invocationId="P1"),
        gen.agent_message(
            "text", "t1", "codex", content="post", origin="callback", invocationId="T2",
            messageId="m1", extra={"isExplicitPost": True},
        ),
        gen.agent_message(
            "text", "t1", "opus", content="final", origin="callback", invocationId="T1",
            messageId="m1",
        ),
        gen.agent_message(
            "system_info", "t1", "opus",
            content=json.dumps({"type": "rich_block", "block": {"id": "k1"}, "messageId": "m1"}),
        ),
        {
            "event": "history",
            "data": {
                "threadId": "t1",
                "messages": [{"id": "m1", "catId": "opus", "origin": "callback", "content": "x"}],
            },
        },
    ]
)
def test_engine_matches_model_on_decoded_events(trace):
    r = fed(trace)
    r._check()
    assert gen.comparable(r.to_dict()) == gen.comparable(replay(trace))


@gen.FAST
@given(gen.traces(max_size=40), st.data())
def test_engine_matches_model_on_json_lines(trace, data):
    """The same trace as JSON Lines (bytes or text, blank lines between), through
    receive_line; line numbers count the blank lines."""
    ascii_only = data.draw(st.booleans(), label="ensure_ascii")
    as_text = data.draw(st.booleans(), label="str lines")
    lines: list[Any] = []
    for event in trace:
        if data.draw(st.integers(0, 5)) == 0:
            lines.append(data.draw(st.sampled_from(["", " ", "\t\r", "  \r"]), label="blank"))
        lines.append(json.dumps(event, ensure_ascii=ascii_only))
    if not as_text:
        lines = [line.encode("utf-8") for line in lines]
    r = Reconciler()
    for line in lines:
        r.receive_line(line)
    r._check()
    assert gen.comparable(r.to_dict()) == gen.comparable(replay(lines))
    # Decoded dicts and their JSON lines give the same bubbles.
    assert r.to_dict()["threads"] == fed(trace).to_dict()["threads"]


def _negative_timestamps(trace: list[Any]) -> list[Any]:
    """The same trace with every integer timestamp moved below zero (order kept)."""
    out = json.loads(json.dumps(trace))
    for event in out:
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            continue
        items = [data]
        if isinstance(data.get("messages"), list):  # a history page
            items += [m for m in data["messages"] if isinstance(m, dict)]
        for item in items:
            ts = item.get("timestamp")
            if type(ts) is int:
                item["timestamp"] = ts - 2 * gen.TS0
    return out


@gen.FAST
@given(gen.traces(max_size=30))
@example(
    [
        gen.agent_message("a2a_handoff", "t1", "opus", content="A", timestamp=-5),
        gen.agent_message("a2a_handoff", "t1", "opus", content="B"),
        gen.agent_message("a2a_handoff", "t1", "opus", content="C", timestamp=-3),
    ]
)
def test_engine_matches_model_with_negative_timestamps(trace):
    """Section 2 step 5: an event without a timestamp takes the *largest timestamp
    seen* in its thread, "or 0" only when none was seen. A negative timestamp is an
    integer like any other, so after seeing only -5 the largest is -5, not 0."""
    trace = _negative_timestamps(trace)
    r = fed(trace)
    r._check()
    assert gen.comparable(r.to_dict()) == gen.comparable(replay(trace))


def test_event_without_timestamp_takes_largest_negative_timestamp_seen():
    """Regression (PROTOCOL section 2 step 5): the engine once started each thread's
    largest timestamp at 0, so after only negative timestamps an event without one
    was placed at 0 instead of at the largest seen (-5), i.e. after later events."""
    r = fed(
        [
            gen.agent_message("a2a_handoff", "t1", "opus", content="A", timestamp=-5),
            gen.agent_message("a2a_handoff", "t1", "opus", content="B"),  # takes -5
            gen.agent_message("a2a_handoff", "t1", "opus", content="C", timestamp=-3),
        ]
    )
    assert [b.text for b in r.bubbles("t1")] == ["A", "B", "C"]


def test_history_message_without_timestamp_takes_largest_negative_timestamp_seen():
    """The same rule for history messages (section 7: "else the thread's largest
    timestamp so far")."""
    page = {
        "event": "history",
        "data": {
            "threadId": "t1",
            "messages": [
                {"id": "h1", "catId": "opus", "content": "A", "timestamp": -5},
                {"id": "h2", "catId": "opus", "content": "B"},  # takes -5
                {"id": "h3", "catId": "opus", "content": "C", "timestamp": -3},
            ],
        },
    }
    r = fed([page])
    assert [b.text for b in r.bubbles("t1")] == ["A", "B", "C"]


# ---------------------------------------------------------------------- turn activity


@gen.FAST
@given(gen.traces(max_size=40))
def test_turn_activity_matches_the_model_and_closes_follow_opens(trace):
    """Running turns and the TurnOpened / TurnClosed stream equal the naive model's at
    every step; each close follows an open of the same turn, which never reopens."""
    from reconcile import TurnClosed, TurnOpened

    from .model import activity

    r = Reconciler()
    log: list[tuple[Any, ...]] = []
    state: dict[tuple[str, str], str] = {}
    for index, event in enumerate(trace):
        for change in r.receive_message(event):
            if isinstance(change, TurnOpened):
                key = (change.thread, change.turn)
                assert key not in state, "a turn opens once"
                state[key] = "opened"
                log.append(("opened", change.thread, change.cat, change.turn, None, change.line))
            elif isinstance(change, TurnClosed):
                key = (change.thread, change.turn)
                assert state.get(key) == "opened", "a close follows an open"
                state[key] = "closed"
                log.append(("closed", change.thread, change.cat, change.turn, str(change.how),
                            change.line))
    model = activity(trace)
    assert log == model["log"]
    for thread in r.threads:
        got = [(t.cat, t.turn, t.since, t.line) for t in r.running_turns(thread)]
        assert got == model["running"].get(thread, [])
        assert {t.turn for t in r.running_turns(thread)} == {
            k[1] for k, v in state.items() if k[0] == thread and v == "opened"}


@gen.FAST
@given(gen.traces(max_size=30), st.sampled_from(gen.THREADS))
def test_a_callback_never_starts_or_stops_a_turn(trace, thread):
    """A callback is a finished message: it leaves the running turns as they were."""
    from reconcile import TurnClosed, TurnOpened

    r = Reconciler()
    for event in trace:
        before = r.running_turns(thread)
        changes = r.receive_message(event)
        if callback_identity(event) is not None or (body(event) or {}).get("origin") == "callback":
            assert not any(isinstance(c, (TurnOpened, TurnClosed)) for c in changes)
            assert r.running_turns(thread) == before
