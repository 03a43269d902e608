"""The engine's state and the operations every handler shares (sections 3 and 5).

:class:`EngineCore` owns the threads, the bubble index and the logs, and the few
operations through which every handler changes them: refusing an event, making a
bubble (a turn's primary bubble is made in exactly one place, :meth:`_primary`),
closing a turn, binding an event to its turn (section 3), giving a bubble its message
id and attaching rich blocks. The handlers themselves live in one module per part of
the protocol (``_agent_message``, ``_callbacks``, ``_history``) and the public entry
points in ``_reconciler``; they all build on this class.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ._bubbles import (
    Bubble,
    BubbleAdded,
    BubbleUpdated,
    Change,
    Gap,
    Origin,
    Refusal,
    Status,
    TurnClosed,
    TurnOpened,
    Update,
    refusal,
)
from ._errors import Reason
from ._thread import _LIST_LIMIT, NO_THREAD, ThreadState
from ._turns import _CLOSED_STATES, Activity, Turn, TurnEnd, TurnInput

__all__ = ["EngineCore", "Sink"]

_T = TypeVar("_T")

#: Where a handler reports its changes: a list, or ``None`` when the caller wants
#: none (``Reconciler.feed``, ``check``): then no change object is built at all.
#: Refusals and gaps are kept in the engine's logs either way (a refusal as its line
#: and a ``Refusal`` tuple, see ``EngineCore._refusal_lines``).
Sink = list[Change] | None

# Enum members as module constants: reading ``Status.DONE`` goes through the enum
# metaclass (about 70 ns); a module global is a dictionary read (about 20 ns), and the
# hot path reads several per event.
_STREAMING, _DONE = Status.STREAMING, Status.DONE
_STREAM, _CALLBACK, _SYSTEM = Origin.STREAM, Origin.CALLBACK, Origin.SYSTEM
_CLOSE, _START = TurnInput.CLOSE, TurnInput.START
_OPENS, _CLOSES = Activity.OPENS, Activity.CLOSES
_UNBOUND_EVENT = Reason.UNBOUND_EVENT
_CLOSED, _TEXT_SET = Update.CLOSED, Update.TEXT_SET
_new = object.__new__

# The change objects of every turn (added, opened, closed) are built below without a
# class call where a turn's life goes through: a class whose ``__init__`` is Python
# code costs, called from the interpreter, about 600 instructions more than
# ``object.__new__`` and the slot stores written out (see _agent_message). Only right
# while these are the classes' fields, in full: this ties the inline builds to them.
assert BubbleAdded._fields == ("bubble", "line"), (
    "the inline BubbleAdded in _core no longer sets every field"
)
assert BubbleUpdated._fields == ("bubble", "how", "line", "delta"), (
    "the inline BubbleUpdated in _core no longer sets every field"
)
assert TurnOpened._fields == ("thread", "cat", "turn", "line", "timestamp"), (
    "the inline TurnOpened in _core no longer sets every field"
)
assert TurnClosed._fields == ("thread", "cat", "turn", "how", "line"), (
    "the inline TurnClosed in _core no longer sets every field"
)
# Bubble's too (its __init__ takes 11 arguments): _new_bubble sets these slots, all.
assert Bubble.__slots__ == (
    "id", "thread", "cat", "invocation", "origin", "status", "message_id", "_extra",
    "_text", "_ts", "_number",
), "the inline Bubble in _core no longer sets every field"


def _kept(cache: dict[str, dict[str, _T]], outer: str, inner: str, value: _T) -> _T:
    """Keep ``value`` in a refusal cache (``outer`` -> ``inner`` -> value) and return
    it: the engine words a refusal the first time only."""
    kept = cache.get(outer)
    if kept is None:
        kept = cache[outer] = {}
    kept[inner] = value
    return value


class EngineCore:
    """State and shared operations of the engine (see the module docstring)."""

    def __init__(self) -> None:
        self._threads: dict[str, ThreadState] = {}
        # The thread of the last agent_message the fast path placed (threads are never
        # removed, so it stays valid); before the first, one whose id equals no string.
        self._last_thread: ThreadState = NO_THREAD
        self._bubbles: dict[str, Bubble] = {}
        self._names: dict[str, str] = {}  # agent name -> the one shared string
        # agent -> what -> the detail of an unbound refusal, worded once per engine
        # (see _unbound_detail). It grows with the agents, as _names does.
        self._unbound_details: dict[str, dict[str, str]] = {}
        # agent -> stored message id -> the detail of that stored callback's refusal
        # (section 7: one without its turn id is refused again on every page that
        # holds it). It grows with the stored callbacks refused.
        self._stored_callback_details: dict[str, dict[str, str]] = {}
        self._created = 0  # creation number of the last bubble, across all threads
        self._line = 0
        # Every refusal, in line order, as two lists side by side: its line, and its
        # (reason value, detail, thread) (a Refusal). Refusals of one kind share that
        # tuple (see ThreadState.unbound_why and refused_callbacks), so a refusal
        # costs two list slots and no object: a client that joined mid-turn refuses
        # every chunk of the turn under way, and a kept object is one the garbage
        # collector walks (a Rejected for as long as the engine lives). A Rejected is
        # made from an entry when read (rejected_of), and on the way in only for a
        # caller that wants the changes.
        self._refusal_lines: list[int] = []
        self._refusals: list[Refusal] = []
        self._gaps: list[Gap] = []
        # Lines (and messages) that were no event: blank, or refused as malformed_line.
        # The event count is derived from it (see ``_events``), so the usual event
        # costs no counter of its own.
        self._non_events = 0
        self._ignored = 0
        self._superseded = 0
        self._duplicates = 0

    @property
    def _events(self) -> int:
        """Events received so far: every line or message but the blank and malformed
        ones (section 8's ``events``)."""
        return self._line - self._non_events

    # ------------------------------------------------------------------ refusals

    def _refuse(
        self,
        line: int,
        reason: Reason,
        detail: str,
        changes: Sink,
        thread: Any = None,
    ) -> None:
        """Record a refusal (section 8); the caller has changed (and will change) no
        bubble.

        ``thread`` is whatever the event named: only a string is kept, so a client can
        tell which thread may have missed something without trusting a bad field.
        """
        if thread.__class__ is not str and not isinstance(thread, str):
            thread = None
        self._refusal_lines.append(line)
        self._refusals.append((reason._value_, detail, thread))
        if changes is not None:
            changes.append(refusal(line, reason, detail, thread))

    def _refuse_line(self, line: int, detail: str, changes: Sink) -> None:
        """Section 1: a line (or message) that is no event is refused as
        ``malformed_line``, and is not counted among the events."""
        self._non_events += 1
        self._refuse(line, Reason.MALFORMED_LINE, detail, changes)

    def _unbound(
        self, thread: ThreadState, line: int, what: str, agent: str, changes: Sink
    ) -> None:
        """Section 3: stream-side content that binds to no turn is refused.

        A client that joined mid-turn gets one of these per tool event and thinking
        (its stream chunks are refused inside the fast path, see _agent_message).
        """
        self._refuse(line, _UNBOUND_EVENT, self._unbound_detail(what, agent), changes, thread.id)

    def _unbound_detail(self, what: str, agent: str) -> str:
        """The detail of an unbound refusal ("stream text from 'opus' binds to no
        turn"), worded once per (agent, what) and kept in ``_unbound_details``:
        formatting it costs more than the rest of the refusal."""
        if agent.__class__ is str and what.__class__ is str:
            wordings = self._unbound_details.get(agent)
            detail = wordings.get(what) if wordings is not None else None
            if detail is None:
                detail = _kept(
                    self._unbound_details, agent, what, f"{what} from {agent!r} binds to no turn"
                )
            return detail
        # A str subclass (an in-process caller's) equals the plain name but may word
        # itself otherwise: worded each time, never kept for the plain name.
        return f"{what} from {agent!r} binds to no turn"

    def _unbound_text(self, thread: ThreadState, agent: str) -> Refusal:
        """What the log keeps of an unbound stream chunk from ``agent`` in ``thread``,
        made once per thread and agent: the fast path refuses such a chunk itself (see
        _agent_message), and every chunk of a turn this client never saw announced is
        one. It becomes the thread's ``unbound_why``, the one the fast path finds by
        comparing ``unbound_cat`` with the chunk's agent; the one it replaces, another
        agent's, is kept in ``thread.unbound_text``. ``agent`` is exactly a ``str``
        (step 1)."""
        others = thread.unbound_text
        why = others.pop(agent, None) if others else None
        if why is None:
            why = (_UNBOUND_EVENT._value_, self._unbound_detail("stream text", agent), thread.id)
        last = thread.unbound_cat
        if last is not None:
            others[last] = thread.unbound_why  # type: ignore[assignment]
        thread.unbound_cat = agent
        thread.unbound_why = why
        return why

    # ------------------------------------------------------------------ threads

    def _thread(self, thread_id: str) -> ThreadState:
        """Section 2 step 6 / section 7: the thread exists from now on."""
        thread = self._threads.get(thread_id)
        if thread is None:
            thread = self._threads[thread_id] = ThreadState(thread_id)
        return thread

    # ------------------------------------------------------------------ bubbles

    def _new_bubble(
        self,
        thread: ThreadState,
        cat: str,
        invocation: str | None,
        origin: Origin,
        status: Status,
        ts: int,
        text: str = "",
        message_id: str | None = None,
        error: str | None = None,
    ) -> Bubble:
        """Make a bubble and put it in its thread's order (section 5, order)."""
        self._created += 1
        number = self._created
        # One string object per agent name, shared by all its bubbles, instead of the
        # copy each decoded event brings (about 50 bytes per bubble).
        cat = self._names.setdefault(cat, cat)
        # Bubble(bubble_id, thread.id, cat, ...), inline: every field of Bubble's
        # __init__, in its order (see the assertion at the top of this module).
        bubble = _new(Bubble)
        bubble.id = bubble_id = f"b{number}"
        bubble.thread = thread.id
        bubble.cat = cat
        bubble.invocation = invocation
        bubble.origin = origin
        bubble.status = status
        bubble.message_id = message_id
        bubble._extra = None if error is None else {"error": error}
        bubble._text = text
        bubble._ts = ts
        bubble._number = number
        order = thread.order
        if order.__class__ is list and (
            not order or (order[-1]._ts <= ts and len(order) < _LIST_LIMIT)
        ):
            # Nearly always: the bubble sorts last, since no bubble has a larger
            # creation number and none a later timestamp (see ThreadState.insert).
            order.append(bubble)
        else:
            thread.insert(bubble)
        self._bubbles[bubble_id] = bubble
        return bubble

    def _primary(
        self,
        thread: ThreadState,
        turn: Turn,
        cat: str,
        ts: int,
        line: int,
        changes: Sink,
        text: str = "",
        origin: Origin = _STREAM,
        message_id: str | None = None,
    ) -> Bubble:
        """Section 5: the turn's primary bubble, made now if the turn has none.

        The one place a primary bubble is made. A new one reports a
        :class:`BubbleAdded` with its fields already filled (the caller fills in the
        rest before returning, and reports no update for a bubble it just made: it
        tells by ``turn.primary is None`` beforehand, which spares a tuple per call). It
        starts ``streaming``, or ``done`` when it is a callback snapshot or its turn is
        already closed: a bubble never streams for a turn that will not stream again.
        """
        bubble = turn.primary
        if bubble is not None:
            return bubble
        status = _DONE if origin is _CALLBACK or turn.closed else _STREAMING
        bubble = turn.primary = self._new_bubble(
            thread, cat, turn.id, origin, status, ts, text, message_id
        )
        if changes is not None:
            added = _new(BubbleAdded)  # BubbleAdded(bubble, line), inline
            added.bubble = bubble
            added.line = line
            changes.append(added)
        return bubble

    def _system_line(
        self,
        thread: ThreadState,
        cat: str,
        text: str,
        ts: int,
        line: int,
        changes: Sink,
        status: Status = _DONE,
        error: str | None = None,
    ) -> None:
        """Section 5: a system bubble, made anew each time (it belongs to no turn)."""
        bubble = self._new_bubble(thread, cat, None, _SYSTEM, status, ts, text, error=error)
        if changes is not None:
            added = _new(BubbleAdded)  # BubbleAdded(bubble, line), inline
            added.bubble = bubble
            added.line = line
            changes.append(added)

    def _set_text(self, bubble: Bubble, text: str, line: int, changes: Sink) -> None:
        """Set a snapshot text; a text equal to the current one is no change at all."""
        if bubble.set_text(text):
            if changes is not None:
                changes.append(BubbleUpdated(bubble, _TEXT_SET, line))

    def _give_message_id(
        self,
        thread: ThreadState,
        bubble: Bubble,
        message_id: str,
        line: int,
        changes: Sink,
    ) -> None:
        """Index ``bubble`` under ``message_id``; attach rich blocks held for it.

        Two bubbles can carry one message id (an explicit post and a callback that
        reuse it); section 5 gives the id to the first bubble created, so lookups never
        depend on the order in which the two got their id.
        """
        known = thread.by_message_id.get(message_id)
        if known is not None:
            if bubble._number < known._number:  # the creation numbers
                thread.by_message_id[message_id] = bubble
            return
        thread.by_message_id[message_id] = bubble
        held = thread.held_blocks.pop(message_id, None) if thread.held_blocks else None
        if held:
            for block_id in held:
                self._add_block(bubble, block_id, line, changes)

    def _add_block(self, bubble: Bubble, block_id: str, line: int, changes: Sink) -> None:
        """Section 5: each block id once; a repeated one is no change (and no update)."""
        if bubble.add_block(block_id):
            if changes is not None:
                changes.append(BubbleUpdated(bubble, Update.BLOCK, line))

    # ------------------------------------------------------------------ turns

    def _bind(
        self, thread: ThreadState, turn_id: str | None, parent: str | None, agent: str
    ) -> Turn | None:
        """Section 3, binding: the turn a stream-side event belongs to, or ``None``.

        ``turn_id`` and ``parent`` are the event's ``turnInvocationId`` and
        ``invocationId``, already checked to be strings or ``None`` (section 2 step 3);
        an empty string is no id.
        """
        if turn_id:
            turn = thread.turns.get(turn_id)  # rule 1: named outright, known or not
            return turn if turn is not None else thread.turn(turn_id)
        if parent:
            # Rule 2: the latest turn announced under this parent. No fall-through:
            # an unknown parent must not be guessed into the open turn.
            parents = thread.latest.get(agent)
            return parents.get(parent) if parents is not None else None
        turn = thread.open_turn.get(agent)  # rule 3: the open turn, if still open
        if turn is not None and turn.closed:
            return None
        return turn

    def _open_turn(
        self,
        thread: ThreadState,
        turn_id: str,
        parent: Any,
        agent: str,
        ts: int,
        line: int,
        changes: Sink,
    ) -> Turn:
        """Section 3, announcing: ``turn_id`` becomes the open turn of (thread, agent)
        and the latest turn under ``parent``. Shared by ``invocation_created`` and by a
        stored draft that names its parent (section 7, version 1.1)."""
        # Written out (every announcement): Turn.closed and _start.
        turn = thread.turn(turn_id)
        current = thread.open_turn.get(agent)
        if (
            current is not None
            and current is not turn
            and current.state not in _CLOSED_STATES
        ):
            # One agent runs one turn at a time in a thread: a newer announcement
            # means the older turn is over, even if its done was lost.
            self._close(thread, current, TurnEnd.SUPERSEDED, line, changes)
        if turn.state not in _CLOSED_STATES:  # a closed turn never reopens
            thread.open_turn[agent] = turn
        if isinstance(parent, str) and parent:
            parents = thread.latest.get(agent)
            if parents is None:
                thread.latest[agent] = {parent: turn}
            else:
                parents[parent] = turn
        if turn.step(_START)[2] is _OPENS:
            self._opened(thread, turn, agent, ts, line, changes)
        return turn

    def _start(
        self, thread: ThreadState, turn: Turn, cat: str, ts: int, line: int, changes: Sink
    ) -> None:
        """An announcement or a draft: evidence that the turn's agent works on it."""
        if turn.step(_START)[2] is _OPENS:
            self._opened(thread, turn, cat, ts, line, changes)

    def _opened(
        self, thread: ThreadState, turn: Turn, cat: str, ts: int, line: int, changes: Sink
    ) -> None:
        """The table said the turn starts running: record it and report it."""
        cat = self._names.setdefault(cat, cat)
        thread.running[turn.id] = (cat, ts, line)
        if changes is not None:
            # TurnOpened(thread.id, cat, turn.id, line, ts), inline.
            opened = _new(TurnOpened)
            opened.thread = thread.id
            opened.cat = cat
            opened.turn = turn.id
            opened.line = line
            opened.timestamp = ts
            changes.append(opened)

    def _close(
        self, thread: ThreadState, turn: Turn, how: TurnEnd, line: int, changes: Sink
    ) -> None:
        """Section 3, closing: the turn closes and its primary stops streaming; a
        running turn reports how it stopped (one that never ran closes silently)."""
        activity = turn.step(_CLOSE)[2]
        # The primary stops streaming (Bubble.settle: an error stays an error) and
        # _stopped, written out (every done).
        bubble = turn.primary
        if bubble is not None and bubble.settle():
            if changes is not None:
                # BubbleUpdated(bubble, _CLOSED, line), inline.
                update = _new(BubbleUpdated)
                update.bubble = bubble
                update.how = _CLOSED
                update.line = line
                update.delta = None
                changes.append(update)
        if activity is _CLOSES:
            cat = thread.running.pop(turn.id)[0]
            if changes is not None:
                # TurnClosed(thread.id, cat, turn.id, how, line), inline.
                closed = _new(TurnClosed)
                closed.thread = thread.id
                closed.cat = cat
                closed.turn = turn.id
                closed.how = how
                closed.line = line
                changes.append(closed)

    def _stopped(
        self, thread: ThreadState, turn: Turn, how: TurnEnd, line: int, changes: Sink
    ) -> None:
        """The table said a running turn stopped: forget it and report it."""
        cat = thread.running.pop(turn.id)[0]
        if changes is not None:
            changes.append(TurnClosed(thread.id, cat, turn.id, how, line))
