"""The engine: one :class:`Reconciler` holds every thread's turns and bubbles.

Theory of operation
-------------------
Events come in one at a time (``receive_line``, ``receive_message`` or ``receive``)
and each call returns the changes it caused. The engine is a pure function of the
events it has seen: no clock, no randomness, no I/O. Each event is placed by exact
identity only (thread id, turn id, message id); an event without enough identity is
refused and changes nothing. There is deliberately no fallback to "the latest
bubble", to time windows or to similar text: those are the heuristics that produced
duplicate and vanished bubbles in real clients.

Where each part of the protocol lives:

* this module: the entry points (``receive_message`` itself is section 2's fast path,
  made in ``_agent_message``: see ``_message_path``), section 1 for lines, the batch
  path, and the reading API;
* ``_agent_message``: section 2's steps and the handlers of sections 3 and 5;
* ``_callbacks``: section 4; ``_history``: section 7;
* ``_core``: the state and the operations every handler shares (making a turn's
  primary bubble, closing a turn, binding); ``_thread``: one thread's indexes;
* ``_turns``: the turn state machine; ``_bubbles``: bubbles and changes;
* ``_views``: read-only views; ``_invariants``: the checks the tests run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from ._agent_message import AgentMessageHandlers, _message_path
from ._bubbles import Bubble, Change, Gap, Rejected, RunningTurn
from ._errors import LocalTypeError
from ._events import AgentMessage, History, OtherEvent
from ._history import HistoryMerge
from ._turns import TurnEnd
from ._invariants import check
from ._views import LogView, RefusalLog, Stats, ThreadBubbles
from ._core import Sink
from ._wire import WireError, decode_json, is_blank, needs_exact

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError

__all__ = ["Reconciler", "Stats", "ThreadBubbles", "LogView"]


class Reconciler(AgentMessageHandlers, HistoryMerge):
    """Merge stream chunks, callbacks and history into bubbles, by exact identity.

    Example::

        r = Reconciler()
        for line in open("trace.jsonl", "rb"):
            for change in r.receive_line(line):
                ...
        r.bubbles("t1")

    Every ``receive*`` call counts as one line (blank lines included), so the line
    numbers in :class:`~reconcile.Rejected` match the trace file.
    """

    # ------------------------------------------------------------------ input

    def receive_line(self, line: bytes | str) -> tuple[Change, ...]:
        """Feed one trace line, with or without its trailing ``\\n``.

        Args:
            line: the raw line, bytes or text.

        Returns:
            The changes this line caused; ``()`` for a blank or ignored line.

        Complexity: O(line length + log n) for n bubbles in the line's thread.
        """
        if not isinstance(line, (bytes, str, bytearray)):
            raise LocalTypeError(f"receive_line takes bytes or str, not {type(line).__name__}")
        try:
            message = _loads(line)
        except _JSONDecodeError:
            changes: list[Change] = []
            self._take_undecodable(line, changes)
            return tuple(changes)
        return self._receive_decoded(message, line)

    # receive_message is the fast path itself, made from the one source it shares with
    # the batch path (_agent_message._message_path): no Python call between the
    # caller and the path. The stub gives type checkers its signature.
    if TYPE_CHECKING:

        def receive_message(
            self, message: Any, raw: bytes | str | None = None
        ) -> tuple[Change, ...]: ...

        _receive_decoded = receive_message

    else:
        receive_message = _message_path(wanted=True)
        receive_message.__doc__ = """Feed one decoded event, ``{"event": name, "data": {...}}``.

        This is how a socket client embeds the engine: pass what the socket library
        decoded. Anything that is not such a dict is refused as ``malformed_line``.

        Args:
            message: the decoded event.
            raw: the line ``message`` was decoded from, if it was decoded with orjson
                (which reads an integer beyond 64 bits as a float): the engine then
                reads such a value from the line, exactly. Pass only the very line
                ``message`` came from. ``None`` (the default) when ``message`` is
                exact. ``receive_line`` does this for you.

        Returns:
            The changes this event caused; ``()`` for an ignored event.

        Complexity: O(1) for a stream chunk; O(log n) for a new bubble among n in its
        thread.
        """
        receive_message.__qualname__ = "Reconciler.receive_message"
        # The same function for receive_line and receive: a subclass that overrides
        # receive_message (to log what it is given, say) is not called for them.
        _receive_decoded = receive_message

    def receive(self, event: AgentMessage | History | OtherEvent) -> tuple[Change, ...]:
        """Feed one typed event (it takes the same path as its wire form).

        Raises:
            LocalTypeError: ``event`` is not one of the typed event classes (a
                ``LocalProtocolError`` and a ``TypeError``).
        """
        if not isinstance(event, (AgentMessage, History, OtherEvent)):
            raise LocalTypeError(
                f"receive() takes AgentMessage, History or OtherEvent, not "
                f"{type(event).__name__}; use receive_message() for dicts"
            )
        return self._receive_decoded(event.to_wire())

    def feed(self, lines: Iterable[bytes | str]) -> int:
        """Feed many trace lines (with or without their newline), discarding the
        changes, e.g. ``engine.feed(open(path, "rb"))``. Returns how many were fed.

        The batch path: it builds no change objects at all (refusals, gaps, counters
        and running turns are kept exactly as ``receive_line`` keeps them), so it costs
        less per line than ``receive_line``.

        Raises:
            LocalTypeError: ``lines`` is a single str or bytes (a path, or a whole
                trace): iterating it would feed one character or byte per line; or a
                line is not bytes or str.
        """
        if isinstance(lines, (str, bytes, bytearray, memoryview)):
            what = "a str" if isinstance(lines, str) else f"a {type(lines).__name__} object"
            raise LocalTypeError(
                f"feed() takes an iterable of lines, not {what}; to read a file, pass "
                "open(path, 'rb'), or split a trace with .splitlines()"
            )
        take = self._take_undecodable
        batched = self._message_batched
        history = self._history
        dispatch = self._dispatch_slowly
        loads, decode_error = _loads, _JSONDecodeError
        count = 0
        for raw in lines:
            if raw.__class__ is not bytes and not isinstance(raw, (bytes, str, bytearray)):
                raise LocalTypeError(
                    f"receive_line takes bytes or str, not {type(raw).__name__}"
                )
            count += 1
            # Section 1 as receive_message does it, written out for the usual line.
            try:
                message = loads(raw)
            except decode_error:
                take(raw, None)  # blank, malformed, or beyond orjson: it counts the line
                continue
            line = self._line = self._line + 1
            try:
                data: Any = message["data"]
                name = message["event"]
            except (KeyError, TypeError):  # not an object, or no data or event
                dispatch(message, line, None, raw)  # the general path words it
                continue
            if data.__class__ is dict:
                if name == "agent_message":
                    batched(message, raw)
                    continue
                if name == "history":
                    # No scan for big integers: the page takes the exact decode if a
                    # timestamp needs it (see _history).
                    history(data, line, None, raw)
                    continue
                if name.__class__ is str:
                    self._ignored += 1  # another event: ignored (section 1)
                    continue
            dispatch(message, line, None, raw)
        return count

    # ------------------------------------------------------------------ reading

    @property
    def threads(self) -> tuple[str, ...]:
        """Thread ids in the order the threads came to exist."""
        return tuple(self._threads)

    def bubbles(self, thread: str) -> ThreadBubbles:
        """A live view of ``thread``'s bubbles in display order.

        Raises:
            KeyError: the thread does not exist (yet).
        """
        return ThreadBubbles(self._threads[thread])

    def bubble(self, bubble_id: str) -> Bubble:
        """The bubble with this id. Complexity: O(1). Raises ``KeyError``."""
        return self._bubbles[bubble_id]

    def open_turn(self, thread: str, cat: str) -> str | None:
        """The id of the open turn of (thread, agent), or ``None``."""
        state = self._threads.get(thread)
        turn = state.open_turn.get(cat) if state is not None else None
        return turn.id if turn is not None and not turn.closed else None

    def running_turns(self, thread: str) -> tuple[RunningTurn, ...]:
        """The turns of ``thread`` whose agent is working on them, in opening order.

        A turn runs from the first evidence of work (its announcement, a stored
        draft, or its first bound chunk, tool, thinking or rich block) until it closes
        (done, error, a newer turn of its agent, its stored message, or
        :meth:`interrupt`). Its bubble may already be ``done``: a callback posted
        mid-turn is a finished message while the agent keeps working.

        Returns ``()`` for an unknown thread. Complexity: O(running turns).
        """
        state = self._threads.get(thread)
        if state is None:
            return ()
        return tuple(
            RunningTurn(thread, cat, turn, since, line)
            for turn, (cat, since, line) in state.running.items()
        )

    def interrupt(self, thread: str) -> tuple[Change, ...]:
        """Close every running turn of ``thread``: the server lost them.

        For a caller that saw the server lose the thread (a restart that dropped its
        state): nothing will ever close these turns otherwise, and a UI would show them
        working forever. Each reports a :class:`TurnClosed` (``how`` =
        ``TurnEnd.INTERRUPTED``), and a ``streaming`` primary bubble becomes ``done``.
        The turns are closed for good: later stream text for them is refused.

        It feeds no event, so it uses no line number; its changes carry the number of
        the last line fed. Returns ``()`` for an unknown thread.
        """
        state = self._threads.get(thread)
        if state is None:
            return ()
        changes: list[Change] = []
        for turn_id in list(state.running):
            self._close(state, state.turns[turn_id], TurnEnd.INTERRUPTED, self._line, changes)
        return tuple(changes)

    @property
    def rejected(self) -> LogView[Rejected]:
        """Every refusal so far, in line order (a live view; O(1) to get).

        Each item is made when read: equal to the :class:`Rejected` the engine handed
        out for that event, not the same object (the engine keeps plain tuples, which
        cost the garbage collector nothing, see ``Refusal``).
        """
        return RefusalLog(self._refusal_lines, self._refusals)

    @property
    def gaps(self) -> LogView[Gap]:
        """Every ``seq`` gap so far, in the order seen (a live view; O(1) to get)."""
        return LogView(self._gaps)

    @property
    def stats(self) -> Stats:
        return Stats(self._events, self._ignored, self._superseded, self._duplicates)

    @property
    def lines(self) -> int:
        """How many lines / messages / events were fed so far."""
        return self._line

    def to_dict(self) -> dict[str, Any]:
        """The protocol section 9 document (what ``replay --json`` prints)."""
        return {
            "threads": {
                h: [bubble.to_dict() for bubble in t.order] for h, t in self._threads.items()
            },
            # Rejected.to_dict of each entry, without making the Rejected.
            "rejected": [
                {"line": line, "reason": reason, "detail": detail}
                for line, (reason, detail, _) in zip(self._refusal_lines, self._refusals)
            ],
            "stats": self.stats.to_dict(),
            "gaps": [g.to_dict() for g in self._gaps],
        }

    # ------------------------------------------------------------------ dispatch

    def _take_undecodable(self, line: bytes | str, changes: Sink) -> Any:
        """Section 1 for a line orjson cannot read: count it, then it is blank, or
        malformed (refused), or beyond orjson (a number beyond a double), which the
        exact decoder reads and the general path dispatches.

        Returns the decoded message (``None`` for a blank or malformed line).
        """
        self._line += 1
        if is_blank(line):
            self._non_events += 1
            return None
        if line[-1:] == b"\n" or line[-1:] == "\n":
            # The line's own terminator: drop it so a refusal words the position on
            # the line as the file shows it ("line 1 column 6", not "line 2").
            line = line[:-1]
        try:
            # Words the error, or decodes exactly what orjson cannot.
            message = decode_json(line)
        except WireError as exc:
            self._refuse_line(self._line, f"not strict JSON: {exc}", changes)
            return None
        self._dispatch_slowly(message, self._line, changes, None)
        return message

    def _dispatch_slowly(
        self, message: Any, line: int, changes: Sink, raw: bytes | str | None
    ) -> None:
        """Section 1's shape check and the dispatch by event name, one check at a time:
        the general path of a message the fast path (``receive_message``) passed on.
        ``raw`` is the line ``message`` was decoded from by orjson, or ``None`` when
        ``message`` is exact: the line is decoded again exactly if it may hold an
        integer beyond 64 bits."""
        if raw is not None:
            if needs_exact(raw):
                try:
                    message = decode_json(raw)
                except WireError as exc:  # orjson read the line: this cannot happen
                    self._refuse_line(line, f"not strict JSON: {exc}", changes)
                    return
            raw = None  # exact now (the scan found no integer orjson could have lost)
        if not isinstance(message, dict):
            self._refuse_line(line, "a line must be a JSON object", changes)
            return
        name = message.get("event")
        data = message.get("data")
        if not isinstance(name, str) or not isinstance(data, dict):
            self._refuse_line(line, "needs a string 'event' and an object 'data'", changes)
            return
        if name == "agent_message":
            self._agent_message_slowly(data, line, changes, raw)
        elif name == "history":
            self._history(data, line, changes)
        else:
            self._ignored += 1

    # ------------------------------------------------------------------ checks

    def _check(self) -> None:
        """Assert every index and ordering invariant. For tests; O(total size)."""
        check(self)
