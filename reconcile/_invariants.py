"""The engine's invariants, checked in full. For tests: O(total size of the state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sortedcontainers import SortedKeyList  # type: ignore[import-untyped]

from ._bubbles import _REASONS, Origin, Status
from ._thread import NO_THREAD

if TYPE_CHECKING:
    from ._core import EngineCore

__all__ = ["check"]


def check(engine: EngineCore) -> None:
    """Assert every index and ordering invariant of ``engine``.

    Raises:
        AssertionError: an invariant does not hold (a bug in the engine).
    """
    seen: set[str] = set()
    numbers: list[int] = []
    for thread_id, thread in engine._threads.items():
        assert thread.id == thread_id
        order = thread.order
        assert order.__class__ is list or isinstance(order, SortedKeyList)
        keys = [bubble.sort_key[:2] for bubble in order]
        assert keys == sorted(keys), "order is sorted by (timestamp, creation number)"
        in_thread: set[str] = set()
        for bubble in order:
            number = bubble.sort_key[1]
            assert bubble.id == f"b{number}"
            assert engine._bubbles[bubble.id] is bubble
            assert bubble.thread == thread_id
            assert bubble.status in (Status.STREAMING, Status.DONE, Status.ERROR)
            assert bubble.origin in (Origin.STREAM, Origin.CALLBACK, Origin.SYSTEM)
            assert len(set(bubble.blocks)) == len(bubble.blocks), "blocks are unique"
            in_thread.add(bubble.id)
            numbers.append(number)
        assert not (in_thread & seen), "a bubble lives in one thread"
        seen |= in_thread
        primaries: set[str] = set()
        for turn_id, turn in thread.turns.items():
            assert turn.id == turn_id
            primary = turn.primary
            if primary is None:
                assert not turn.replaced, "a replaced turn has its callback bubble"
                continue
            assert primary.id in in_thread
            assert primary.id not in primaries, "a bubble is the primary of one turn"
            primaries.add(primary.id)
            assert primary.invocation == turn_id
            assert (primary.origin is Origin.CALLBACK) == turn.replaced
            if turn.closed:
                assert primary.status is not Status.STREAMING, "a closed turn is not streaming"
        running = [t.id for t in thread.turns.values() if t.running]
        assert sorted(thread.running) == sorted(running), "running index = running turns"
        # The last unbound agent's Refusal beside its name, the others' by agent.
        assert (thread.unbound_cat is None) == (thread.unbound_why is None)
        assert thread.unbound_cat is None or thread.unbound_cat.__class__ is str
        assert thread.unbound_cat not in thread.unbound_text
        for why in (thread.unbound_why, *thread.unbound_text.values()):
            assert why is None or (why[0] == "unbound_event" and why[2] == thread.id), why
        for turn in thread.open_turn.values():
            assert thread.turns[turn.id] is turn
        for parents in thread.latest.values():
            for turn in parents.values():
                assert thread.turns[turn.id] is turn
        for message_id, bubble in thread.by_message_id.items():
            assert bubble.message_id == message_id and bubble.id in in_thread
            assert message_id not in thread.held_blocks, "held blocks wait for no bubble"
        for (turn_id, message_id), bubble in thread.posts.items():
            assert bubble.invocation == turn_id and bubble.message_id == message_id
            assert bubble.id in in_thread and bubble.id not in primaries
        for bubble in thread.stored.values():
            assert bubble.id in in_thread and bubble.invocation is None
    assert seen == set(engine._bubbles), "every bubble is in exactly one thread"
    assert sorted(numbers) == list(range(1, engine._created + 1))
    # The refusal log is two lists side by side: the lines, in order, and the
    # (reason value, detail, thread) tuples of plain values (see Refusal).
    lines, whys = engine._refusal_lines, engine._refusals
    assert len(lines) == len(whys)
    assert all(number.__class__ is int for number in lines) and lines == sorted(lines)
    for why in whys:
        assert why.__class__ is tuple and len(why) == 3, why
        reason, detail, named = why
        assert reason.__class__ is str and reason in _REASONS
        assert isinstance(detail, str) and (named is None or isinstance(named, str))
    # The fast path's last thread: none yet, or a thread of the engine's, by a plain id.
    last = engine._last_thread
    assert last is NO_THREAD or (
        last.id.__class__ is str and engine._threads.get(last.id) is last
    )
    assert engine._events <= engine._line
