"""The typed event builders (``announce``, ``stream``, ``callback``, ``done``,
``OtherEvent``) make exactly the wire form a server sends, and the engine reads them as
it reads a trace line."""

from __future__ import annotations

from reconcile import (
    OtherEvent,
    Reconciler,
    Status,
    TurnClosed,
    TurnEnd,
    announce,
    callback,
    done,
    stream,
)


def test_done_is_the_wire_done_of_the_agent_under_its_parent():
    assert done("t1", "opus", "P1", timestamp=9).to_wire() == {
        "event": "agent_message",
        "data": {"type": "done", "threadId": "t1", "catId": "opus", "invocationId": "P1",
                 "timestamp": 9},
    }
    assert done("t2", "sonnet").to_wire()["data"] == {
        "type": "done", "threadId": "t2", "catId": "sonnet"}


def test_announce_keeps_its_timestamp_and_callback_its_message_id():
    assert announce("t1", "opus", "T1", "P1", timestamp=7).to_wire()["data"]["timestamp"] == 7
    data = callback("t1", "opus", "hi", "T1", message_id="m1").to_wire()["data"]
    assert data["messageId"] == "m1"
    assert data["invocationId"] == "T1" and data["origin"] == "callback"


def test_other_event_is_its_name_and_a_copy_of_its_data():
    payload = {"mode": "plan"}
    wire = OtherEvent("intent_mode", payload).to_wire()
    assert wire == {"event": "intent_mode", "data": {"mode": "plan"}}
    wire["data"]["mode"] = "changed"
    assert payload == {"mode": "plan"}


def test_a_typed_turn_streams_then_closes_on_done():
    r = Reconciler()
    r.receive(announce("t1", "opus", "T1", "P1", timestamp=1))
    r.receive(stream("t1", "opus", "Hel", "P1", timestamp=2))
    r.receive(stream("t1", "opus", "lo", "P1", timestamp=3))
    (bubble,) = r.bubbles("t1")
    assert (bubble.text, bubble.status) == ("Hello", Status.STREAMING)
    changes = r.receive(done("t1", "opus", "P1", timestamp=4))
    assert [c for c in changes if isinstance(c, TurnClosed)] == [
        TurnClosed("t1", "opus", "T1", TurnEnd.DONE, 4)]
    assert bubble.status is Status.DONE
    assert r.open_turn("t1", "opus") is None


def test_a_typed_stored_callback_keeps_its_message_id():
    r = Reconciler()
    r.receive(announce("t1", "opus", "T1", "P1"))
    r.receive(callback("t1", "opus", "final", "T1", message_id="m1", timestamp=5))
    (bubble,) = r.bubbles("t1")
    assert bubble.message_id == "m1" and bubble.text == "final"
