"""The four regression races of clowder-ai's late-callback bug, as named tests.

Each asserts exactly one bubble per turn and the right text in each. The same race
is fed three ways (wire dicts, JSON lines, typed events) since clients embed the
engine all three ways.
"""

from __future__ import annotations

import collections
import json

import pytest

import reconcile
from reconcile import Reconciler

from .helpers import TS0, announce, callback, chunk, done

FEEDERS = {
    "dicts": lambda r, events: [r.receive_message(e) for e in events],
    "lines": lambda r, events: [r.receive_line(json.dumps(e).encode()) for e in events],
    "typed": lambda r, events: [r.receive(_typed(e)) for e in events],
}


def _typed(event):
    """The typed equivalent of a wire dict built by tests.helpers."""
    d = dict(event["data"])
    extra = d.pop("extra", None) or {}
    names = {"threadId": "thread", "catId": "cat", "invocationId": "invocation_id",
             "turnInvocationId": "turn_invocation_id", "messageId": "message_id",
             "toolName": "tool_name", "toolInput": "tool_input", "seqEpoch": "seq_epoch",
             "isFinal": "is_final"}
    kwargs = {names.get(k, k): v for k, v in d.items()}
    return reconcile.AgentMessage(**kwargs, is_explicit_post=extra.get("isExplicitPost", False))


def run(events, how):
    r = Reconciler()
    FEEDERS[how](r, events)
    r._check()
    assert r.rejected == ()
    return r


def one_bubble_per_turn(r, thread):
    per_turn = collections.Counter(b.invocation for b in r.bubbles(thread))
    assert all(n == 1 for n in per_turn.values()), per_turn
    return {b.invocation: b for b in r.bubbles(thread)}


def ts(k):
    return {"timestamp": TS0 + 100 * k}


@pytest.mark.parametrize("how", FEEDERS)
def test_race_late_callback_same_content_across_invocation_boundary(how):
    # A's callback arrives after B started, with exactly the text B is streaming.
    # A text-similarity heuristic would merge it into B; identity puts it on A.
    r = run([
        announce("TA", "PA", **ts(1)), chunk("Sure, ", "PA", **ts(2)),
        chunk("done.", "PA", **ts(3)), done("PA", **ts(4)),
        announce("TB", "PB", **ts(5)), chunk("Sure, ", "PB", **ts(6)),
        chunk("done.", "PB", **ts(7)),
        callback("Sure, done.", "TA", "mA", **ts(8)),
    ], how)
    turns = one_bubble_per_turn(r, "t1")
    assert list(turns) == ["TA", "TB"]
    assert (turns["TA"].origin, turns["TA"].status, turns["TA"].text) == ("callback", "done", "Sure, done.")
    assert (turns["TB"].origin, turns["TB"].status, turns["TB"].text) == ("stream", "streaming", "Sure, done.")
    assert turns["TA"].message_id == "mA" and turns["TB"].message_id is None


@pytest.mark.parametrize("how", FEEDERS)
def test_race_late_callback_different_content_across_invocation_boundary(how):
    # "The latest bubble" would be B's; the callback must replace A's in place.
    r = run([
        announce("TA", "PA", **ts(1)), chunk("Looking into it", "PA", **ts(2)), done("PA", **ts(3)),
        announce("TB", "PB", **ts(4)), chunk("Second question: ", "PB", **ts(5)),
        callback("The bug is in parse().", "TA", "mA", **ts(6)),
        chunk("answering now", "PB", **ts(7)), done("PB", **ts(8)),
    ], how)
    turns = one_bubble_per_turn(r, "t1")
    assert list(turns) == ["TA", "TB"]
    assert (turns["TA"].origin, turns["TA"].text) == ("callback", "The bug is in parse().")
    assert (turns["TB"].origin, turns["TB"].status, turns["TB"].text) == (
        "stream", "done", "Second question: answering now")


@pytest.mark.parametrize("how", FEEDERS)
def test_race_background_thread_callback_after_new_invocation_starts_there(how):
    bg = {"thread": "bg", "cat": "codex"}
    fg = {"thread": "fg", "cat": "codex"}
    r = run([
        announce("TA", "PA", **bg, **ts(1)), chunk("partial bg", "PA", **bg, **ts(2)),
        done("PA", **bg, **ts(3)),
        announce("TX", "PX", **fg, **ts(4)), chunk("foreground work", "PX", **fg, **ts(5)),
        announce("TB", "PB", **bg, **ts(6)), chunk("next bg turn", "PB", **bg, **ts(7)),
        callback("Background result.", "TA", "mA", **bg, **ts(8)),
        done("PX", **fg, **ts(9)), done("PB", **bg, **ts(10)),
    ], how)
    background = one_bubble_per_turn(r, "bg")
    foreground = one_bubble_per_turn(r, "fg")
    assert list(background) == ["TA", "TB"] and list(foreground) == ["TX"]
    assert (background["TA"].origin, background["TA"].text) == ("callback", "Background result.")
    assert (background["TB"].origin, background["TB"].text) == ("stream", "next bg turn")
    assert (foreground["TX"].origin, foreground["TX"].text) == ("stream", "foreground work")


@pytest.mark.parametrize("how", FEEDERS)
def test_race_callback_first_stream_late(how):
    g = {"cat": "gemini"}
    r = run([
        announce("T1", "P1", **g, **ts(1)),
        callback("Callback came first.", "T1", "m1", **g, **ts(2)),
        chunk("Callback ", "P1", **g, **ts(3)), chunk("came first.", "P1", **g, **ts(4)),
        done("P1", **g, **ts(5)),
    ], how)
    turns = one_bubble_per_turn(r, "t1")
    assert (turns["T1"].origin, turns["T1"].status, turns["T1"].text) == (
        "callback", "done", "Callback came first.")
    assert r.stats.superseded == 2


def test_late_callback_lands_where_its_turn_began_not_at_the_end():
    # Order is by the creating event's timestamp, so the replaced bubble keeps its
    # place above the newer turn even though its callback arrived last.
    r = run([
        announce("TA", "PA", **ts(1)), chunk("a", "PA", **ts(2)), done("PA", **ts(3)),
        announce("TB", "PB", **ts(4)), chunk("b", "PB", **ts(5)), done("PB", **ts(6)),
        callback("A final", "TA", "mA", **ts(9)),
    ], "dicts")
    assert [b.invocation for b in r.bubbles("t1")] == ["TA", "TB"]
    first = r.bubbles("t1")[0]
    assert first.text == "A final"


def test_late_callback_keeps_the_bubble_id_a_ui_keyed_on():
    r = Reconciler()
    r.receive_message(announce("TA", "PA"))
    (added,) = r.receive_message(chunk("draft", "PA"))
    r.receive_message(done("PA"))
    r.receive_message(announce("TB", "PB"))
    (updated,) = r.receive_message(callback("final", "TA", "mA"))
    assert isinstance(added, reconcile.BubbleAdded) and isinstance(updated, reconcile.BubbleUpdated)
    assert updated.how is reconcile.Update.REPLACED
    assert updated.bubble is added.bubble and updated.bubble.id == added.bubble.id
