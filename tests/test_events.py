"""reconcile._events: typed events take exactly the path of their wire form."""

import json

import pytest

from reconcile import AgentMessage, History, OtherEvent, Reconciler, announce, callback, done, stream


def test_typed_events_convert_to_wire_without_nones():
    event = stream("t1", "opus", "Hel", parent="P1", timestamp=5)
    assert event.to_wire() == {"event": "agent_message", "data": {
        "type": "text", "threadId": "t1", "catId": "opus", "content": "Hel",
        "invocationId": "P1", "timestamp": 5}}
    explicit = callback("t1", "opus", "x", "T1", "m1", is_explicit_post=True).to_wire()["data"]
    assert explicit["extra"] == {"isExplicitPost": True} and explicit["origin"] == "callback"


def test_announce_carries_the_turn_in_the_payload_and_the_parent_outside():
    data = announce("t1", "opus", "T1", parent="P1").to_wire()["data"]
    assert json.loads(data["content"]) == {"type": "invocation_created", "invocationId": "T1"}
    assert data["invocationId"] == "P1"


def test_a_typed_race_replays_like_its_wire_form():
    events = [announce("t1", "opus", "TA", "PA"), stream("t1", "opus", "a", "PA"),
              done("t1", "opus", "PA"), announce("t1", "opus", "TB", "PB"),
              stream("t1", "opus", "b", "PB"), callback("t1", "opus", "A!", "TA", "mA"),
              History("t1", [{"id": "x", "catId": "opus", "content": "old", "timestamp": 0}]),
              OtherEvent("heartbeat", {"threadId": "t1"})]
    typed, wire = Reconciler(), Reconciler()
    for e in events:
        typed.receive(e)
        wire.receive_message(e.to_wire())
    assert typed.to_dict() == wire.to_dict()
    # No event has a timestamp, so all sort at 0, by creation: the stored one is last.
    assert [b.text for b in typed.bubbles("t1")] == ["A!", "b", "old"]


def test_typed_events_are_checked_like_wire_events():
    r = Reconciler()
    (rej,) = r.receive(AgentMessage(type="text", thread="t1", cat="opus", content=None))
    assert rej.reason.value == "malformed_event"


def test_typed_events_are_immutable():
    with pytest.raises(AttributeError):
        stream("t1", "opus", "x").content = "y"
