"""The change stream is enough for a UI: it rebuilds the engine's bubbles exactly, and
no change is a no-op. Also: what a bubble hands out cannot change the engine."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
from hypothesis import given

from reconcile import BubbleUpdated, Reconciler, Update

from . import strategies as gen
from .helpers import ChangeView, announce, callback, chunk, msg


@gen.FAST
@given(gen.traces(max_size=40))
def test_the_changes_rebuild_the_bubbles_and_none_is_a_no_op(trace):
    view = ChangeView(Reconciler())
    for event in trace:
        view.receive(event)
    view.r._check()


def _block(block_id, parent="P1", message_id=None):
    payload = {"type": "rich_block", "block": {"id": block_id}}
    if message_id is not None:
        payload["messageId"] = message_id
    return msg("system_info", content=json.dumps(payload), invocationId=parent)


def test_a_repeated_rich_block_reports_no_update():
    view = ChangeView(Reconciler())
    view.receive(announce("T1"))
    view.receive(chunk("hi"))
    first = view.receive(_block("k1"))
    assert [c.how for c in first if isinstance(c, BubbleUpdated)] == [Update.BLOCK]
    assert view.receive(_block("k1")) == ()


def test_a_repeated_block_for_a_message_reports_no_update():
    view = ChangeView(Reconciler())
    view.receive(callback("final", "T1", "m1"))
    view.receive(_block("k1", parent=None, message_id="m1"))
    assert view.receive(_block("k1", parent=None, message_id="m1")) == ()


def test_empty_thinking_on_an_empty_bubble_is_no_update():
    view = ChangeView(Reconciler())
    view.receive(announce("T1"))
    view.receive(chunk("hi"))
    thinking = msg("system_info", content=json.dumps({"type": "thinking", "text": ""}),
                   invocationId="P1")
    assert view.receive(thinking) == ()


def test_a_repeated_error_reports_no_update():
    view = ChangeView(Reconciler())
    view.receive(announce("T1"))
    view.receive(chunk("hi"))
    error = msg("error", error="boom", turnInvocationId="T1")
    first = view.receive(error)
    assert [c.how for c in first if isinstance(c, BubbleUpdated)] == [Update.ERRORED]
    assert view.receive(error) == ()


def test_a_new_primary_is_one_change_with_its_content():
    view = ChangeView(Reconciler())
    view.receive(announce("T1"))
    tool = msg("tool_use", toolName="grep", toolInput={"q": "x"}, invocationId="P1")
    (added,) = view.receive(tool)
    assert added.bubble.tools == ({"kind": "use", "name": "grep", "input": {"q": "x"}},)


def _bubble_with_everything():
    r = Reconciler()
    r.receive_message(announce("T1"))
    r.receive_message(chunk("hi"))
    r.receive_message(msg("tool_use", toolName="grep", toolInput={"q": "x"}, invocationId="P1"))
    r.receive_message(_block("k1"))
    return r, r.bubbles("t1")[0]


def test_tools_and_blocks_are_read_only():
    r, bubble = _bubble_with_everything()
    before = bubble.to_dict()
    assert isinstance(bubble.tools, tuple) and isinstance(bubble.blocks, tuple)
    with pytest.raises(AttributeError):
        bubble.tools.append({"kind": "use"})  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        bubble.blocks.append("k2")  # type: ignore[attr-defined]
    assert isinstance(bubble.tools[0], MappingProxyType)
    with pytest.raises(TypeError):
        bubble.tools[0]["name"] = "rm"  # type: ignore[index]
    assert bubble.to_dict() == before
    assert r.to_dict()["threads"]["t1"][0]["tools"] == [
        {"kind": "use", "name": "grep", "input": {"q": "x"}}
    ]


def test_a_detached_copy_can_be_changed_freely():
    r, bubble = _bubble_with_everything()
    copy = bubble.to_dict()
    copy["tools"].append({"kind": "result"})
    copy["tools"][0]["name"] = "rm"
    copy["blocks"].append("k2")
    assert bubble.to_dict()["tools"] == [{"kind": "use", "name": "grep", "input": {"q": "x"}}]
    assert bubble.blocks == ("k1",)


def test_reads_of_tools_and_blocks_are_cached_until_they_grow():
    r, bubble = _bubble_with_everything()
    assert bubble.tools is bubble.tools and bubble.blocks is bubble.blocks
    r.receive_message(_block("k2"))
    assert bubble.blocks == ("k1", "k2")
