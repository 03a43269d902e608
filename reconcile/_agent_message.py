"""Section 2: processing an ``agent_message``, and its per-type handlers.

Two paths run the same rules:

* the fast path, :func:`_message_path`, the path nearly every event takes. It is
  written once and made twice: ``Reconciler.receive_message`` (which returns the
  changes) and ``_message_batched`` (for ``feed`` and ``check``: no change objects).
  It checks the message's shape (section 1), reads each field once, checks it by
  section 2 steps 1 to 3 with class tests, does steps 4 to 6 inline and calls the
  handler of its type (step 7) with the fields it already read; the most frequent
  events, stream chunks of a known turn, it applies itself. History pages and other
  events it hands on (section 7, or ignored).
* :meth:`AgentMessageHandlers._agent_message_slowly`, the general path, takes every
  event the first cannot pass whole: a field of the wrong type (it words the
  refusal), a subclass of ``str`` from an in-process caller, a float where an integer
  belongs, a non-string ``seqEpoch`` or a ``tool_use`` whose ``toolInput`` must be
  exact. For a line it first decodes the line again exactly when orjson may have
  turned a big integer into a float (see :func:`~reconcile._wire.needs_exact`), then
  runs the steps one by one and ends in the same handlers.

Neither path changes anything before the event has passed step 3, so an event can
move from the first to the second at any point before that. The handlers carry out
sections 3 (turns: announcing, binding, closing) and 5 (bubbles: tools, thinking,
rich blocks, system lines); callbacks go to section 4 (``_callbacks``). Each reports
what it did by appending to ``changes``, unless ``changes`` is ``None`` (the caller
wants no change objects: ``feed``, ``check``); refusals and gaps are logged either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ._bubbles import (
    BubbleUpdated,
    Change,
    Duplicate,
    Gap,
    Rejected,
    Status,
    Superseded,
    Update,
    _RejectedInTheMaking,
)
from ._callbacks import CallbackPlacement
from ._core import Sink
from ._errors import Reason
from ._thread import ThreadState
from ._turns import TRANSITIONS, Action, Activity, Turn, TurnEnd, TurnInput, TurnState
from ._wire import (
    _HUGE,
    KNOWN_TYPES,
    WireError,
    check_agent_message,
    check_decoded_integers,
    decode_json,
    decoder_keys,
    epoch_key,
    is_id,
    needs_exact,
    parse_json_object,
)

__all__ = ["AgentMessageHandlers"]

_loads, _JSONDecodeError = orjson.loads, orjson.JSONDecodeError

_STREAM_TEXT, _ACTIVITY = TurnInput.STREAM_TEXT, TurnInput.ACTIVITY
_APPEND, _SUPERSEDE = Action.APPEND, Action.SUPERSEDE
_OPENS, _NO_ACTIVITY = Activity.OPENS, Activity.NONE
_APPENDED = Update.APPENDED
_RUNNING = TurnState.RUNNING
_DONE_END = TurnEnd.DONE
_TOOL = Update.TOOL
_UNBOUND_EVENT = Reason.UNBOUND_EVENT
_new = object.__new__


# The fields the fast path and the usual handlers read, as orjson's key objects
# (see decoder_keys). Each name is the field's name on the wire.
(
    _event, _data,
    _type, _threadId, _catId, _content, _invocationId, _turnInvocationId, _timestamp,
    _seq, _seqEpoch, _origin, _messageId, _error, _toolName, _toolInput, _metadata,
) = decoder_keys(
    "event", "data",
    "type", "threadId", "catId", "content", "invocationId", "turnInvocationId", "timestamp",
    "seq", "seqEpoch", "origin", "messageId", "error", "toolName", "toolInput", "metadata",
)

# The change objects of a chunk are built here without a class call: a class whose
# ``__init__`` is Python code costs, called from the interpreter, about 600
# instructions more than ``object.__new__`` and the slot stores written out (CPython
# 3.11 runs that ``__init__`` in a frame of its own, entered from C). Only right
# while these are the classes' fields, in full: this ties the inline builds to them.
assert BubbleUpdated._fields == ("bubble", "how", "line", "delta"), (
    "the inline BubbleUpdated in _agent_message no longer sets every field"
)
assert Superseded._fields == ("line", "thread", "invocation"), (
    "the inline Superseded in _agent_message no longer sets every field"
)

# Two shortcuts past the transition table, for the most frequent events. A stream
# chunk for a running turn that already has its primary bubble is appended without a
# table lookup: only right while the table's row says so (the state stays, the chunk
# is appended, the turn was already running); this ties the shortcut to that row.
assert TRANSITIONS[_RUNNING, _STREAM_TEXT] == (_RUNNING, _APPEND, _NO_ACTIVITY), (
    "the running-turn shortcut in _agent_message no longer matches the transition table"
)
# A chunk of a turn its callback replaced is superseded without a table lookup in the
# states whose row says exactly that (state kept, no running change). The set is read
# off the table, so it follows any change of those rows.
_STALE_STREAM_STATES = frozenset(
    state
    for state in TurnState
    if TRANSITIONS[state, _STREAM_TEXT] == (state, _SUPERSEDE, _NO_ACTIVITY)
)


#: Step 3 for a string field, ``value.__class__ in _STRING_OR_NULL``: null or exactly
#: a string (a set of the two classes: no Python call per field).
_STRING_OR_NULL = frozenset({str, type(None)})


def _message_path(wanted: bool) -> Callable[..., Any]:
    """Make the fast path of section 2: one decoded ``agent_message``, from its
    envelope to its state change, in one Python call.

    It is written once, here, and made twice at import, so no call stands between
    the caller and the path (a Python call with this many locals costs about 300
    instructions an event; the changes' list and tuple about 200 more):

    * ``wanted``: ``Reconciler.receive_message``. It counts the line, checks the
      message's shape (section 1) and hands every message but an ``agent_message``
      on (a history page to ``_history``, another event is ignored, anything else to
      the general path, ``_dispatch_slowly``). It returns the changes as a tuple: a
      stream chunk's one change without a list in between.
    * not ``wanted``: ``_message_batched``, for ``feed`` and ``check_lines``, which
      check the envelope and count the line themselves and hand over only an
      ``agent_message`` whose ``data`` is exactly a dict. It builds no change object.

    ``wanted`` is a constant of each function (a closure cell): each test of it is
    one load and one jump.

    The path reads each field once, checks it by section 2 steps 1 to 3 with class
    tests (everything present is of exactly the right type; a field most events do
    not carry is tested for presence first), does steps 4 to 6 inline and calls the
    handler of its type (step 7) with the fields it already read. The most frequent
    events, stream chunks of a known turn, it applies itself: appended to a running
    turn, superseded on a replaced one, or refused when their parent names no turn.
    Those shortcuts past the transition table are tied to the table's rows at import
    (see the assertions at the top of this module); every other case goes to the
    table through ``_stream_text``. An event this path cannot pass whole (a field of
    the wrong type, a subclass of ``str``, a float where an integer belongs, a
    non-string ``seqEpoch``, a ``tool_use`` whose ``toolInput`` must be exact) goes to
    the general path, ``_agent_message_slowly``, which words the refusal: nothing has
    changed before step 3 has passed, so an event can move there at any point before.

    ``message`` is read by subscript only when it is exactly a ``dict`` (a subclass's
    ``__missing__`` could answer a field the event does not carry), and so is its
    ``data``. ``raw`` is the line ``message`` was decoded from by orjson, which reads
    an integer beyond 64 bits as a float, or ``None`` when ``message`` is exact (an
    in-process caller's: then it may hold integers no line could bring, see
    ``check_decoded_integers``).

    The batch path returns, for an event it applied whole (steps 4 to 7), the
    event's thread if it names its turn (a non-empty ``turnInvocationId``), else the
    tuple ``(thread, type, origin)`` (``origin`` is the ``text`` field's, else
    ``None``); ``None`` for every other event. ``check_lines`` reads it: a named event
    (when it was not refused) breaks no rule of section 10, and for the others the
    type and origin say which rule they concern, so the checker reads none of the
    fields again.
    """

    def receive_message(self: Any, message: Any, raw: bytes | str | None = None) -> Any:
        if wanted:
            line = self._line = self._line + 1
            if message.__class__ is dict:
                try:
                    data = message[_data]
                    name = message[_event]
                except KeyError:
                    data = name = None
            else:
                data = name = None
            if data.__class__ is not dict or not name == "agent_message":
                # Any other message: a history page (section 7), another event
                # (ignored, section 1), or anything else for the general path, which
                # words it. (The name is compared only beside an object, and with ==
                # alone, as the general path does: an in-process caller's name may
                # raise, or answer != as it likes.)
                changes: Any = []
                if data.__class__ is dict and name == "history":
                    self._history(data, line, changes, raw)
                elif data.__class__ is dict and name.__class__ is str:
                    self._ignored += 1
                else:
                    self._dispatch_slowly(message, line, changes, raw)
                return tuple(changes)
        else:
            # The batch callers hand over only an agent_message whose ``data`` is
            # exactly a dict (they dispatch the rest themselves), its line counted.
            line = self._line
            data = message[_data]
        # The changes, for a caller that wants them: a list made only when needed (a
        # gap, or a handler's changes); the shortcuts below return theirs directly.
        changes = None
        try:  # every event carries these three (the general path words a missing one)
            kind = data[_type]
            thread_id = data[_threadId]
            cat = data[_catId]
        except KeyError:
            return self._slowly(data, line, wanted, raw)
        # Step 1: the envelope (a subclass of str goes the general way). Every check
        # below that fails sends the event the general way, which words the refusal:
        # nothing has changed until step 3 has passed.
        if not (kind.__class__ is str and thread_id.__class__ is str and cat.__class__ is str):
            return self._slowly(data, line, wanted, raw)
        # Step 2: unknown types are ignored, for forward compatibility. The type is
        # compared with "text" once and the answer kept: comparing two equal strings
        # that are not one object costs about 200 instructions.
        text = kind == "text"
        if not text and kind not in KNOWN_TYPES:
            self._ignored += 1
            return () if wanted else None
        # Step 3: field types, each field read once (twice for the rare event the
        # subscripts below miss). On a line a float never passes ``__class__ is
        # int``: it goes the general way, which decodes the line again exactly (a
        # 20-digit timestamp is an integer). The bounds hold on a line anyway (orjson
        # yields 64-bit integers); they matter for a decoded message (see
        # ``check_decoded_integers``). A field an event may lack is read with
        # ``data.get(...)``, not a saved ``get = data.get``: making that bound method
        # costs more than the method lookups it spares.
        try:
            # Nearly every event carries these two: a subscript costs about 100
            # instructions less than ``get``, and the KeyError of the rare event
            # without one about 1,700 more.
            parent = data[_invocationId]
            ts = data[_timestamp]
        except KeyError:
            parent = data.get(_invocationId)
            ts = data.get(_timestamp)
        content = data.get(_content)
        origin = data.get(_origin) if text else None  # (check_lines reads a text's only)
        # The event's shape first. A field is known to be there when a subscript found
        # it or a read gave more than None. When the event has no field beyond those
        # (and metadata, which the engine never reads), none of the fields below is
        # there, and the five lookups that would say so, about 1,300 instructions, are
        # spared. That is the shape of what a real server sends most: six fields for
        # nearly every system_info and eight for every stream chunk (clowder-ai's,
        # fixed or not). Any other shape pays about 300 for the test (the length, one
        # call).
        size = len(data)
        if (
            (size == 6 or (size == 8 and origin is not None and _metadata in data))
            and content is not None
            and parent is not None
            and ts is not None
        ):
            # type, threadId, catId, invocationId, timestamp, content (and, in eight,
            # origin and metadata): no turnInvocationId, seq, messageId, error or
            # toolName.
            turn_id = seq = None
            if not (
                content.__class__ is str
                and parent.__class__ is str
                and ts.__class__ is int
                and abs(ts) < _HUGE
            ):
                return self._slowly(data, line, wanted, raw)
        else:
            turn_id = data.get(_turnInvocationId)
            seq = data.get(_seq)
            if not (
                # (Each test in the order that answers the usual event first.)
                (content.__class__ is str or content is None)
                and (parent.__class__ is str or parent is None)
                and (turn_id is None or turn_id.__class__ is str)
                and ((ts.__class__ is int and abs(ts) < _HUGE) or ts is None)
                and (seq is None or (seq.__class__ is int and abs(seq) < _HUGE))
                # Fields most events do not carry: a test of presence, not a read
                # (messageId is read again by the callbacks that use it).
                and (_messageId not in data or data[_messageId].__class__ in _STRING_OR_NULL)
                and (_error not in data or data[_error].__class__ in _STRING_OR_NULL)
                and (_toolName not in data or data[_toolName].__class__ in _STRING_OR_NULL)
            ):
                return self._slowly(data, line, wanted, raw)
        if text:
            if content is None:
                return self._slowly(data, line, wanted, raw)
            callback = False
            if origin is not None and origin != "stream":
                if origin != "callback":
                    return self._slowly(data, line, wanted, raw)
                callback = True
        elif kind == "system_info":
            if content is None:
                return self._slowly(data, line, wanted, raw)
        elif kind == "tool_use" and raw is not None and needs_exact(raw):
            # toolInput goes into the output as it is: it must be exact.
            return self._slowly(data, line, wanted, raw)
        if seq is not None:
            epoch = data.get(_seqEpoch)
            if epoch.__class__ is not str and epoch is not None:
                if raw is not None:  # from a line, it may hold a float for a big integer
                    return self._slowly(data, line, wanted, raw)
                epoch = epoch_key(epoch)  # strings and null are their own key

        # Steps 4 to 7, as in _steps_4_to_7 (written out: every event).
        # The thread of the last event first: a client's events nearly all come from
        # the thread it shows, and comparing two equal strings costs less than the
        # dictionary lookup, whose first step hashes the id (a new string object in
        # every decoded event), about 300 instructions an event in all.
        thread = self._last_thread
        if thread_id != thread.id:
            try:  # (a subscript: the thread nearly always exists, as above)
                thread = self._threads[thread_id]
            except KeyError:  # step 6, early: nothing from here refuses
                thread = self._threads[thread_id] = ThreadState(thread_id)
            if thread.id.__class__ is str:  # (a str subclass id may compare as it likes)
                self._last_thread = thread
        if seq is not None:  # step 4
            if thread.seq_epoch == epoch:
                last = thread.seq_last
                if seq <= last:
                    self._duplicates += 1
                    return (Duplicate(line, thread_id, seq),) if wanted else None
                if seq > last + 1:
                    gap = Gap(thread_id, last, seq, line)
                    self._gaps.append(gap)
                    if wanted:
                        changes = [gap]
            else:
                thread.seq_epoch = epoch
            thread.seq_last = seq
        if ts is None:  # step 5
            ts = thread.last_timestamp()
        elif ts > thread.max_ts:
            thread.max_ts = ts
        # Step 7. First the most frequent events, past the transition table: a stream
        # chunk of a turn this client knows (appended, or superseded) or of a parent
        # that names no turn (refused). Those shortcuts are tied to the table's rows
        # at import (see the top of this module) and return their change directly.
        if text and not callback:
            # Binding rules 1 and 2 (as in _bind), for a turn already known.
            if turn_id:
                turn = thread.turns.get(turn_id)
            elif parent:
                # (A thread with no announcement yet, a client that joined mid-turn,
                # binds nothing this way: no lookup.)
                latest = thread.latest
                parents = latest.get(cat) if latest else None
                turn = parents.get(parent) if parents is not None else None
                if turn is None:  # rule 2 never falls through
                    # _unbound(thread, line, "stream text", cat, changes), written out
                    # (a client that joined mid-turn refuses most of its chunks here;
                    # tests/test_shortcuts.py compares the two): logged as its line and
                    # the thread's one Refusal of this agent's unbound chunks, and for
                    # a caller that wants the changes a Rejected built as refusal()
                    # builds it.
                    if cat == thread.unbound_cat:
                        why = thread.unbound_why
                    else:
                        why = self._unbound_text(thread, cat)
                    self._refusal_lines.append(line)
                    self._refusals.append(why)
                    if not wanted:
                        return thread, kind, origin
                    rejected: Any = _RejectedInTheMaking()
                    rejected.line = line
                    rejected.reason = _UNBOUND_EVENT
                    rejected.detail = why[1]
                    rejected.thread = thread.id
                    rejected.__class__ = Rejected
                    if changes is None:
                        return (rejected,)
                    changes.append(rejected)  # after a seq gap
                    return tuple(changes)
            else:
                turn = None
            if turn is not None:
                state = turn.state
                if state is _RUNNING and (bubble := turn.primary) is not None:
                    # The table's row for this case (asserted at import): append,
                    # nothing else; an empty chunk changes nothing (no report).
                    if content:
                        # Bubble.append, inline.
                        parts = bubble._text
                        if parts.__class__ is list:
                            parts.append(content)
                        else:  # the first text (a str subclass from the general path too)
                            bubble._text = [parts, content]
                        if wanted:
                            # BubbleUpdated(bubble, _APPENDED, line, content), built
                            # inline (see the assertion at the top).
                            update = _new(BubbleUpdated)
                            update.bubble = bubble
                            update.how = _APPENDED
                            update.line = line
                            update.delta = content
                            if changes is None:
                                return (update,)
                            changes.append(update)  # after a seq gap
                    if wanted:
                        return tuple(changes) if changes is not None else ()
                    return thread if turn_id else (thread, kind, origin)
                if state in _STALE_STREAM_STATES:
                    # The table's row: superseded, nothing else (the set is read off
                    # the table at import).
                    self._superseded += 1
                    if not wanted:
                        return thread if turn_id else (thread, kind, origin)
                    # Superseded(line, thread.id, turn.id), inline.
                    stale = _new(Superseded)
                    stale.line = line
                    stale.thread = thread.id
                    stale.invocation = turn.id
                    if changes is None:
                        return (stale,)
                    changes.append(stale)  # after a seq gap
                    return tuple(changes)
        # Every other event goes to the handler of its type (step 3 made sure a text
        # or a system_info has a string content).
        if wanted and changes is None:
            changes = []
        if text:
            assert content is not None  # step 3: a text has a string content
            if callback:
                self._callback(
                    thread, data, cat, ts, line, changes, content, turn_id, parent,
                    data.get(_messageId),
                )
            else:  # a turn named for the first time, rule 3, or the table's other rows
                self._stream_text(thread, cat, ts, line, changes, content, turn_id, parent)
        elif kind == "system_info":
            assert content is not None  # step 3: a system_info has a string content
            self._system_info(thread, cat, ts, line, changes, content, turn_id, parent)
        elif kind == "done":
            # _done, written out (one Python call less per done).
            turn = self._bind(thread, turn_id, parent, cat)
            if turn is not None:
                self._close(thread, turn, _DONE_END, line, changes)
        elif kind == "tool_use" or kind == "tool_result":
            self._tool(thread, data, kind, cat, ts, line, changes, content, turn_id, parent)
        else:
            self._apply_other(
                thread, data, kind, cat, ts, line, changes, content, turn_id, parent
            )
        if wanted:
            return tuple(changes)
        if turn_id:
            return thread
        return thread, kind, origin

    return receive_message


class AgentMessageHandlers(CallbackPlacement):
    """Section 2's two paths and the handlers of sections 3 and 5."""

    #: The batch callers' fast path for an agent_message (see _message_path).
    _message_batched = _message_path(wanted=False)
    _message_batched.__qualname__ = "AgentMessageHandlers._message_batched"

    def _slowly(
        self, data: dict[str, Any], line: int, wanted: bool, raw: bytes | str | None
    ) -> tuple[Change, ...] | None:
        """The general path for an ``agent_message`` the fast path passed on; returns
        as the fast path does (the changes, for a caller that wants them)."""
        changes: Sink = [] if wanted else None
        self._agent_message_slowly(data, line, changes, raw)
        return tuple(changes) if changes is not None else None

    def _agent_message_slowly(
        self, data: dict[str, Any], line: int, changes: Sink, raw: bytes | str | None
    ) -> None:
        """Section 2, steps 1 to 7, one by one: the general path, which words refusals.

        ``data`` is the event's payload, ``changes`` where the changes go (``None``
        for a caller that wants none), ``raw`` the line ``data`` was decoded from by
        orjson, or ``None`` when ``data`` is exact.
        """
        if raw is not None and needs_exact(raw):
            # orjson may have decoded an integer beyond 64 bits as a float: decode the
            # line again exactly (the standard library), so a 20-digit timestamp is an
            # integer and a refusal names the value the line holds.
            try:
                data = decode_json(raw)["data"]
            except WireError as exc:  # orjson read the line, so this cannot happen
                self._refuse_line(line, f"not strict JSON: {exc}", changes)
                return
        get = data.get
        kind = get("type")
        thread_id = get("threadId")
        cat = get("catId")
        # Step 1: the envelope.
        if not (isinstance(kind, str) and isinstance(thread_id, str) and isinstance(cat, str)):
            self._refuse(
                line, Reason.MALFORMED_EVENT, "type, threadId and catId must be strings",
                changes, thread_id,
            )
            return
        # Step 2: unknown types are ignored, for forward compatibility.
        if kind not in KNOWN_TYPES:
            self._ignored += 1
            return
        # Step 3: field types.
        problem = check_agent_message(data, kind)
        if problem is None and raw is None:
            problem = check_decoded_integers(data)
        if problem is not None:
            self._refuse(line, Reason.MALFORMED_EVENT, problem, changes, thread_id)
            return
        seq = get("seq")
        epoch = get("seqEpoch") if seq is not None else None
        if epoch is not None and epoch.__class__ is not str:
            epoch = epoch_key(epoch)
        self._steps_4_to_7(
            data, kind, thread_id, cat, get("timestamp"), seq, epoch, line, changes
        )

    def _steps_4_to_7(
        self,
        data: dict[str, Any],
        kind: str,
        thread_id: str,
        cat: str,
        ts: int | None,
        seq: int | None,
        epoch: Any,
        line: int,
        changes: Sink,
    ) -> None:
        """Steps 4 to 7 for an event that passed step 3 (``epoch`` is its key)."""
        # Step 6 is done here, before steps 4 and 5: nothing between them can refuse,
        # and a seq duplicate implies an earlier event already made the thread.
        thread = self._thread(thread_id)
        # Step 4: seq (section 6). It runs before binding, so an event refused later
        # still advances the counter, as the protocol asks.
        if seq is not None:
            if thread.seq_epoch == epoch:
                last = thread.seq_last
                if seq <= last:
                    self._duplicates += 1
                    if changes is not None:
                        changes.append(Duplicate(line, thread_id, seq))
                    return
                if seq > last + 1:
                    gap = Gap(thread_id, last, seq, line)
                    self._gaps.append(gap)
                    if changes is not None:
                        changes.append(gap)
            else:
                thread.seq_epoch = epoch
            thread.seq_last = seq
        # Step 5: the timestamp.
        if ts is None:
            ts = thread.last_timestamp()
        else:
            thread.see_timestamp(ts)
        # Step 7: apply by type.
        get = data.get
        content, turn_id, parent = get("content"), get("turnInvocationId"), get("invocationId")
        if kind != "text":
            self._apply_other(thread, data, kind, cat, ts, line, changes, content, turn_id, parent)
            return
        assert content is not None  # step 3: text needs a string content
        if get("origin") == "callback":
            self._callback(
                thread, data, cat, ts, line, changes, content, turn_id, parent, get("messageId")
            )
        else:
            self._stream_text(thread, cat, ts, line, changes, content, turn_id, parent)

    def _apply_other(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        kind: str,
        cat: str,
        ts: int,
        line: int,
        changes: Sink,
        content: str | None,
        turn_id: str | None,
        parent: str | None,
    ) -> None:
        """Step 7 for every known type but ``text``."""
        if kind == "done":
            self._done(thread, cat, line, changes, turn_id, parent)
        elif kind == "system_info":
            assert content is not None  # step 3: system_info needs a string content
            self._system_info(thread, cat, ts, line, changes, content, turn_id, parent)
        elif kind == "tool_use" or kind == "tool_result":
            self._tool(thread, data, kind, cat, ts, line, changes, content, turn_id, parent)
        elif kind == "error":
            self._error(thread, data, cat, ts, line, changes, content, turn_id, parent)
        else:
            # Section 5: a2a_handoff is a system line (text = content or "").
            self._system_line(thread, cat, content or "", ts, line, changes)

    def _done(
        self,
        thread: ThreadState,
        cat: str,
        line: int,
        changes: Sink,
        turn_id: str | None,
        parent: str | None,
    ) -> None:
        """Section 3, closing: a bound done closes its turn; an unbound one does
        nothing (there is nothing it could close exactly)."""
        turn = self._bind(thread, turn_id, parent, cat)
        if turn is not None:
            self._close(thread, turn, _DONE_END, line, changes)

    def _attach(
        self, thread: ThreadState, turn: Turn, cat: str, ts: int, line: int, changes: Sink
    ) -> None:
        """A bound tool, thinking or block: the table says it attaches (in any state)
        and whether it is the first sign that the turn runs."""
        if turn.step(_ACTIVITY)[2] is _OPENS:
            self._opened(thread, turn, cat, ts, line, changes)

    # ------------------------------------------------------------------ by type

    def _stream_text(
        self,
        thread: ThreadState,
        cat: str,
        ts: int,
        line: int,
        changes: Sink,
        chunk: str,
        turn_id: str | None,
        parent: str | None,
    ) -> None:
        """Sections 3 and 5: a stream chunk grows its turn's primary bubble.

        The turn's table says whether the chunk is appended, superseded (a callback
        already replaced the turn) or refused (the turn closed without a callback).
        The general path sends every chunk here; the fast path only the chunks its
        shortcuts do not cover (a turn named for the first time, binding rule 3, a
        turn that has not started running or has no bubble yet, a closed turn).
        """
        turn = self._bind(thread, turn_id, parent, cat)
        if turn is None:
            self._unbound(thread, line, "stream text", cat, changes)
            return
        bubble = turn.primary
        _, action, activity = turn.step(_STREAM_TEXT)
        if activity is _OPENS:
            self._opened(thread, turn, cat, ts, line, changes)
        if action is _APPEND:
            if bubble is None:
                self._primary(thread, turn, cat, ts, line, changes, chunk)
            elif chunk:
                bubble.append(chunk)
                if changes is not None:
                    changes.append(BubbleUpdated(bubble, _APPENDED, line, chunk))
        elif action is _SUPERSEDE:
            # Not a refusal: a callback may overtake its own stream, and the chunk's
            # text is already inside the callback's snapshot.
            self._superseded += 1
            if changes is not None:
                changes.append(Superseded(line, thread.id, turn.id))
        else:
            self._refuse(
                line,
                Reason.STREAM_AFTER_DONE,
                f"turn {turn.id!r} is closed; stream text after done is not appended",
                changes,
                thread.id,
            )

    def _tool(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        kind: str,
        cat: str,
        ts: int,
        line: int,
        changes: Sink,
        content: str | None,
        turn_id: str | None,
        parent: str | None,
    ) -> None:
        """Sections 3 and 5: a tool use or result joins its turn's primary bubble
        (open or closed: tool events still attach after done)."""
        turn = self._bind(thread, turn_id, parent, cat)
        if turn is None:
            self._unbound(thread, line, kind, cat, changes)
            return
        if kind == "tool_use":
            entry = {"kind": "use", "name": data.get(_toolName), "input": data.get(_toolInput)}
        else:
            entry = {"kind": "result", "name": data.get(_toolName), "content": content}
        if turn.step(_ACTIVITY)[2] is _OPENS:  # as _attach
            self._opened(thread, turn, cat, ts, line, changes)
        bubble = turn.primary
        if bubble is None:
            # A new primary bubble: its BubbleAdded reports the tool too.
            self._primary(thread, turn, cat, ts, line, changes).add_tool(entry)
        else:
            bubble.add_tool(entry)
            if changes is not None:
                # BubbleUpdated(bubble, _TOOL, line), inline (see the assertion at the
                # top; every tool event of a running turn).
                update = _new(BubbleUpdated)
                update.bubble = bubble
                update.how = _TOOL
                update.line = line
                update.delta = None
                changes.append(update)

    def _error(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        cat: str,
        ts: int,
        line: int,
        changes: Sink,
        content: str | None,
        turn_id: str | None,
        parent: str | None,
    ) -> None:
        """Section 3, closing: a bound ``error`` marks the turn's primary bubble and
        closes the turn; an unbound one is a system line, so the user still sees it."""
        text = data.get("error") or content or None
        turn = self._bind(thread, turn_id, parent, cat)
        if turn is None:
            self._system_line(thread, cat, "", ts, line, changes, Status.ERROR, text)
            return
        made = turn.primary is None
        bubble = self._primary(thread, turn, cat, ts, line, changes)
        if bubble.fail(text) and not made and changes is not None:
            changes.append(BubbleUpdated(bubble, Update.ERRORED, line))
        # The bubble already says error, so closing has no status left to change.
        self._close(thread, turn, TurnEnd.ERROR, line, changes)

    def _system_info(
        self,
        thread: ThreadState,
        cat: str,
        ts: int,
        line: int,
        changes: Sink,
        content: str,
        turn_id: str | None,
        parent: str | None,
    ) -> None:
        """Sections 3 and 5: a ``system_info`` payload is a sub-protocol of its own.

        A JSON object names its sub-type (announcement, thinking, rich block, or one
        with no bubble meaning); anything else is a plain system line.
        """
        payload = None
        if content[:1] == "{":
            # The usual object, decoded as parse_json_object would. orjson refuses a
            # str subclass (from an in-process caller) with the same error, so that
            # one goes to parse_json_object too.
            try:
                payload = _loads(content)
            except _JSONDecodeError:
                payload = parse_json_object(content)
        elif content:
            payload = parse_json_object(content)  # perhaps an object after white space
        if payload is None:
            self._system_line(thread, cat, content, ts, line, changes)
            return
        kind = payload.get(_type)
        created = kind == "invocation_created"  # the usual one, compared once
        if not created and kind != "thinking" and kind != "rich_block":
            self._ignored += 1  # usage, metrics, liveness...: no bubble meaning
            return
        # The payload's catId names the agent when it has one: a server may announce
        # one agent's turn in an envelope of another.
        agent = payload.get(_catId)
        if not isinstance(agent, str):
            agent = cat
        if created:
            # Section 3, announcing: the turn opens under the envelope's parent id.
            announced = payload.get(_invocationId)
            if isinstance(announced, str) and announced:  # is_id
                self._open_turn(thread, announced, parent, agent, ts, line, changes)
            else:
                self._refuse(
                    line, Reason.MALFORMED_EVENT, "invocation_created needs an invocationId",
                    changes, thread.id,
                )
        elif kind == "thinking":
            self._thinking(thread, payload, agent, turn_id, parent, ts, line, changes)
        else:
            self._rich_block(thread, payload, agent, turn_id, parent, ts, line, changes)

    def _thinking(
        self,
        thread: ThreadState,
        payload: dict[str, Any],
        agent: str,
        turn_id: str | None,
        parent: str | None,
        ts: int,
        line: int,
        changes: Sink,
    ) -> None:
        """Section 5: thinking text joins its turn's primary bubble."""
        turn = self._bind(thread, turn_id, parent, agent)
        if turn is None:
            self._unbound(thread, line, "thinking", agent, changes)
            return
        text = payload.get("text")
        if not isinstance(text, str):
            text = ""  # the protocol counts a non-string text as empty
        self._attach(thread, turn, agent, ts, line, changes)
        made = turn.primary is None
        bubble = self._primary(thread, turn, agent, ts, line, changes)
        # Empty thinking on an empty bubble changes nothing: no update for it.
        if bubble.add_thinking(text) and not made and changes is not None:
            changes.append(BubbleUpdated(bubble, Update.THINKING, line))

    def _rich_block(
        self,
        thread: ThreadState,
        payload: dict[str, Any],
        agent: str,
        turn_id: str | None,
        parent: str | None,
        ts: int,
        line: int,
        changes: Sink,
    ) -> None:
        """Section 5: a rich block goes to the bubble of its message id (held until
        that bubble exists), or else binds like any stream-side event."""
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
        turn = self._bind(thread, turn_id, parent, agent)
        if turn is None:
            self._unbound(thread, line, "rich_block", agent, changes)
            return
        self._attach(thread, turn, agent, ts, line, changes)
        made = turn.primary is None
        bubble = self._primary(thread, turn, agent, ts, line, changes)
        if made:
            bubble.add_block(block_id)  # reported by the BubbleAdded
        else:
            self._add_block(bubble, block_id, line, changes)
