"""The engine's value classes (changes, events, reports) without attrs.

They were attrs classes; they are hand-written now (start-up, issue 9), and these
tests pin what a caller relied on: constructors, ``repr``, equality, hashing,
immutability, pattern matching, copying and pickling.
"""

from __future__ import annotations

import copy
import pickle
import weakref

import pytest

import reconcile
from reconcile import (
    AgentMessage,
    BubbleAdded,
    BubbleUpdated,
    CheckReport,
    Duplicate,
    FrozenInstanceError,
    Gap,
    History,
    OtherEvent,
    Reason,
    Reconciler,
    ReconcileError,
    Rejected,
    RuleReport,
    RunningTurn,
    Stats,
    Superseded,
    ThreadCounts,
    TurnClosed,
    TurnEnd,
    TurnOpened,
    Update,
)

from .helpers import announce, chunk


def a_bubble():
    r = Reconciler()
    r.receive_message(announce("T1"))
    r.receive_message(chunk("hi"))
    return r.bubbles("t1")[0]


BUBBLE = a_bubble()
REJECTED = Rejected(3, Reason.UNBOUND_EVENT, "no turn", "t1")

#: One instance of each class, and the same fields again in a second instance.
SAMPLES = [
    (BubbleAdded, (BUBBLE, 1), {}),
    (BubbleUpdated, (BUBBLE, Update.APPENDED, 2, "x"), {}),
    (Rejected, (3, Reason.UNBOUND_EVENT, "no turn", "t1"), {}),
    (Superseded, (4, "t1", "T1"), {}),
    (Duplicate, (5, "t1", 7), {}),
    (Gap, ("t1", 1, 4, 6), {}),
    (TurnOpened, ("t1", "opus", "T1", 7, 1000), {}),
    (TurnClosed, ("t1", "opus", "T1", TurnEnd.DONE, 8), {}),
    (RunningTurn, ("t1", "opus", "T1", 1000, 7), {}),
    (AgentMessage, (), {"type": "done", "thread": "t1", "cat": "opus", "invocation_id": "P"}),
    (History, ("t1", ({"id": "m1"},)), {}),
    (OtherEvent, ("heartbeat", {"n": 1}), {}),
    (Stats, (1, 2, 3, 4), {}),
    (ThreadCounts, (5, 2, 1, 0), {}),
    (RuleReport, (3, "stream_without_turn_id", "title", 2, 1, (4, 9)), {}),
    (CheckReport, (2, 2, {"events": 2}, (REJECTED,), {"unbound_event": 1}, (), {}, ()), {}),
]
MUTABLE = {BubbleAdded, BubbleUpdated, Superseded, Duplicate, TurnOpened, TurnClosed}
IDS = [cls.__name__ for cls, _, _ in SAMPLES]


def make(cls, args, kwargs):
    return cls(*args, **kwargs)


def test_every_class_with_fields_of_the_public_api_is_sampled():
    classes = {cls for cls, _, _ in SAMPLES}
    public = {getattr(reconcile, n) for n in reconcile.__all__}
    value_classes = {c for c in public if isinstance(c, type) and hasattr(c, "_fields")}
    assert value_classes == classes


@pytest.mark.parametrize(("cls", "args", "kwargs"), SAMPLES, ids=IDS)
def test_repr_names_every_field_as_attrs_did(cls, args, kwargs):
    value = make(cls, args, kwargs)
    fields = ", ".join(f"{name}={getattr(value, name)!r}" for name in cls.__slots__)
    assert repr(value) == f"{cls.__name__}({fields})"


def test_repr_examples():
    assert repr(Duplicate(5, "t1", 7)) == "Duplicate(line=5, thread='t1', seq=7)"
    assert repr(REJECTED) == (
        "Rejected(line=3, reason=<Reason.UNBOUND_EVENT: 'unbound_event'>, detail='no turn', "
        "thread='t1')"
    )
    assert repr(Stats()) == "Stats(events=0, ignored=0, superseded=0, duplicates=0)"


@pytest.mark.parametrize(("cls", "args", "kwargs"), SAMPLES, ids=IDS)
def test_equal_when_every_field_is_equal_and_the_class_is_the_same(cls, args, kwargs):
    value, again = make(cls, args, kwargs), make(cls, args, kwargs)
    assert value == again and not value != again
    assert value != object() and value != tuple(getattr(value, n) for n in cls.__slots__)
    for name in cls.__slots__:
        if cls is Gap and name == "line":
            continue
        other = copy.copy(again)
        object.__setattr__(other, name, "something else")
        assert value != other and not value == other, name


def test_a_subclass_instance_is_not_equal():
    class Mine(Duplicate):
        __slots__ = ()

    assert Duplicate(1, "t", 2) != Mine(1, "t", 2)
    assert repr(Mine(1, "t", 2)) == "Mine(line=1, thread='t', seq=2)"


def test_gaps_compare_and_hash_without_their_line():
    assert Gap("t1", 1, 4, line=6) == Gap("t1", 1, 4, line=99) == Gap("t1", 1, 4)
    assert hash(Gap("t1", 1, 4, 6)) == hash(Gap("t1", 1, 4, 99))
    assert Gap("t1", 1, 4) != Gap("t1", 1, 5)
    assert Gap("t1", 1, 4).line == 0


@pytest.mark.parametrize(("cls", "args", "kwargs"), SAMPLES, ids=IDS)
def test_frozen_values_hash_and_mutable_ones_do_not(cls, args, kwargs):
    value = make(cls, args, kwargs)
    if cls in MUTABLE:
        with pytest.raises(TypeError):
            hash(value)
    elif cls not in (History, OtherEvent, CheckReport):  # these hold dicts
        assert hash(value) == hash(make(cls, args, kwargs))
        assert len({value, make(cls, args, kwargs)}) == 1


@pytest.mark.parametrize(("cls", "args", "kwargs"), SAMPLES, ids=IDS)
def test_frozen_values_refuse_assignment_and_deletion(cls, args, kwargs):
    value = make(cls, args, kwargs)
    name = cls.__slots__[0]
    if cls in MUTABLE:
        setattr(value, name, "changed")
        assert getattr(value, name) == "changed"
        return
    before = getattr(value, name)
    with pytest.raises(FrozenInstanceError):
        setattr(value, name, "changed")
    with pytest.raises(FrozenInstanceError):
        delattr(value, name)
    with pytest.raises(FrozenInstanceError):
        value.not_a_field = 1
    assert getattr(value, name) == before


def test_the_frozen_error_is_a_reconcile_error_and_an_attribute_error():
    with pytest.raises(ReconcileError) as caught:
        REJECTED.detail = "other"  # type: ignore[misc]
    assert isinstance(caught.value, AttributeError)
    assert "Rejected" in str(caught.value) and "detail" in str(caught.value)


@pytest.mark.parametrize(("cls", "args", "kwargs"), SAMPLES, ids=IDS)
def test_values_have_no_instance_dict(cls, args, kwargs):
    value = make(cls, args, kwargs)
    assert not hasattr(value, "__dict__")
    if cls in MUTABLE:
        with pytest.raises(AttributeError):
            value.not_a_field = 1


@pytest.mark.parametrize(("cls", "args", "kwargs"), SAMPLES, ids=IDS)
def test_values_copy_and_pickle(cls, args, kwargs):
    value = make(cls, args, kwargs)
    assert copy.copy(value) == value
    if cls in (BubbleAdded, BubbleUpdated):  # a copied Bubble is another bubble
        assert copy.deepcopy(value).bubble.to_dict() == value.bubble.to_dict()
        return
    assert copy.deepcopy(value) == value
    assert pickle.loads(pickle.dumps(value)) == value


def test_agent_message_takes_keywords_only():
    with pytest.raises(TypeError):
        AgentMessage("text", "t1", "opus")  # type: ignore[misc]
    message = AgentMessage(type="text", thread="t1", cat="opus")
    assert message.content is None and message.is_explicit_post is False
    assert AgentMessage.__match_args__ == ()
    match message:
        case AgentMessage(type="text", thread=thread):
            assert thread == "t1"
        case _:
            pytest.fail("keyword pattern did not match")


def test_history_keeps_its_messages_as_a_tuple():
    messages = [{"id": "m1"}, {"id": "m2"}]
    history = History("t1", messages)
    assert history.messages == ({"id": "m1"}, {"id": "m2"})
    messages.append({"id": "m3"})
    assert len(history.messages) == 2
    assert History("t1").messages == ()
    assert History("t1", iter([{"id": "m1"}])) == History("t1", ({"id": "m1"},))


def test_other_events_get_a_new_data_dict_each():
    first, second = OtherEvent("heartbeat"), OtherEvent("heartbeat")
    assert first.data == {} and first.data is not second.data
    first.data["n"] = 1
    assert second.data == {}


def test_defaults_are_the_documented_ones():
    assert BubbleUpdated(BUBBLE, Update.CLOSED, 3).delta is None
    assert Rejected(1, Reason.MALFORMED_LINE, "x").thread is None
    assert Stats() == Stats(0, 0, 0, 0)
    assert ThreadCounts() == ThreadCounts(0, 0, 0, 0)


def test_changes_match_positional_patterns():
    def what(change):
        match change:
            case Rejected(line, Reason.UNBOUND_EVENT, detail):
                return ("rejected", line, detail)
            case Gap(thread, after, before):
                return ("gap", thread, after, before)
            case BubbleUpdated(bubble, Update.APPENDED, line, delta):
                return ("appended", bubble.id, line, delta)
            case Duplicate(line=line, seq=seq):
                return ("duplicate", line, seq)
        return None

    assert what(REJECTED) == ("rejected", 3, "no turn")
    assert what(Gap("t1", 1, 4, 6)) == ("gap", "t1", 1, 4)
    assert what(BubbleUpdated(BUBBLE, Update.APPENDED, 2, "x")) == ("appended", "b1", 2, "x")
    assert what(Duplicate(5, "t1", 7)) == ("duplicate", 5, 7)
    assert what(Duplicate(5, "t1", 7)) is not None


@pytest.mark.parametrize(("cls", "args", "kwargs"), SAMPLES, ids=IDS)
def test_match_args_are_the_positional_fields_in_order(cls, args, kwargs):
    expected = () if cls is AgentMessage else cls.__slots__
    assert cls.__match_args__ == expected
    value = make(cls, args, kwargs)
    assert [getattr(value, n) for n in cls.__match_args__] == list(args)[: len(expected)]


def test_slots_list_the_fields_for_a_dict_of_them():
    # What the CHANGELOG offers in place of attrs.asdict(value, recurse=False).
    gap = Gap("t1", 1, 4, 6)
    assert {n: getattr(gap, n) for n in type(gap).__slots__} == {
        "thread": "t1", "after": 1, "before": 4, "line": 6}


def test_to_dict_methods_stay_as_they_were():
    assert REJECTED.to_dict() == {"line": 3, "reason": "unbound_event", "detail": "no turn"}
    assert Gap("t1", 1, 4, 6).to_dict() == {"thread": "t1", "after": 1, "before": 4}
    assert Stats(1, 2, 3, 4).to_dict() == {
        "events": 1, "ignored": 2, "superseded": 3, "duplicates": 4}
    assert ThreadCounts(5, 2, 1, 0).to_dict() == {
        "events": 5, "bubbles": 2, "refused": 1, "gaps": 0}
    rule = RuleReport(3, "k", "t", 2, 1, (4, 9))
    assert RuleReport.from_dict(rule.to_dict()) == rule and rule.refusal


def test_repr_of_a_value_that_holds_itself_shows_dots_as_attrs_did():
    event = OtherEvent("heartbeat", {})
    event.data["self"] = event
    assert repr(event) == "OtherEvent(name='heartbeat', data={'self': ...})"
    added = BubbleAdded(BUBBLE, 1)
    added.line = added  # type: ignore[assignment]
    assert repr(added) == f"BubbleAdded(bubble={BUBBLE!r}, line=...)"
    assert repr(added) == repr(added)  # the guard is released after each repr


def test_repr_of_a_nested_subclass_names_its_outer_class_as_attrs_did():
    class Outer:
        class Inner(Duplicate):
            __slots__ = ()

    assert repr(Outer.Inner(1, "t", 2)) == "Outer.Inner(line=1, thread='t', seq=2)"


def test_a_subclass_may_add_a_weakref_slot():
    # The classes take no weak references (CHANGELOG); a subclass can add the slot.
    class Weak(Rejected):
        __slots__ = ("__weakref__",)

    value = Weak(1, Reason.MALFORMED_LINE, "x")
    assert weakref.ref(value)() is value
    assert repr(value) == repr(Rejected(1, Reason.MALFORMED_LINE, "x")).replace("Rejected", "Weak")
    assert copy.copy(value) == value and copy.deepcopy(value) == value
    assert hash(value) == hash(Weak(1, Reason.MALFORMED_LINE, "x"))


def test_a_subclass_may_name_its_one_extra_slot_as_a_string():
    class Noted(Duplicate):
        __slots__ = "note"

        def __init__(self, line: int, thread: str, seq: int, note: str) -> None:
            super().__init__(line, thread, seq)
            self.note = note

    value = Noted(1, "t", 2, "n")
    assert repr(value) == "Noted(line=1, thread='t', seq=2, note='n')"
    assert copy.copy(value) == value and value != Noted(1, "t", 2, "other")


def _replace(value, **changes):
    # copy.replace (Python 3.13) calls __replace__, which attrs classes had there too.
    replace = getattr(copy, "replace", None)
    return replace(value, **changes) if replace else value.__replace__(**changes)


@pytest.mark.parametrize(("cls", "args", "kwargs"), SAMPLES, ids=IDS)
def test_copy_replace_builds_a_new_value_with_the_fields_given(cls, args, kwargs):
    value = make(cls, args, kwargs)
    same = _replace(value)
    assert same == value and same is not value and type(same) is cls
    first, *rest = cls.__slots__
    changed = _replace(value, **{first: "changed"})
    assert type(changed) is cls and getattr(changed, first) == "changed"
    assert all(getattr(changed, name) is getattr(value, name) for name in rest)
    with pytest.raises(TypeError):
        _replace(value, not_a_field=1)


def test_copy_replace_goes_through_the_constructor():
    assert _replace(Gap("t1", 1, 4, 6), line=9) == Gap("t1", 1, 4, 9)
    assert _replace(History("t1"), messages=[{"id": "m1"}]).messages == ({"id": "m1"},)


def test_the_refusals_the_engine_makes_are_frozen_rejected_values_like_any_other():
    # The engine builds its refusals without Rejected.__init__ (the hot path): the
    # value must be a Rejected in every way a caller can tell.
    from reconcile._bubbles import refusal

    made = refusal(3, Reason.UNBOUND_EVENT, "no turn", "t1")
    assert type(made) is Rejected and made.__class__ is Rejected
    assert made == REJECTED and hash(made) == hash(REJECTED) and repr(made) == repr(REJECTED)
    assert (made.line, made.reason, made.detail, made.thread) == (
        3, Reason.UNBOUND_EVENT, "no turn", "t1")
    for name in Rejected.__slots__:
        with pytest.raises(FrozenInstanceError):
            setattr(made, name, "changed")
        with pytest.raises(FrozenInstanceError):
            delattr(made, name)
    with pytest.raises(FrozenInstanceError):
        made.not_a_field = 1
    assert not hasattr(made, "__dict__")
    assert pickle.loads(pickle.dumps(made)) == made and copy.deepcopy(made) == made


def test_the_engine_logs_its_refusals_as_frozen_rejected_values():
    engine = Reconciler()
    engine.receive_line(b'{"event": "agent_message", "data": {"type": "text", '
                        b'"threadId": "t1", "catId": "opus", "invocationId": "P", '
                        b'"content": "hi"}}')  # unbound: no turn under P
    engine.receive_line(b"not json")
    engine.receive_message({"event": "agent_message", "data": {"type": "text"}})
    unbound, malformed_line, malformed_event = engine.rejected
    assert unbound == Rejected(
        1, Reason.UNBOUND_EVENT, "stream text from 'opus' binds to no turn", "t1")
    assert malformed_line.reason is Reason.MALFORMED_LINE and malformed_line.line == 2
    assert malformed_event.reason is Reason.MALFORMED_EVENT and malformed_event.line == 3
    for value in engine.rejected:
        assert type(value) is Rejected
        with pytest.raises(FrozenInstanceError):
            value.line = 9
