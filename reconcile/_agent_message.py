"""Section 2: processing an ``agent_message``, and its per-type handlers.

:meth:`AgentMessageHandlers._agent_message` runs the steps of section 2 in order
(envelope, known type, field types, seq, timestamp, thread) and then hands the event
to the handler of its type (step 7, the ``_APPLY`` table at the end). The handlers
carry out sections 3 (turns: announcing, binding, closing) and 5 (bubbles: tools,
thinking, rich blocks, system lines); callbacks go to section 4 (``_callbacks``).

Every handler has the same signature, ``(self, thread, data, cat, ts, line,
changes)``, and reports what it did by appending to ``changes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._bubbles import BubbleAdded, BubbleUpdated, Change, Duplicate, Gap, Status, Superseded, Update
from ._callbacks import CallbackPlacement
from ._errors import Reason
from ._thread import ThreadState
from ._turns import Turn
from ._turns import Action, Activity, TurnEnd, TurnInput
from ._wire import (
    KNOWN_TYPES,
    check_agent_message,
    check_decoded_integers,
    epoch_key,
    is_id,
    parse_json_object,
)

__all__ = ["AgentMessageHandlers"]

_STREAM_TEXT, _ACTIVITY = TurnInput.STREAM_TEXT, TurnInput.ACTIVITY
_APPEND, _SUPERSEDE = Action.APPEND, Action.SUPERSEDE
_OPENS = Activity.OPENS
_APPENDED = Update.APPENDED


class AgentMessageHandlers(CallbackPlacement):
    """Section 2's pipeline and the handlers of sections 3 and 5."""

    def _agent_message(
        self, data: dict[str, Any], line: int, decoded: bool = False
    ) -> tuple[Change, ...]:
        """Section 2, steps 1 to 7, for one ``agent_message`` payload.

        ``decoded`` is true when the caller passed the message already decoded: then
        it may hold integers no JSON line could bring (see check_decoded_integers).
        """
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
        if problem is None and decoded:
            problem = check_decoded_integers(data)
        if problem is not None:
            return self._reject(line, Reason.MALFORMED_EVENT, problem, thread_id)
        # Step 6 is done here, before steps 4 and 5: nothing between them can refuse,
        # and a seq duplicate implies an earlier event already made the thread.
        thread = self._threads.get(thread_id)
        if thread is None:
            thread = self._threads[thread_id] = ThreadState(thread_id)
        changes: list[Change] = []
        # Step 4: seq (section 6). It runs before binding, so an event refused later
        # still advances the counter, as the protocol asks.
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
        # Step 5: the timestamp (written out: this runs on every event).
        ts = get("timestamp")
        if ts is None:
            ts = thread.max_ts
        elif ts > thread.max_ts or not thread.seen_ts:
            thread.max_ts = ts
            thread.seen_ts = True
        # Step 7: apply by type.
        apply(self, thread, data, cat, ts, line, changes)
        return tuple(changes)

    def _attach(
        self, thread: ThreadState, turn: Turn, cat: str, ts: int, line: int, changes: list[Change]
    ) -> None:
        """A bound tool, thinking or block: the table says it attaches (in any state)
        and whether it is the first sign that the turn runs."""
        if turn.step(_ACTIVITY)[2] is _OPENS:
            self._opened(thread, turn, cat, ts, line, changes)

    # ------------------------------------------------------------------ by type

    def _text(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        cat: str,
        ts: int,
        line: int,
        changes: list[Change],
    ) -> None:
        """Sections 3 and 5: a stream chunk grows its turn's primary bubble.

        The turn's table says whether the chunk is appended, superseded (a callback
        already replaced the turn) or refused (the turn closed without a callback).
        """
        if data.get("origin") == "callback":
            self._callback(thread, data, cat, ts, line, changes)
            return
        turn = self._bind(thread, data, cat)
        if turn is None:
            self._unbound(thread, line, "stream text", cat, changes)
            return
        _, action, activity = turn.step(_STREAM_TEXT)
        if activity is _OPENS:
            self._opened(thread, turn, cat, ts, line, changes)
        if action is _APPEND:
            chunk = data["content"]
            bubble = turn.primary
            if bubble is None:
                self._primary(thread, turn, cat, ts, line, changes, chunk)
            elif chunk:  # an empty chunk changes nothing, so it reports nothing
                bubble.append(chunk)
                changes.append(BubbleUpdated(bubble, _APPENDED, line, chunk))
        elif action is _SUPERSEDE:
            # Not a refusal: a callback may overtake its own stream, and the chunk's
            # text is already inside the callback's snapshot.
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

    def _tool(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        cat: str,
        ts: int,
        line: int,
        changes: list[Change],
    ) -> None:
        """Sections 3 and 5: a tool use or result joins its turn's primary bubble
        (open or closed: tool events still attach after done)."""
        turn = self._bind(thread, data, cat)
        if turn is None:
            self._unbound(thread, line, data["type"], cat, changes)
            return
        if data["type"] == "tool_use":
            entry = {"kind": "use", "name": data.get("toolName"), "input": data.get("toolInput")}
        else:
            entry = {"kind": "result", "name": data.get("toolName"), "content": data.get("content")}
        self._attach(thread, turn, cat, ts, line, changes)
        made = turn.primary is None
        bubble = self._primary(thread, turn, cat, ts, line, changes)
        bubble.add_tool(entry)
        if not made:
            changes.append(BubbleUpdated(bubble, Update.TOOL, line))

    def _done(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        cat: str,
        ts: int,
        line: int,
        changes: list[Change],
    ) -> None:
        """Section 3, closing: a bound ``done`` closes its turn; an unbound one does
        nothing (there is nothing it could close exactly)."""
        turn = self._bind(thread, data, cat)
        if turn is not None:
            self._close(thread, turn, TurnEnd.DONE, line, changes)

    def _error(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        cat: str,
        ts: int,
        line: int,
        changes: list[Change],
    ) -> None:
        """Section 3, closing: a bound ``error`` marks the turn's primary bubble and
        closes the turn; an unbound one is a system line, so the user still sees it."""
        text = data.get("error") or data.get("content") or None
        turn = self._bind(thread, data, cat)
        if turn is None:
            self._system_line(thread, cat, "", ts, line, changes, Status.ERROR, text)
            return
        made = turn.primary is None
        bubble = self._primary(thread, turn, cat, ts, line, changes)
        if bubble.fail(text) and not made:
            changes.append(BubbleUpdated(bubble, Update.ERRORED, line))
        # The bubble already says error, so closing has no status left to change.
        self._close(thread, turn, TurnEnd.ERROR, line, changes)

    def _handoff(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        cat: str,
        ts: int,
        line: int,
        changes: list[Change],
    ) -> None:
        """Section 5: ``a2a_handoff`` is a system line (text = content or "")."""
        self._system_line(thread, cat, data.get("content") or "", ts, line, changes)

    def _system_info(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        cat: str,
        ts: int,
        line: int,
        changes: list[Change],
    ) -> None:
        """Sections 3 and 5: a ``system_info`` payload is a sub-protocol of its own.

        A JSON object names its sub-type (announcement, thinking, rich block, or one
        with no bubble meaning); anything else is a plain system line.
        """
        content = data["content"]
        payload = parse_json_object(content)
        if payload is None:
            self._system_line(thread, cat, content, ts, line, changes)
            return
        # The payload's catId names the agent when it has one: a server may announce
        # one agent's turn in an envelope of another.
        agent = payload.get("catId")
        if not isinstance(agent, str):
            agent = cat
        kind = payload.get("type")
        if kind == "invocation_created":
            self._announce(thread, data, payload, agent, ts, line, changes)
        elif kind == "thinking":
            self._thinking(thread, data, payload, agent, ts, line, changes)
        elif kind == "rich_block":
            self._rich_block(thread, data, payload, agent, ts, line, changes)
        else:
            self._ignored += 1  # usage, metrics, liveness...: no bubble meaning

    def _announce(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        payload: dict[str, Any],
        agent: str,
        ts: int,
        line: int,
        changes: list[Change],
    ) -> None:
        """Section 3, announcing: ``invocation_created`` opens its turn under the
        envelope's parent id."""
        turn_id = payload.get("invocationId")
        if not is_id(turn_id):
            self._refuse(
                line, Reason.MALFORMED_EVENT, "invocation_created needs an invocationId", changes,
                thread.id,
            )
            return
        self._open_turn(thread, turn_id, data.get("invocationId"), agent, ts, line, changes)

    def _thinking(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        payload: dict[str, Any],
        agent: str,
        ts: int,
        line: int,
        changes: list[Change],
    ) -> None:
        """Section 5: thinking text joins its turn's primary bubble."""
        turn = self._bind(thread, data, agent)
        if turn is None:
            self._unbound(thread, line, "thinking", agent, changes)
            return
        text = payload.get("text")
        if not isinstance(text, str):
            text = ""  # the protocol counts a non-string text as empty
        self._attach(thread, turn, agent, ts, line, changes)
        made = turn.primary is None
        bubble = self._primary(thread, turn, agent, ts, line, changes)
        before = bubble.thinking
        bubble.add_thinking(text)
        # Empty thinking on an empty bubble changes nothing: no update for it.
        if not made and bubble.thinking != before:
            changes.append(BubbleUpdated(bubble, Update.THINKING, line))

    def _rich_block(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        payload: dict[str, Any],
        agent: str,
        ts: int,
        line: int,
        changes: list[Change],
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
        turn = self._bind(thread, data, agent)
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


_Handler = Callable[
    [AgentMessageHandlers, ThreadState, dict[str, Any], str, int, int, list[Change]], None
]

# One function per agent_message type (section 2 step 7). A dict beats an if-chain.
_APPLY: dict[str, _Handler] = {
    "text": AgentMessageHandlers._text,
    "tool_use": AgentMessageHandlers._tool,
    "tool_result": AgentMessageHandlers._tool,
    "system_info": AgentMessageHandlers._system_info,
    "error": AgentMessageHandlers._error,
    "done": AgentMessageHandlers._done,
    "a2a_handoff": AgentMessageHandlers._handoff,
}
assert set(_APPLY) == KNOWN_TYPES
