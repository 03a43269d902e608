"""Section 2 steps 1 and 4 on edge inputs: the envelope's three strings (str
subclasses from in-process callers included) and ``seq`` epochs that are not strings.
Pinned after a mutation run (docs/testing.md)."""

from __future__ import annotations

import pytest

from reconcile import Duplicate, Gap, Reason, Reconciler, Rejected

from .helpers import announce, chunk, msg


class _Name(str):
    """A str subclass: isinstance admits it where the class test does not."""


@pytest.mark.parametrize("field", ["type", "threadId", "catId"])
def test_the_envelope_accepts_str_subclasses(field):
    event = announce("T1")
    event["data"][field] = _Name(event["data"][field])
    r = Reconciler()
    changes = r.receive_message(event)
    assert not any(isinstance(c, Rejected) for c in changes)
    assert r.open_turn("t1", "opus") == "T1"


@pytest.mark.parametrize("field", ["type", "threadId", "catId"])
def test_the_envelope_refuses_a_field_that_is_not_a_string(field):
    event = announce("T1")
    event["data"][field] = 5
    (refusal,) = Reconciler().receive_message(event)
    thread = None if field == "threadId" else "t1"
    assert refusal == Rejected(1, Reason.MALFORMED_EVENT,
                               "type, threadId and catId must be strings", thread)


def _seq(seq, epoch, text="x"):
    return msg("text", content=text, turnInvocationId="T1", seq=seq, seqEpoch=epoch)


@pytest.mark.parametrize("first,second", [
    (1, 2), (1, True), (1, 1.0), ({"a": 1, "b": 2}, {"a": 1, "b": 3}), ([1], [2]), ("1", 1),
])
def test_a_new_epoch_restarts_seq_even_when_python_calls_the_epochs_equal(first, second):
    r = Reconciler()
    r.receive_message(_seq(5, first))
    changes = r.receive_message(_seq(1, second, "y"))
    assert not any(isinstance(c, (Duplicate, Gap)) for c in changes)
    assert [b.text for b in r.bubbles("t1")] == ["xy"]


@pytest.mark.parametrize("epoch", [7, {"a": 1, "b": 2}, [1, "x"], None, "e"])
def test_the_same_epoch_written_again_keeps_counting(epoch):
    r = Reconciler()
    r.receive_message(_seq(5, epoch))
    again = {"b": 2, "a": 1} if isinstance(epoch, dict) else (
        list(epoch) if isinstance(epoch, list) else epoch)
    assert r.receive_message(_seq(5, again)) == (Duplicate(2, "t1", 5),)
    (gap, *_) = r.receive_message(_seq(8, again))
    assert gap == Gap("t1", 5, 8)


def test_every_duplicate_is_counted():
    r = Reconciler()
    for seq in (1, 1, 1, 2, 2):
        r.receive_message(chunk("x", turnInvocationId="T1", seq=seq))
    assert r.stats.duplicates == 3
