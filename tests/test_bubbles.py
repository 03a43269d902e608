"""How the engine builds bubbles and keeps each thread's display order.

The engine builds a bubble without calling ``Bubble.__init__`` and keeps a thread's
order in a plain list until the list is long (see ``ThreadState.insert``); these tests
pin that both give exactly what the plain, obvious versions would.
"""

from __future__ import annotations

import gc
import json
import random

import pytest
from sortedcontainers import SortedKeyList

import reconcile._core as core_module
import reconcile._thread as thread_module
from reconcile import Bubble, Origin, Reconciler, Status
from reconcile.testing.simulate import Shape, generate

from .helpers import HERE, announce, callback, chunk, done, feed, msg

HISTORY_CAPTURE = HERE / "data" / "real-server" / "history-record2.jsonl"


def fields(bubble: Bubble) -> dict[str, object]:
    return {name: getattr(bubble, name) for name in Bubble.__slots__}


def system_lines(stamps, thread="t1"):
    return [msg("system_info", thread, content=f"line {i}", timestamp=ts)
            for i, ts in enumerate(stamps)]


def test_a_bubble_the_engine_builds_equals_one_built_by_its_init():
    r, _ = feed([
        announce("T1", timestamp=10), chunk("hi", timestamp=11),
        callback("snap", "T2", message_id="m1", timestamp=12),
        msg("error", error="boom", timestamp=13),
        msg("system_info", content="plain", timestamp=14),
    ])
    built = list(r.bubbles("t1"))
    assert len(built) >= 3
    for bubble in built:
        ts, number, same = bubble.sort_key
        assert same is bubble and bubble.id == f"b{number}"
        by_init = Bubble(
            bubble.id, bubble.thread, bubble.cat, bubble.invocation, bubble.origin,
            bubble.status, bubble.text, ts, number, bubble.message_id, bubble.error,
        )
        # Only what the bubble gathered after it was made may differ (thinking, tools
        # and blocks, kept in _extra beside an error).
        expected = fields(by_init)
        gathered = {k: v for k, v in (bubble._extra or {}).items() if k != "error"}
        if gathered:
            expected["_extra"] = {**(expected["_extra"] or {}), **gathered}
        assert fields(bubble) == expected


def test_a_new_bubble_has_every_field_set_and_nothing_gathered_yet():
    r, _ = feed([msg("system_info", content="plain", timestamp=7)])
    (bubble,) = r.bubbles("t1")
    assert fields(bubble) == {
        "id": "b1", "thread": "t1", "cat": "opus", "invocation": None,
        "origin": Origin.SYSTEM, "status": Status.DONE, "message_id": None,
        "_extra": None, "_text": "plain", "_ts": 7, "_number": 1,
    }
    assert (bubble.thinking, bubble.tools, bubble.blocks, bubble.error) == ("", (), (), None)
    assert bubble.sort_key == (7, 1, bubble)


def test_bubbles_are_freed_without_the_cycle_collector():
    # No bubble refers to itself (its key is two numbers, not a tuple holding it), so
    # dropping an engine frees its bubbles at once, as reference counting does.
    lines = list(generate(3, Shape(turns=40, threads=2, agents=2)))
    lines += HISTORY_CAPTURE.read_bytes().splitlines()
    gc.collect()
    gc.disable()
    try:
        r = Reconciler()
        for line in lines:
            r.receive_line(line)
        assert len(r._bubbles) > 50
        del r
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_order_is_by_timestamp_then_creation_whatever_order_stamps_arrive_in():
    stamps = [5, 3, 9, 1, 9, 2, 2, 10, 0, -4]
    r, _ = feed(system_lines(stamps))
    keys = [b.sort_key[:2] for b in r.bubbles("t1")]
    assert keys == sorted((ts, n) for n, ts in enumerate(stamps, 1))
    assert r.bubbles("t1").__class__.__name__ == "ThreadBubbles"
    assert r._threads["t1"].order.__class__ is list


@pytest.mark.parametrize("limit", [1, 4, 10])
def test_a_long_order_becomes_a_sorted_key_list_and_views_follow(monkeypatch, limit):
    rng = random.Random(limit)
    stamps = [rng.randrange(40) for _ in range(30)]
    events = system_lines(stamps[:5]) + [announce("T1", timestamp=3), chunk("a", timestamp=50)]
    events += system_lines(stamps[5:]) + [done(timestamp=1), callback("late", "T1", timestamp=2)]
    expected, _ = feed(events)  # the default limit: a plain list throughout
    assert expected._threads["t1"].order.__class__ is list

    monkeypatch.setattr(thread_module, "_LIST_LIMIT", limit)
    monkeypatch.setattr(core_module, "_LIST_LIMIT", limit)
    r = Reconciler()
    r.receive_message(events[0])
    view = r.bubbles("t1")  # taken while the order is a list, read after it changed
    for event in events[1:]:
        r.receive_message(event)
    r._check()
    assert isinstance(r._threads["t1"].order, SortedKeyList)
    assert json.dumps(r.to_dict()) == json.dumps(expected.to_dict())
    assert list(view) == list(r.bubbles("t1")) and len(view) == len(stamps) + 1
    assert view[0] is r.bubbles("t1")[0] and view[-1].text == "late"
    assert [b.id for b in view[2:5]] == [b.id for b in list(view)[2:5]]
    # Once sorted, a bubble that sorts last still goes last.
    r.receive_message(msg("system_info", content="last", timestamp=1000))
    assert view[-1].text == "last"


def test_an_order_in_time_order_stops_being_a_list_at_the_limit(monkeypatch):
    # A long list never has to be changed at once: a pause as long as the thread.
    monkeypatch.setattr(thread_module, "_LIST_LIMIT", 5)
    monkeypatch.setattr(core_module, "_LIST_LIMIT", 5)
    r, _ = feed(system_lines(range(5)))
    assert r._threads["t1"].order.__class__ is list
    r, _ = feed(system_lines(range(6)))
    assert isinstance(r._threads["t1"].order, SortedKeyList)
    assert [b.text for b in r.bubbles("t1")] == [f"line {i}" for i in range(6)]


def test_the_list_limit_is_a_sorted_lists_load():
    from sortedcontainers import SortedList

    assert thread_module._LIST_LIMIT == core_module._LIST_LIMIT == SortedList.DEFAULT_LOAD_FACTOR


def test_a_view_slice_is_a_copy_the_caller_may_change():
    r, _ = feed(system_lines([3, 1, 2]))
    view = r.bubbles("t1")
    part = view[0:2]
    part.clear()
    assert [b.text for b in view] == ["line 1", "line 2", "line 0"]


def test_a_thread_past_the_real_limit_orders_as_the_reference_model_does():
    # No monkeypatch: the thread crosses the limit the engine ships with, with stamps
    # out of order, equal and negative, and history pages of earlier stored messages
    # landing before and after the change of container.
    from reconcile.testing.reference import replay

    from .helpers import without_details

    rng = random.Random(5)
    limit = thread_module._LIST_LIMIT
    events: list[dict[str, object]] = []
    for i in range(limit + limit // 2):
        if i % 250 == 249:
            events.append({"event": "history", "data": {"threadId": "t1", "messages": [
                {"id": f"s{i}-{j}", "catId": "codex", "content": f"stored {j}",
                 "timestamp": rng.randrange(-50, 50)} for j in range(5)]}})
        elif i % 7 == 0:
            events += [announce(f"T{i}", parent=f"P{i}", timestamp=rng.randrange(-20, 20)),
                       chunk("a", parent=f"P{i}", timestamp=i), done(parent=f"P{i}")]
        else:
            events.append(msg("system_info", content=f"line {i}",
                              timestamp=rng.choice([i, -i, 0, rng.randrange(-i, i + 1)])))
    r = Reconciler()
    r.receive_message(events[0])
    view = r.bubbles("t1")  # taken while the order is a plain list
    for event in events[1:]:
        r.receive_message(event)
    r._check()
    assert isinstance(r._threads["t1"].order, SortedKeyList)
    assert without_details(r.to_dict()) == without_details(replay(events))
    keys = [b.sort_key[:2] for b in view]
    assert len(keys) > limit and keys == sorted(keys)


def test_a_shallow_copy_of_a_bubble_keeps_what_it_had_when_the_engine_goes_on():
    # copy.copy of a bubble is a snapshot of its fields, as of any object: its
    # thinking and error stay as they were when the engine later changes the bubble
    # (the tools list it already had is shared, as copy.copy shares any list).
    import copy

    def thinking(text: str) -> dict[str, object]:
        payload = {"type": "thinking", "text": text}
        return msg("system_info", content=json.dumps(payload), invocationId="P1")

    def block(block_id: str) -> dict[str, object]:
        payload = {"type": "rich_block", "block": {"id": block_id}}
        return msg("system_info", content=json.dumps(payload), invocationId="P1")

    tool = msg("tool_use", invocationId="P1", toolName="Read", toolInput={"path": "a"})
    r, _ = feed([announce("T1"), chunk("hi"), thinking("first")])
    (bubble,) = r.bubbles("t1")
    plain = copy.copy(bubble)
    r, _ = feed([tool], r)
    with_tool = copy.copy(bubble)
    r, _ = feed([thinking("second"), block("k1"), tool, msg("error", error="boom",
                                                                 invocationId="P1")], r)
    assert (bubble.thinking, bubble.blocks, bubble.error) == (
        "first\n\nsecond", ("k1",), "boom"
    )
    assert len(bubble.tools) == 2
    assert (plain.thinking, plain.tools, plain.blocks, plain.error) == ("first", (), (), None)
    assert plain.to_dict()["thinking"] == "first" and plain.to_dict()["error"] is None
    assert (with_tool.thinking, with_tool.blocks, with_tool.error) == ("first", (), None)
    assert with_tool.tools == bubble.tools  # the one list of tools, shared
    assert plain.status is Status.STREAMING and bubble.status is Status.ERROR


def test_an_engine_whose_tools_were_read_pickles_and_copies() -> None:
    # Bubble.tools hands out read-only mappings, kept until a tool is added; a mapping
    # proxy cannot be pickled, so a bubble leaves that tuple out of its state and
    # makes it again on the next read.
    import copy
    import pickle

    r, _ = feed([
        announce("T1"), chunk("hi"),
        msg("tool_use", invocationId="P1", toolName="Read", toolInput={"path": "a"}),
    ])
    (bubble,) = r.bubbles("t1")
    assert [dict(t) for t in bubble.tools] == [dict(t) for t in bubble.tools] != []
    for again in (pickle.loads(pickle.dumps(r)), copy.deepcopy(r)):
        (other,) = again.bubbles("t1")
        assert [dict(t) for t in other.tools] == [dict(t) for t in bubble.tools]
        assert other.to_dict() == bubble.to_dict()
        assert "tools_view" in bubble._extra  # the original keeps its tuple
