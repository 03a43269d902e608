"""What the engine produces: bubbles, and the changes that describe each step.

A :class:`Bubble` is the engine's own record, updated in place, so a UI that keeps a
reference always sees the current state. Treat its attributes as read-only; use
:meth:`Bubble.to_dict` for a detached copy. Stream chunks are stored as a list of
parts and joined on first read, so appending is O(1) however long the text grows.

Every call into the engine returns a tuple of *changes*: small immutable values that
say what happened (a bubble added or updated and how, an event refused, a chunk
superseded, a redelivery skipped, a ``seq`` gap seen).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ._errors import Reason
from ._turns import TurnEnd
from ._values import FrozenValue, Value, slot_setters

_object_setattr = object.__setattr__

__all__ = [
    "Origin",
    "Status",
    "Update",
    "Bubble",
    "BubbleAdded",
    "BubbleUpdated",
    "Rejected",
    "Superseded",
    "Duplicate",
    "Gap",
    "TurnOpened",
    "TurnClosed",
    "RunningTurn",
    "Change",
]


class Origin(enum.StrEnum):
    """Where a bubble's text comes from (the ``origin`` field of the output document)."""

    STREAM = "stream"  # grown from stream chunks (or a stored stream message)
    CALLBACK = "callback"  # a callback snapshot
    SYSTEM = "system"  # a system line: plain system_info, a2a_handoff, unbound error


class Status(enum.StrEnum):
    """A bubble's status: still streaming, finished, or ended by an error."""

    STREAMING = "streaming"
    DONE = "done"
    ERROR = "error"


# Members as module constants for the methods below: a module global is a dictionary
# read, a member looked up on its enum class costs several times more.
_STREAMING, _DONE, _ERROR = Status.STREAMING, Status.DONE, Status.ERROR
_CALLBACK = Origin.CALLBACK


class Update(enum.StrEnum):
    """How a :class:`BubbleUpdated` changed its bubble."""

    APPENDED = "appended"  # a stream chunk was appended (``delta`` holds it)
    REPLACED = "replaced"  # a callback replaced the stream text
    TEXT_SET = "text_set"  # a redelivered callback or a history message set the text
    CLOSED = "closed"  # the turn closed: streaming -> done
    ERRORED = "errored"  # status became error
    TOOL = "tool"  # a tool use or result was added
    THINKING = "thinking"  # thinking text was added
    BLOCK = "block"  # a rich block id was added


#: A bubble's ``_extra`` when it has none (read by to_dict).
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


class Bubble:
    """One chat bubble. See PROTOCOL section 5 for each field.

    The engine updates a bubble in place (so a UI holding a reference always sees the
    current state) through the methods below; nothing outside this class writes its
    private fields. What it hands out is read-only: ``tools`` is a tuple of read-only
    mappings and ``blocks`` a tuple, so a caller cannot change the engine's state
    through them. Use :meth:`to_dict` for a detached, mutable copy.

    Attributes:
        id: stable display id (``"b<creation number>"``); never changes.
        thread: thread id.
        cat: the agent.
        invocation: turn id, or ``None`` for system lines and turn-less history.
        origin: an :class:`Origin`.
        status: a :class:`Status`.
        message_id: server message id of a callback, else ``None``.

    ``thinking``, ``tools``, ``blocks`` and ``error`` are read-only properties: what
    few bubbles carry is kept apart, in one slot (see ``_extra`` below).
    """

    __slots__ = (
        "id",
        "thread",
        "cat",
        "invocation",
        "origin",
        "status",
        "message_id",
        "_extra",
        "_text",
        "_ts",
        "_number",
    )

    def __init__(
        self,
        bubble_id: str,
        thread: str,
        cat: str,
        invocation: str | None,
        origin: Origin,
        status: Status,
        text: str,
        ts: int,
        number: int,
        message_id: str | None = None,
        error: str | None = None,
    ) -> None:
        self.id = bubble_id
        self.thread = thread
        self.cat = cat
        self.invocation = invocation
        self.origin = origin
        self.status = status
        self.message_id = message_id
        # What few bubbles carry, apart: None, or a dict of the fields this bubble
        # has among "thinking", "tools", "blocks" and "error", and the tuples handed
        # out for the tools and blocks ("tools_view", "blocks_view"). Most bubbles
        # never get one: only thinking, a tool, a rich block or an error makes it.
        # Each field of a bubble is a store when it is made, a visit each time the
        # garbage collector walks it while the engine lives, and a release when the
        # engine goes; a dict of strings (thinking, an error) is one the collector
        # does not walk at all.
        self._extra: dict[str, Any] | None = None if error is None else {"error": error}
        # The text: a str, or while stream chunks come a list of its parts (appending
        # a chunk is O(1); reading joins them once, back into a str). Most bubbles
        # never get a chunk after the first text (stored messages, callbacks): a str
        # alone spares them a list, an object the garbage collector walks for as long
        # as the engine keeps the bubble.
        self._text: str | list[str] = text
        # Display order: (creating event's timestamp, creation number). Both never
        # change: a replacement keeps the bubble's place (section 5). Two fields, not
        # a key tuple (ts, number, bubble): a bubble holding a tuple that holds the
        # bubble is a reference cycle, freed only by the cyclic garbage collector.
        self._ts = ts
        self._number = number

    # ------------------------------------------------------------------ reading

    @property
    def text(self) -> str:
        """The bubble's text. Complexity: O(length) on the first read after appends."""
        text = self._text
        if text.__class__ is not list:  # (a str, or an in-process caller's subclass)
            return text  # type: ignore[return-value]
        # Join once and keep the result, so repeated reads are O(1).
        text = self._text = "".join(text)
        return text

    @property
    def thinking(self) -> str:
        """Thinking texts joined by a blank line (``""`` when none came)."""
        extra = self._extra
        return "" if extra is None else extra.get("thinking", "")

    @property
    def error(self) -> str | None:
        """The error text, or ``None``."""
        extra = self._extra
        return None if extra is None else extra.get("error")

    @property
    def tools(self) -> tuple[Mapping[str, Any], ...]:
        """Tool uses and results in arrival order, as read-only mappings.

        ``toolInput`` values are the objects the event carried (not copied).
        Complexity: O(1), except the first read after a tool was added (O(tools)).
        """
        extra = self._extra
        tools = extra.get("tools") if extra is not None else None
        if tools is None:
            return ()
        view: tuple[Mapping[str, Any], ...] = extra.get("tools_view", ())  # type: ignore[union-attr]
        if len(view) != len(tools):
            # Wrap only the entries added since the last read: a read-only mapping is
            # made per entry once, on read, so adding a tool stays one list append.
            view = extra["tools_view"] = (  # type: ignore[index]
                view + tuple(MappingProxyType(t) for t in tools[len(view):])
            )
        return view

    @property
    def blocks(self) -> tuple[str, ...]:
        """Rich block ids, each once, in arrival order.

        Complexity: O(1), except the first read after a block was added (O(blocks)).
        """
        extra = self._extra
        blocks = extra.get("blocks") if extra is not None else None
        if blocks is None:
            return ()
        view: tuple[str, ...] = extra.get("blocks_view", ())  # type: ignore[union-attr]
        if len(view) != len(blocks):
            view = extra["blocks_view"] = tuple(blocks)  # type: ignore[index]
        return view

    @property
    def sort_key(self) -> tuple[int, int, Bubble]:
        """(timestamp of the creating event, creation number, bubble): display order.

        A new tuple on each read. Creation numbers are unique, so comparing two keys
        never reaches the bubble.
        """
        return (self._ts, self._number, self)

    # ------------------------------------------------------------------ changing
    # Used by the engine only. Each returns whether the bubble changed where it can
    # fail to, so the engine emits a BubbleUpdated only for a real change.

    def set_text(self, text: str) -> bool:
        """Replace the text (a callback snapshot or a stored message)."""
        # The text property, inline for a str: every stored message of a page the
        # client has seen before compares its text here.
        current = self._text
        if (self.text if current.__class__ is list else current) == text:
            return False
        self._text = text
        return True

    def append(self, chunk: str) -> None:
        """Append a stream chunk. Complexity: O(1)."""
        text = self._text
        if text.__class__ is list:
            text.append(chunk)
        else:  # the first text: a str (an in-process caller's may be a subclass)
            self._text = [text, chunk]  # type: ignore[list-item]

    def settle(self) -> bool:
        """The status rule, in one place: a bubble whose turn stopped streaming (or
        that became a finished callback) goes ``streaming`` -> ``done``; ``done``
        stays and ``error`` stays, with its error text (sections 3 and 4.2)."""
        if self.status is _STREAMING:
            self.status = _DONE
            return True
        return False

    def become_callback(self, text: str, message_id: str | None) -> None:
        """Section 4.2: a callback snapshot replaces the stream text, in place."""
        self.origin = _CALLBACK
        self._text = text
        self.message_id = message_id
        self.settle()

    def fail(self, error: str | None) -> bool:
        """Section 3: a bound ``error`` sets the status and its text, whatever the origin."""
        if self.status is _ERROR and self.error == error:
            return False  # a repeated error says nothing new
        self.status = _ERROR
        extra = self._extra
        if extra is None:
            self._extra = {"error": error}
        else:
            extra["error"] = error
        return True

    def add_thinking(self, text: str) -> bool:
        """Section 5: thinking texts joined by a blank line; an empty one is replaced.
        Returns whether the thinking changed (an empty text on none changes nothing)."""
        extra = self._extra
        if extra is None:
            if not text:
                return False
            self._extra = {"thinking": text}
            return True
        before: str = extra.get("thinking", "")
        after = extra["thinking"] = f"{before}\n\n{text}" if before else text
        return after != before

    def add_tool(self, entry: dict[str, Any]) -> None:
        """Add a tool use or result (the bubble keeps ``entry``: pass a new dict)."""
        extra = self._extra
        if extra is None:
            self._extra = {"tools": [entry]}
            return
        tools = extra.get("tools")
        if tools is None:
            extra["tools"] = [entry]
        else:
            tools.append(entry)

    def add_block(self, block_id: str) -> bool:
        """Add a block id unless present; return whether it was added. O(1)."""
        extra = self._extra
        if extra is None:
            self._extra = {"blocks": {block_id: None}}
            return True
        blocks = extra.get("blocks")
        if blocks is None:
            extra["blocks"] = {block_id: None}
        elif block_id in blocks:
            return False
        else:
            blocks[block_id] = None
        return True

    def __getstate__(self) -> Any:
        """For ``pickle`` and ``copy.deepcopy``: the fields, without the tuple of
        read-only mappings handed out for the tools (a mapping proxy cannot be pickled;
        the next read of ``tools`` makes it again)."""
        state: Any = object.__getstate__(self)  # (None, slot name -> value)
        extra = self._extra
        if extra is not None and "tools_view" in extra:
            slots = dict(state[1])
            slots["_extra"] = {k: v for k, v in extra.items() if k != "tools_view"}
            state = (state[0], slots)
        return state

    def __copy__(self) -> Bubble:
        """``copy.copy``: the fields as they are now, as for any object, and a dict of
        its own for ``_extra``, so that the copy keeps the thinking and error it had
        when the engine goes on changing this bubble (the tools and blocks it already
        had stay shared, as ``copy.copy`` shares any list)."""
        cls = self.__class__
        other = cls.__new__(cls)
        # object's own state, as copy.copy reads it: (instance dict or None, slot
        # values). Not __getstate__ above, which leaves out what pickle cannot take.
        state: Any = object.__getstate__(self)
        if isinstance(state, tuple):
            state, slots = state
            for name, value in slots.items():
                _object_setattr(other, name, value)
        if state:
            other.__dict__.update(state)
        extra = self._extra
        if extra is not None:
            other._extra = dict(extra)
        return other

    def to_dict(self) -> dict[str, Any]:
        """A detached, JSON-ready copy with the fields of PROTOCOL section 9."""
        extra = self._extra if self._extra is not None else _NO_EXTRA
        tools, blocks = extra.get("tools"), extra.get("blocks")
        return {
            "id": self.id,
            "thread": self.thread,
            "cat": self.cat,
            "invocation": self.invocation,
            "origin": str(self.origin),
            "text": self.text,
            "status": str(self.status),
            "message_id": self.message_id,
            "thinking": extra.get("thinking", ""),
            "tools": [dict(t) for t in tools] if tools else [],
            "blocks": list(blocks) if blocks else [],
            "error": extra.get("error"),
        }

    def __repr__(self) -> str:
        text = self.text
        if len(text) > 40:
            text = text[:37] + "..."
        return (
            f"<Bubble {self.id} {self.thread}/{self.cat} {self.invocation} "
            f"{self.origin.value} {self.status.value} {text!r}>"
        )


# The changes made on every event (added, updated, superseded, duplicate) are plain
# mutable values: their ``__init__`` is a few attribute stores, the cheapest object
# Python builds with named fields. Treat them as read-only. Refusals and gaps, which the
# engine also keeps in its logs, are frozen (see reconcile._values for why none of
# these classes is an attrs class or a dataclass).
class BubbleAdded(Value):
    """A new bubble exists (its fields are already filled)."""

    __slots__ = ("bubble", "line")
    __match_args__ = ("bubble", "line")

    bubble: Bubble
    line: int

    def __init__(self, bubble: Bubble, line: int) -> None:
        self.bubble = bubble
        self.line = line


class BubbleUpdated(Value):
    """An existing bubble changed; ``how`` says in what way.

    ``delta`` is the appended chunk for :attr:`Update.APPENDED` (so a UI can append
    without re-reading the whole text), else ``None``.
    """

    __slots__ = ("bubble", "how", "line", "delta")
    __match_args__ = ("bubble", "how", "line", "delta")

    bubble: Bubble
    how: Update
    line: int
    delta: str | None

    def __init__(self, bubble: Bubble, how: Update, line: int, delta: str | None = None) -> None:
        self.bubble = bubble
        self.how = how
        self.line = line
        self.delta = delta


class Rejected(FrozenValue):
    """An event was refused and changed nothing. ``line`` is its line number.

    ``thread`` is the event's thread when it named one as a string (``None`` for a
    malformed line), so a client can tell which thread may have missed something.
    """

    __slots__ = ("line", "reason", "detail", "thread")
    __match_args__ = ("line", "reason", "detail", "thread")

    line: int
    reason: Reason
    detail: str
    thread: str | None

    def __init__(self, line: int, reason: Reason, detail: str, thread: str | None = None) -> None:
        _rejected_line(self, line)
        _rejected_reason(self, reason)
        _rejected_detail(self, detail)
        _rejected_thread(self, thread)

    def to_dict(self) -> dict[str, Any]:
        """``line``, ``reason`` (as its string) and ``detail``: the refusal as
        PROTOCOL section 9 lists it (``thread`` is left out, as there)."""
        return {"line": self.line, "reason": str(self.reason), "detail": self.detail}


_rejected_line, _rejected_reason, _rejected_detail, _rejected_thread = slot_setters(Rejected)


class _RejectedInTheMaking(Rejected):
    """A :class:`Rejected` while :func:`refusal` (or :func:`rejected_of`) fills in its fields.

    The same slots, with object's own ``__init__``, ``__setattr__`` and
    ``__delattr__``: making one runs no Python frame, and its fields are plain slot
    stores (the frozen class refuses stores, so its ``__init__`` calls a setter per
    field, each a C call through a tuple of arguments).
    """

    __slots__ = ()
    __init__ = object.__init__
    __setattr__ = object.__setattr__  # type: ignore[assignment]
    __delattr__ = object.__delattr__


def refusal(line: int, reason: Reason, detail: str, thread: str | None) -> Rejected:
    """``Rejected(line, reason, detail, thread)`` for the engine, in about a third of
    the instructions (a client that joined mid-turn gets a refusal per chunk).

    The fields are stored while the value is a :class:`_RejectedInTheMaking`, then it
    becomes a :class:`Rejected` (same slots, so Python allows the change of class):
    frozen from then on, equal to and indistinguishable from one made by ``__init__``.
    """
    rejected: Any = _RejectedInTheMaking()
    rejected.line = line
    rejected.reason = reason
    rejected.detail = detail
    rejected.thread = thread
    rejected.__class__ = Rejected
    return rejected  # type: ignore[no-any-return]


#: What the engine logs of a refusal besides its line: ``(reason, detail, thread)``,
#: ``reason`` the plain string value of its :class:`Reason`. The log is two lists side
#: by side, the lines and these (see ``EngineCore._refusal_lines``), and the refusals of
#: one kind share one tuple: a client that joined mid-turn refuses every chunk of the
#: turn under way with the same reason, detail and thread, and a tuple made per
#: refusal is an allocation and an object the garbage collector tracks until its first
#: collection (on our `stock-late` recording the shared tuples took 420 instructions
#: off each event).
Refusal = tuple[str, str, "str | None"]

# Reason value -> member, for rejected_of: a dictionary lookup, where Reason(value)
# runs the enum's Python-level lookup.
_REASONS: dict[str, Reason] = {reason._value_: reason for reason in Reason}


def rejected_of(line: int, why: Refusal) -> Rejected:
    """The :class:`Rejected` a refusal log entry stands for: a new value, equal to the
    one the engine handed out when it refused the event (built as :func:`refusal`
    builds it)."""
    rejected: Any = _RejectedInTheMaking()
    rejected.line = line
    reason, rejected.detail, rejected.thread = why
    rejected.reason = _REASONS[reason]
    rejected.__class__ = Rejected
    return rejected  # type: ignore[no-any-return]


def rejected_list(lines: Iterable[int], whys: Iterable[Refusal]) -> list[Rejected]:
    """``list(map(rejected_of, lines, whys))``, without a Python call per entry
    (``check`` reports every refusal of a trace, and a late joiner's has thousands)."""
    made: list[Rejected] = []
    append = made.append
    reasons = _REASONS
    for line, (reason, detail, thread) in zip(lines, whys):
        rejected: Any = _RejectedInTheMaking()
        rejected.line = line
        rejected.reason = reasons[reason]
        rejected.detail = detail
        rejected.thread = thread
        rejected.__class__ = Rejected
        append(rejected)
    return made


class Superseded(Value):
    """A stream chunk of a turn already replaced by its callback was dropped."""

    __slots__ = ("line", "thread", "invocation")
    __match_args__ = ("line", "thread", "invocation")

    line: int
    thread: str
    invocation: str

    def __init__(self, line: int, thread: str, invocation: str) -> None:
        self.line = line
        self.thread = thread
        self.invocation = invocation


class Duplicate(Value):
    """An event whose ``seq`` was already seen was skipped (PROTOCOL section 6)."""

    __slots__ = ("line", "thread", "seq")
    __match_args__ = ("line", "thread", "seq")

    line: int
    thread: str
    seq: int

    def __init__(self, line: int, thread: str, seq: int) -> None:
        self.line = line
        self.thread = thread
        self.seq = seq


class Gap(FrozenValue):
    """Events between ``after`` and ``before`` (exclusive) of ``thread`` never came.

    A client answers a gap by fetching the thread's history (section 7). Two gaps
    are equal when they name the same missing events, whatever line revealed them
    (``line`` is not compared).
    """

    __slots__ = ("thread", "after", "before", "line")
    __match_args__ = ("thread", "after", "before", "line")
    _compared = ("thread", "after", "before")

    thread: str
    after: int
    before: int
    line: int

    def __init__(self, thread: str, after: int, before: int, line: int = 0) -> None:
        _gap_thread(self, thread)
        _gap_after(self, after)
        _gap_before(self, before)
        _gap_line(self, line)

    def to_dict(self) -> dict[str, Any]:
        """``thread``, ``after`` and ``before``: the gap as PROTOCOL section 9 lists it
        (``line`` is left out, as there)."""
        return {"thread": self.thread, "after": self.after, "before": self.before}


_gap_thread, _gap_after, _gap_before, _gap_line = slot_setters(Gap)


class TurnOpened(Value):
    """A turn started running: its agent works on it (see :meth:`Reconciler.running_turns`).

    ``timestamp`` is the server time (ms) of the opening event, or the thread's largest
    timestamp when that event had none.
    """

    __slots__ = ("thread", "cat", "turn", "line", "timestamp")
    __match_args__ = ("thread", "cat", "turn", "line", "timestamp")

    thread: str
    cat: str
    turn: str
    line: int
    timestamp: int

    def __init__(self, thread: str, cat: str, turn: str, line: int, timestamp: int) -> None:
        self.thread = thread
        self.cat = cat
        self.turn = turn
        self.line = line
        self.timestamp = timestamp


class TurnClosed(Value):
    """A running turn stopped; ``how`` says why. It always follows a
    :class:`TurnOpened` of the same (thread, turn), and the turn never runs again."""

    __slots__ = ("thread", "cat", "turn", "how", "line")
    __match_args__ = ("thread", "cat", "turn", "how", "line")

    thread: str
    cat: str
    turn: str
    how: TurnEnd
    line: int

    def __init__(self, thread: str, cat: str, turn: str, how: TurnEnd, line: int) -> None:
        self.thread = thread
        self.cat = cat
        self.turn = turn
        self.how = how
        self.line = line


class RunningTurn(FrozenValue):
    """A turn that is running: opened and not yet closed (a read-only value).

    Its bubble may already be ``done`` (a callback is a finished message) while the
    agent keeps working; a UI shows "working..." from this, not from bubble status.

    Attributes:
        since: server ms of the opening event (the thread's max when it had none).
        line: the line that opened it.
    """

    __slots__ = ("thread", "cat", "turn", "since", "line")
    __match_args__ = ("thread", "cat", "turn", "since", "line")

    thread: str
    cat: str
    turn: str
    since: int
    line: int

    def __init__(self, thread: str, cat: str, turn: str, since: int, line: int) -> None:
        _object_setattr(self, "thread", thread)
        _object_setattr(self, "cat", cat)
        _object_setattr(self, "turn", turn)
        _object_setattr(self, "since", since)
        _object_setattr(self, "line", line)


Change = (
    BubbleAdded | BubbleUpdated | Rejected | Superseded | Duplicate | Gap | TurnOpened | TurnClosed
)
