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

Indexes, all per thread and all hash maps, so every event costs O(1) dictionary
work plus at most one O(log n) insertion into the ordered bubble list:

* ``turns``: turn id -> :class:`~reconcile._turns.Turn` (state + primary bubble);
* ``open_turn``: agent -> the turn announced last for it (a closed one counts as none);
* ``latest``: (agent, parent id) -> the turn announced last under that parent;
* ``by_message_id``: message id -> the first bubble that carries it;
* ``posts``: (turn id, message id) -> second posts and explicit posts;
* ``stored``: history message id -> a turn-less stored bubble;
* ``held_blocks``: message id -> rich block ids waiting for their bubble;
* ``order``: a ``SortedList`` of (timestamp, creation number, bubble). The key is set
  when the bubble is made and never changes (a replacement keeps its place), which is
  what lets a late callback land where its turn began.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs
from sortedcontainers import SortedList  # type: ignore[import-untyped]

from ._bubbles import (
    Bubble,
    BubbleAdded,
    BubbleUpdated,
    Change,
    Duplicate,
    Gap,
    Origin,
    Rejected,
    Status,
    Superseded,
    Update,
)
from ._errors import LocalProtocolError, Reason
from ._events import AgentMessage, History, OtherEvent
from ._turns import Action, Turn, TurnInput
from ._wire import (
    KNOWN_TYPES,
    WireError,
    check_agent_message,
    decode_json,
    epoch_key,
    is_blank,
    is_id,
    parse_json_object,
)

__all__ = ["Reconciler", "Stats", "ThreadBubbles", "LogView"]

# Enum members as module constants: reading ``Status.DONE`` goes through the enum
# metaclass (about 70 ns); a module global is a dictionary read (about 20 ns), and the
# hot path reads several per event.
_STREAMING, _DONE, _ERROR = Status.STREAMING, Status.DONE, Status.ERROR
_STREAM, _CALLBACK, _SYSTEM = Origin.STREAM, Origin.CALLBACK, Origin.SYSTEM
_STREAM_TEXT, _CALLBACK_IN, _CLOSE, _STORED = (
    TurnInput.STREAM_TEXT, TurnInput.CALLBACK, TurnInput.CLOSE, TurnInput.STORED_MESSAGE
)
_APPEND, _SUPERSEDE, _SET_TEXT = Action.APPEND, Action.SUPERSEDE, Action.SET_TEXT
_APPENDED = Update.APPENDED


@attrs.frozen
class Stats:
    """Counters of PROTOCOL v1 section 9."""

    events: int = 0  # lines that passed section 1
    ignored: int = 0  # other event names, unknown types, JSON payloads that make nothing
    superseded: int = 0  # stream chunks dropped because a callback replaced the turn
    duplicates: int = 0  # events skipped by seq

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


class _Thread:
    """Everything the engine knows about one thread (see the module docstring)."""

    __slots__ = (
        "id",
        "order",
        "max_ts",
        "seen_ts",
        "seq",
        "turns",
        "open_turn",
        "latest",
        "by_message_id",
        "posts",
        "stored",
        "held_blocks",
    )

    def __init__(self, thread_id: str) -> None:
        self.id = thread_id
        self.order: SortedList = SortedList()
        # Largest timestamp seen; events without one take it (0 before any is seen;
        # timestamps may be negative, so "seen" is tracked apart from the value).
        self.max_ts = 0
        self.seen_ts = False
        self.seq: tuple[Any, int] | None = None  # (epoch key, last seq)
        self.turns: dict[str, Turn] = {}
        self.open_turn: dict[str, Turn] = {}
        self.latest: dict[tuple[str, str], Turn] = {}
        self.by_message_id: dict[str, Bubble] = {}
        self.posts: dict[tuple[str, str], Bubble] = {}
        self.stored: dict[str, Bubble] = {}
        # Ordered sets (dicts): a server repeating a block adds nothing here either.
        self.held_blocks: dict[str, dict[str, None]] = {}

    def turn(self, turn_id: str) -> Turn:
        turn = self.turns.get(turn_id)
        if turn is None:
            turn = self.turns[turn_id] = Turn(turn_id)
        return turn


class ThreadBubbles(Sequence[Bubble]):
    """A live, read-only view of one thread's bubbles in display order.

    Complexity: ``len`` O(1), indexing O(log n), iteration O(n).
    """

    __slots__ = ("_order",)

    def __init__(self, order: SortedList) -> None:
        self._order = order

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [entry[2] for entry in self._order[index]]
        return self._order[index][2]

    def __iter__(self) -> Iterator[Bubble]:
        for entry in self._order:
            yield entry[2]

    def __repr__(self) -> str:
        return f"ThreadBubbles({list(self)!r})"


class LogView(Sequence):
    """A live, read-only view of one of the engine's logs (refusals or gaps).

    Reading it copies nothing, so a UI may check ``len(engine.rejected)`` after every
    event. It compares equal to any list or tuple with the same items.
    Complexity: ``len`` and indexing O(1).
    """

    __slots__ = ("_items",)

    def __init__(self, items: list) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):  # type: ignore[override]
        return self._items[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (LogView, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LogView({self._items!r})"


class Reconciler:
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

    def __init__(self) -> None:
        self._threads: dict[str, _Thread] = {}
        self._bubbles: dict[str, Bubble] = {}
        self._names: dict[str, str] = {}  # agent name -> the one shared string
        self._created = 0  # creation number of the last bubble, across all threads
        self._line = 0
        self._rejected: list[Rejected] = []
        self._gaps: list[Gap] = []
        self._events = 0
        self._ignored = 0
        self._superseded = 0
        self._duplicates = 0

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
            raise LocalProtocolError(f"receive_line takes bytes or str, not {type(line).__name__}")
        self._line += 1
        if is_blank(line):
            return ()
        try:
            message = decode_json(line)
        except WireError as exc:
            return self._reject(self._line, Reason.MALFORMED_LINE, f"not strict JSON: {exc}")
        return self._dispatch(message, self._line)

    def receive_message(self, message: Any) -> tuple[Change, ...]:
        """Feed one decoded event, ``{"event": name, "data": {...}}``.

        This is how a socket client embeds the engine: pass what the socket library
        decoded. Anything that is not such a dict is refused as ``malformed_line``.
        """
        self._line += 1
        return self._dispatch(message, self._line)

    def receive(self, event: AgentMessage | History | OtherEvent) -> tuple[Change, ...]:
        """Feed one typed event (it takes the same path as its wire form).

        Raises:
            LocalProtocolError: ``event`` is not one of the typed event classes.
        """
        if not isinstance(event, (AgentMessage, History, OtherEvent)):
            raise LocalProtocolError(
                f"receive() takes AgentMessage, History or OtherEvent, not "
                f"{type(event).__name__}; use receive_message() for dicts"
            )
        self._line += 1
        return self._dispatch(event.to_wire(), self._line)

    def feed(self, lines: Iterable[bytes | str]) -> int:
        """Feed many trace lines (with or without their newline), discarding the
        changes, e.g. ``engine.feed(open(path, "rb"))``. Returns how many were fed."""
        receive = self.receive_line
        count = 0
        for line in lines:
            receive(line)
            count += 1
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
        return ThreadBubbles(self._threads[thread].order)

    def bubble(self, bubble_id: str) -> Bubble:
        """The bubble with this id. Complexity: O(1). Raises ``KeyError``."""
        return self._bubbles[bubble_id]

    def open_turn(self, thread: str, cat: str) -> str | None:
        """The id of the open turn of (thread, agent), or ``None``."""
        state = self._threads.get(thread)
        turn = state.open_turn.get(cat) if state is not None else None
        return turn.id if turn is not None and not turn.closed else None

    @property
    def rejected(self) -> LogView:
        """Every refusal so far, in line order (a live view; O(1) to get)."""
        return LogView(self._rejected)

    @property
    def gaps(self) -> LogView:
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
        """The PROTOCOL v1 section 9 document (what ``replay --json`` prints)."""
        return {
            "threads": {
                h: [entry[2].to_dict() for entry in t.order] for h, t in self._threads.items()
            },
            "rejected": [r.to_dict() for r in self._rejected],
            "stats": self.stats.to_dict(),
            "gaps": [g.to_dict() for g in self._gaps],
        }

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, message: Any, line: int) -> tuple[Change, ...]:
        # Fast path first: decoded JSON (exact dicts) carrying an agent_message.
        if message.__class__ is dict:
            data = message.get("data")
            if data.__class__ is dict and message.get("event") == "agent_message":
                self._events += 1
                return self._agent_message(data, line)
        if not isinstance(message, dict):
            return self._reject(line, Reason.MALFORMED_LINE, "a line must be a JSON object")
        name = message.get("event")
        data = message.get("data")
        if not isinstance(name, str) or not isinstance(data, dict):
            return self._reject(
                line, Reason.MALFORMED_LINE, "needs a string 'event' and an object 'data'"
            )
        self._events += 1
        if name == "agent_message":
            return self._agent_message(data, line)
        if name == "history":
            return self._history(data, line)
        self._ignored += 1
        return ()

    def _reject(
        self, line: int, reason: Reason, detail: str, thread: Any = None
    ) -> tuple[Change, ...]:
        """Refuse a whole event before it touched anything."""
        changes: list[Change] = []
        self._refuse(line, reason, detail, changes, thread)
        return tuple(changes)

    def _refuse(
        self, line: int, reason: Reason, detail: str, changes: list[Change], thread: Any = None
    ) -> None:
        """Record a refusal; the caller has changed (and will change) no bubble."""
        rejected = Rejected(line, reason, detail, thread if isinstance(thread, str) else None)
        self._rejected.append(rejected)
        changes.append(rejected)

    def _thread(self, thread_id: str) -> _Thread:
        thread = self._threads.get(thread_id)
        if thread is None:
            thread = self._threads[thread_id] = _Thread(thread_id)
        return thread

    def _agent_message(self, data: dict[str, Any], line: int) -> tuple[Change, ...]:
        get = data.get
        kind = get("type")
        thread_id = get("threadId")
        cat = get("catId")
        # Step 1: the envelope.
        if not (
            # The class test answers decoded JSON at once; isinstance admits subclasses.
            (kind.__class__ is str or isinstance(kind, str))
            and (thread_id.__class__ is str or isinstance(thread_id, str))
            and (cat.__class__ is str or isinstance(cat, str))
        ):
            return self._reject(
                line, Reason.MALFORMED_EVENT, "type, threadId and catId must be strings",
                thread_id,
            )
        # Step 2: unknown types are ignored, for forward compatibility.
        apply = _APPLY.get(kind)
        if apply is None:
            self._ignored += 1
            return ()
        # Step 3: field types.
        problem = check_agent_message(data, kind)
        if problem is not None:
            return self._reject(line, Reason.MALFORMED_EVENT, problem, thread_id)
        # Step 6 is done here, before steps 4 and 5: nothing between them can refuse,
        # and a seq duplicate implies an earlier event already made the thread.
        thread = self._threads.get(thread_id)
        if thread is None:
            thread = self._threads[thread_id] = _Thread(thread_id)
        changes: list[Change] = []
        # Step 4: seq.
        seq = get("seq")
        if seq is not None:
            epoch = get("seqEpoch")
            if epoch is not None and epoch.__class__ is not str:
                epoch = epoch_key(epoch)  # strings and null are their own key
            last = thread.seq
            if last is not None and last[0] == epoch:
                if seq <= last[1]:
                    self._duplicates += 1
                    return (Duplicate(line, thread_id, seq),)
                if seq > last[1] + 1:
                    gap = Gap(thread_id, last[1], seq, line)
                    self._gaps.append(gap)
                    changes.append(gap)
            thread.seq = (epoch, seq)
        # Step 5: the timestamp.
        ts = get("timestamp")
        if ts is None:
            ts = thread.max_ts
        elif ts > thread.max_ts or not thread.seen_ts:
            thread.max_ts = ts
            thread.seen_ts = True
        # Step 7: apply by type.
        apply(self, thread, data, cat, ts, line, changes)
        return tuple(changes)

    # ------------------------------------------------------------------ binding

    def _bind(self, thread: _Thread, data: dict[str, Any], agent: str) -> Turn | None:
        """Section 3: the turn a stream-side event belongs to, or ``None``."""
        turn_id = data.get("turnInvocationId")
        if turn_id and isinstance(turn_id, str):
            return thread.turn(turn_id)  # rule 1: named outright, known or not
        parent = data.get("invocationId")
        if parent and isinstance(parent, str):
            # Rule 2: the latest turn announced under this parent. No fall-through:
            # an unknown parent must not be guessed into the open turn.
            return thread.latest.get((agent, parent))
        turn = thread.open_turn.get(agent)  # rule 3: the open turn, if still open
        if turn is not None and turn.closed:
            return None
        return turn

    def _unbound(
        self, thread: _Thread, line: int, what: str, agent: str, changes: list[Change]
    ) -> None:
        self._refuse(
            line, Reason.UNBOUND_EVENT, f"{what} from {agent!r} binds to no turn", changes,
            thread.id,
        )

    # ------------------------------------------------------------------ bubbles

    def _new_bubble(
        self,
        thread: _Thread,
        cat: str,
        invocation: str | None,
        origin: Origin,
        status: Status,
        ts: int,
        text: str = "",
        message_id: str | None = None,
        error: str | None = None,
    ) -> Bubble:
        self._created += 1
        number = self._created
        # One string object per agent name, shared by all its bubbles, instead of the
        # copy each decoded event brings (about 50 bytes per bubble).
        cat = self._names.setdefault(cat, cat)
        bubble = Bubble(
            f"b{number}", thread.id, cat, invocation, origin, status, text, (), message_id, error
        )
        # The sorted list's entry doubles as the bubble's key (one tuple, not two).
        # Creation numbers are unique, so comparisons never reach the bubble itself.
        bubble._key = entry = (ts, number, bubble)
        thread.order.add(entry)
        self._bubbles[bubble.id] = bubble
        return bubble

    def _primary(
        self, thread: _Thread, turn: Turn, cat: str, ts: int, line: int, changes: list[Change]
    ) -> Bubble:
        """The turn's primary bubble, made (empty stream bubble) if it has none yet."""
        bubble = turn.primary
        if bubble is None:
            status = _DONE if turn.closed else _STREAMING
            bubble = turn.primary = self._new_bubble(thread, cat, turn.id, _STREAM, status, ts)
            changes.append(BubbleAdded(bubble, line))
        return bubble

    def _system_line(
        self,
        thread: _Thread,
        cat: str,
        text: str,
        ts: int,
        line: int,
        changes: list[Change],
        status: Status = _DONE,
        error: str | None = None,
    ) -> None:
        bubble = self._new_bubble(thread, cat, None, _SYSTEM, status, ts, text, error=error)
        changes.append(BubbleAdded(bubble, line))

    def _set_text(self, bubble: Bubble, text: str, line: int, changes: list[Change]) -> None:
        if bubble.text != text:
            bubble._parts = [text]
            changes.append(BubbleUpdated(bubble, Update.TEXT_SET, line))

    def _close(self, turn: Turn, line: int, changes: list[Change]) -> None:
        turn.step(_CLOSE)
        self._stop_streaming(turn, line, changes)

    def _stop_streaming(self, turn: Turn, line: int, changes: list[Change]) -> None:
        """A turn that closed no longer streams: its primary goes streaming -> done."""
        bubble = turn.primary
        if bubble is not None and bubble.status is _STREAMING:
            bubble.status = _DONE
            changes.append(BubbleUpdated(bubble, Update.CLOSED, line))

    def _give_message_id(
        self, thread: _Thread, bubble: Bubble, message_id: str, line: int, changes: list[Change]
    ) -> None:
        """Index ``bubble`` under ``message_id``; attach rich blocks held for it.

        Two bubbles can carry one message id (an explicit post and a callback that
        reuse it); the index keeps the first created, so lookups never depend on the
        order in which the two got their id.
        """
        known = thread.by_message_id.get(message_id)
        if known is not None:
            if bubble._key[1] < known._key[1]:
                thread.by_message_id[message_id] = bubble
            return
        thread.by_message_id[message_id] = bubble
        held = thread.held_blocks.pop(message_id, None)
        if held:
            for block_id in held:
                self._add_block(bubble, block_id, line, changes)

    def _add_block(self, bubble: Bubble, block_id: str, line: int, changes: list[Change]) -> None:
        if bubble._add_block(block_id):
            changes.append(BubbleUpdated(bubble, Update.BLOCK, line))

    # ------------------------------------------------------------------ by type

    def _text(self, thread, data, cat, ts, line, changes) -> None:
        if data.get("origin") == "callback":
            self._callback(thread, data, cat, ts, line, changes)
            return
        turn = self._bind(thread, data, cat)
        if turn is None:
            self._unbound(thread, line, "stream text", cat, changes)
            return
        action = turn.step(_STREAM_TEXT)
        if action is _APPEND:
            chunk = data["content"]
            bubble = turn.primary
            if bubble is None:
                bubble = turn.primary = self._new_bubble(
                    thread, cat, turn.id, _STREAM, _STREAMING, ts, chunk
                )
                changes.append(BubbleAdded(bubble, line))
            else:
                bubble._parts.append(chunk)
                changes.append(BubbleUpdated(bubble, _APPENDED, line, chunk))
        elif action is _SUPERSEDE:
            self._superseded += 1
            changes.append(Superseded(line, thread.id, turn.id))
        else:
            self._refuse(
                line,
                Reason.STREAM_AFTER_DONE,
                f"turn {turn.id!r} is closed; stream text after done is not appended",
                changes,
                thread.id,
            )

    def _callback(self, thread, data, cat, ts, line, changes) -> None:
        turn_id = data.get("turnInvocationId")
        if not is_id(turn_id):
            turn_id = data.get("invocationId")
            if not is_id(turn_id):
                self._refuse(
                    line,
                    Reason.CALLBACK_WITHOUT_INVOCATION,
                    f"callback from {cat!r} carries no turn id; it is never guessed",
                    changes,
                    thread.id,
                )
                return
        message_id = data.get("messageId") or None
        self._place_callback(
            thread, thread.turn(turn_id), cat, data["content"], message_id,
            _is_explicit_post(data), ts, line, changes,
        )

    def _place_callback(
        self,
        thread: _Thread,
        turn: Turn,
        cat: str,
        text: str,
        message_id: str | None,
        explicit: bool,
        ts: int,
        line: int,
        changes: list[Change],
    ) -> None:
        """Section 4.2: replace the primary, redeliver, or add a second post."""
        bubble = turn.primary
        if not explicit and not turn.replaced:
            # The callback becomes the turn's primary bubble, in place.
            if bubble is None:
                bubble = turn.primary = self._new_bubble(
                    thread, cat, turn.id, _CALLBACK, _DONE, ts, text, message_id
                )
                changes.append(BubbleAdded(bubble, line))
            else:
                bubble.origin = _CALLBACK
                bubble._parts = [text]
                bubble.message_id = message_id
                if bubble.status is not _ERROR:
                    bubble.status = _DONE
                changes.append(BubbleUpdated(bubble, Update.REPLACED, line))
            turn.step(_CALLBACK_IN)
            if message_id is not None:
                self._give_message_id(thread, bubble, message_id, line, changes)
            return
        if not explicit:
            assert bubble is not None  # the turn is replaced, so it has its callback bubble
            if message_id is None or message_id == bubble.message_id:
                self._set_text(bubble, text, line, changes)  # a redelivery
                return
        # A second post in the same turn (or an explicit post): its own bubble.
        if message_id is not None:
            post = thread.posts.get((turn.id, message_id))
            if post is not None:
                self._set_text(post, text, line, changes)
                return
        post = self._new_bubble(thread, cat, turn.id, _CALLBACK, _DONE, ts, text, message_id)
        changes.append(BubbleAdded(post, line))
        if message_id is not None:
            thread.posts[turn.id, message_id] = post
            self._give_message_id(thread, post, message_id, line, changes)

    def _tool(self, thread, data, cat, ts, line, changes) -> None:
        turn = self._bind(thread, data, cat)
        if turn is None:
            self._unbound(thread, line, data["type"], cat, changes)
            return
        bubble = self._primary(thread, turn, cat, ts, line, changes)
        if data["type"] == "tool_use":
            entry = {"kind": "use", "name": data.get("toolName"), "input": data.get("toolInput")}
        else:
            entry = {"kind": "result", "name": data.get("toolName"), "content": data.get("content")}
        bubble._add_tool(entry)
        changes.append(BubbleUpdated(bubble, Update.TOOL, line))

    def _done(self, thread, data, cat, ts, line, changes) -> None:
        turn = self._bind(thread, data, cat)
        if turn is not None:
            self._close(turn, line, changes)

    def _error(self, thread, data, cat, ts, line, changes) -> None:
        text = data.get("error") or data.get("content") or None
        turn = self._bind(thread, data, cat)
        if turn is None:
            self._system_line(thread, cat, "", ts, line, changes, _ERROR, text)
            return
        bubble = self._primary(thread, turn, cat, ts, line, changes)
        bubble.status = _ERROR
        bubble.error = text
        changes.append(BubbleUpdated(bubble, Update.ERRORED, line))
        turn.step(_CLOSE)

    def _handoff(self, thread, data, cat, ts, line, changes) -> None:
        self._system_line(thread, cat, data.get("content") or "", ts, line, changes)

    def _system_info(self, thread, data, cat, ts, line, changes) -> None:
        content = data["content"]
        payload = parse_json_object(content)
        if payload is None:
            self._system_line(thread, cat, content, ts, line, changes)
            return
        agent = payload.get("catId")
        if not isinstance(agent, str):
            agent = cat
        kind = payload.get("type")
        if kind == "invocation_created":
            self._announce(thread, data, payload, agent, line, changes)
        elif kind == "thinking":
            self._thinking(thread, data, payload, agent, ts, line, changes)
        elif kind == "rich_block":
            self._rich_block(thread, data, payload, agent, ts, line, changes)
        else:
            self._ignored += 1  # usage, metrics, liveness...: no bubble meaning

    def _announce(self, thread, data, payload, agent, line, changes) -> None:
        turn_id = payload.get("invocationId")
        if not is_id(turn_id):
            self._refuse(
                line, Reason.MALFORMED_EVENT, "invocation_created needs an invocationId", changes,
                thread.id,
            )
            return
        self._open_turn(thread, turn_id, data.get("invocationId"), agent, line, changes)

    def _open_turn(
        self, thread: _Thread, turn_id: str, parent: Any, agent: str, line: int,
        changes: list[Change],
    ) -> Turn:
        """Section 3, announcing: ``turn_id`` becomes the open turn of (thread, agent)
        and the latest turn under ``parent``. Shared by ``invocation_created`` and by a
        stored draft that names its parent (section 7, version 1.1)."""
        turn = thread.turn(turn_id)
        current = thread.open_turn.get(agent)
        if current is not None and current is not turn and not current.closed:
            self._close(current, line, changes)
        if not turn.closed:
            thread.open_turn[agent] = turn
        if is_id(parent):
            thread.latest[agent, parent] = turn
        return turn

    def _thinking(self, thread, data, payload, agent, ts, line, changes) -> None:
        turn = self._bind(thread, data, agent)
        if turn is None:
            self._unbound(thread, line, "thinking", agent, changes)
            return
        text = payload.get("text")
        if not isinstance(text, str):
            text = ""
        bubble = self._primary(thread, turn, agent, ts, line, changes)
        bubble.thinking = f"{bubble.thinking}\n\n{text}" if bubble.thinking else text
        changes.append(BubbleUpdated(bubble, Update.THINKING, line))

    def _rich_block(self, thread, data, payload, agent, ts, line, changes) -> None:
        block = payload.get("block")
        block_id = block.get("id") if isinstance(block, dict) else None
        if not isinstance(block_id, str):
            self._refuse(
                line,
                Reason.MALFORMED_EVENT,
                "rich_block needs a block object with a string id",
                changes,
                thread.id,
            )
            return
        message_id = payload.get("messageId")
        if is_id(message_id):
            bubble = thread.by_message_id.get(message_id)
            if bubble is None:
                # The message has not arrived yet: hold the block for it.
                thread.held_blocks.setdefault(message_id, {})[block_id] = None
            else:
                self._add_block(bubble, block_id, line, changes)
            return
        turn = self._bind(thread, data, agent)
        if turn is None:
            self._unbound(thread, line, "rich_block", agent, changes)
            return
        self._add_block(self._primary(thread, turn, agent, ts, line, changes), block_id, line, changes)

    # ------------------------------------------------------------------ history

    def _history(self, data: dict[str, Any], line: int) -> tuple[Change, ...]:
        thread_id = data.get("threadId")
        messages = data.get("messages")
        if not isinstance(thread_id, str) or not isinstance(messages, list):
            return self._reject(
                line, Reason.MALFORMED_EVENT, "history needs a string threadId and a messages list",
                thread_id,
            )
        thread = self._thread(thread_id)
        changes: list[Change] = []
        for message in messages:
            self._stored_message(thread, message, line, changes)
        return tuple(changes)

    def _stored_message(self, thread: _Thread, message: Any, line: int, changes) -> None:
        """Section 7: merge one stored message by exact identity."""
        if not isinstance(message, dict):
            return
        cat = message.get("catId")
        message_id = message.get("id")
        if not isinstance(cat, str) or not is_id(message_id):
            return  # user and system messages
        text = message.get("content")
        if not isinstance(text, str):
            text = ""
        ts = message.get("timestamp")
        if type(ts) is int:
            if ts > thread.max_ts or not thread.seen_ts:
                thread.max_ts = ts
                thread.seen_ts = True
        else:
            ts = thread.max_ts
        turn_id = None
        extra = message.get("extra")
        stream = extra.get("stream") if isinstance(extra, dict) else None
        if isinstance(stream, dict) and is_id(stream.get("invocationId")):
            turn_id = stream["invocationId"]
        elif message_id.startswith("draft-") and len(message_id) > 6:
            turn_id = message_id[6:]

        if message.get("origin") == "callback":
            known = thread.by_message_id.get(message_id)
            if known is not None:
                self._set_text(known, text, line, changes)
            elif turn_id is not None:
                # A stored callback applies exactly as a live one, explicit posts included
                # (section 4.3: an explicit post never becomes the primary bubble).
                self._place_callback(
                    thread, thread.turn(turn_id), cat, text, message_id,
                    _is_explicit_post(message), ts, line, changes,
                )
            else:
                # Version 1.1: a stored callback without its turn is refused exactly as a
                # live one is. Version 1 showed it as a bubble of its own, so a client
                # that joined late showed the turn twice (stored stream + this).
                self._refuse(
                    line,
                    Reason.CALLBACK_WITHOUT_INVOCATION,
                    f"stored callback {message_id!r} from {cat!r} carries no turn id "
                    "(extra.stream.invocationId); it is never guessed",
                    changes,
                    thread.id,
                )
            return

        if message.get("isDraft") is True or message_id.startswith("draft-"):
            # A draft only fills a gap; it never overwrites text seen live.
            if turn_id is not None:
                if turn_id not in thread.turns and isinstance(stream, dict):
                    parent = stream.get("parentInvocationId")
                    if is_id(parent):
                        # Version 1.1: a draft naming its parent announces its turn, so a
                        # client that joined mid-turn binds the turn's later chunks.
                        self._open_turn(thread, turn_id, parent, cat, line, changes)
                turn = thread.turn(turn_id)
                if turn.primary is None:
                    status = _DONE if turn.closed else _STREAMING
                    bubble = turn.primary = self._new_bubble(
                        thread, cat, turn_id, _STREAM, status, ts, text
                    )
                    changes.append(BubbleAdded(bubble, line))
            return

        if turn_id is not None:
            turn = thread.turn(turn_id)
            if turn.step(_STORED) is _SET_TEXT:
                if turn.primary is None:
                    turn.primary = self._new_bubble(
                        thread, cat, turn_id, _STREAM, _DONE, ts, text
                    )
                    changes.append(BubbleAdded(turn.primary, line))
                else:
                    self._set_text(turn.primary, text, line, changes)
                    self._stop_streaming(turn, line, changes)  # the table closed the turn
            return

        stored = thread.stored.get(message_id)
        if stored is not None:
            self._set_text(stored, text, line, changes)
        else:
            bubble = thread.stored[message_id] = self._new_bubble(
                thread, cat, None, _STREAM, _DONE, ts, text
            )
            changes.append(BubbleAdded(bubble, line))

    # ------------------------------------------------------------------ checks

    def _check(self) -> None:
        """Assert every index and ordering invariant. For tests; O(total size)."""
        seen: set[str] = set()
        numbers = []
        for thread_id, thread in self._threads.items():
            assert thread.id == thread_id
            keys = [(ts, n) for ts, n, _ in thread.order]
            assert keys == sorted(keys), "order is sorted by (timestamp, creation number)"
            in_thread = set()
            for entry in thread.order:
                ts, number, bubble = entry
                assert bubble._key is entry, "a bubble's key is its sorted-list entry"
                assert bubble.id == f"b{number}"
                assert self._bubbles[bubble.id] is bubble
                assert bubble.thread == thread_id
                assert bubble.status in (_STREAMING, _DONE, _ERROR)
                assert bubble.origin in (_STREAM, _CALLBACK, _SYSTEM)
                assert len(set(bubble.blocks)) == len(bubble.blocks), "blocks are unique"
                in_thread.add(bubble.id)
                numbers.append(number)
            assert not (in_thread & seen), "a bubble lives in one thread"
            seen |= in_thread
            primaries: set[str] = set()
            for turn_id, turn in thread.turns.items():
                assert turn.id == turn_id
                bubble = turn.primary
                if bubble is None:
                    assert not turn.replaced, "a replaced turn has its callback bubble"
                    continue
                assert bubble.id in in_thread
                assert bubble.id not in primaries, "a bubble is the primary of one turn"
                primaries.add(bubble.id)
                assert bubble.invocation == turn_id
                assert (bubble.origin is _CALLBACK) == turn.replaced
                if turn.closed:
                    assert bubble.status is not _STREAMING, "a closed turn is not streaming"
            for turn in thread.open_turn.values():
                assert thread.turns[turn.id] is turn
            for turn in thread.latest.values():
                assert thread.turns[turn.id] is turn
            for message_id, bubble in thread.by_message_id.items():
                assert bubble.message_id == message_id and bubble.id in in_thread
                assert message_id not in thread.held_blocks, "held blocks wait for no bubble"
            for (turn_id, message_id), bubble in thread.posts.items():
                assert bubble.invocation == turn_id and bubble.message_id == message_id
                assert bubble.id in in_thread and bubble.id not in primaries
            for bubble in thread.stored.values():
                assert bubble.id in in_thread and bubble.invocation is None
        assert seen == set(self._bubbles), "every bubble is in exactly one thread"
        assert sorted(numbers) == list(range(1, self._created + 1))
        assert [r.line for r in self._rejected] == sorted(r.line for r in self._rejected)
        assert self._events <= self._line


def _is_explicit_post(data: dict[str, Any]) -> bool:
    """Section 4.3: ``extra.isExplicitPost`` is exactly ``true``."""
    extra = data.get("extra")
    return isinstance(extra, dict) and extra.get("isExplicitPost") is True


# One function per agent_message type (section 2 step 7). A dict beats an if-chain.
_APPLY = {
    "text": Reconciler._text,
    "tool_use": Reconciler._tool,
    "tool_result": Reconciler._tool,
    "system_info": Reconciler._system_info,
    "error": Reconciler._error,
    "done": Reconciler._done,
    "a2a_handoff": Reconciler._handoff,
}
assert set(_APPLY) == KNOWN_TYPES
