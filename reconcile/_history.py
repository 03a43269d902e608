"""Section 7: merging a page of stored messages, by exact identity.

A client applies a history page after joining a thread, after reconnecting, or after
a ``seq`` gap. Stored messages meet what was seen live: a stored callback is placed
exactly as a live one (section 4), a draft only fills a turn that has no bubble yet,
a stored stream message is the turn's final text and closes it, and a message without
a turn is a bubble of its own keyed by its id. Nothing is matched by text or time.
"""

from __future__ import annotations

from typing import Any

from ._bubbles import BubbleAdded, BubbleUpdated, Origin, Refusal, Status, Update, refusal
from ._callbacks import CallbackPlacement, is_explicit_post
from ._core import Sink, _kept
from ._errors import Reason
from ._thread import ThreadState
from ._turns import TRANSITIONS, Action, Activity, Turn, TurnEnd, TurnInput, TurnState
from ._wire import WireError, decode_json, decoder_keys, is_id

__all__ = ["HistoryMerge"]


# Enum members as module constants: ``TurnInput.STORED_MESSAGE`` goes through the enum
# metaclass, about 940 instructions a read; a module global is a dictionary read. A
# stored stream message read four of them.
_STORED_MESSAGE, _START = TurnInput.STORED_MESSAGE, TurnInput.START
_OPENS = Activity.OPENS
_SET_TEXT = Action.SET_TEXT
_CLOSES = Activity.CLOSES
_STORED = TurnEnd.STORED
_STREAM, _DONE = Origin.STREAM, Status.DONE
_TEXT_SET, _CLOSED = Update.TEXT_SET, Update.CLOSED
_CALLBACK_WITHOUT_INVOCATION = Reason.CALLBACK_WITHOUT_INVOCATION
_STREAMING = Status.STREAMING

# A client that joined mid-turn reads the same page about once a second: the same draft
# and the same stored messages of turns it already merged. Two shortcuts pass those by
# without the table, each only where the table's row says the message changes nothing.
# Read off the table at import, so they follow any change of its rows.
#
# A draft of a known turn that has its primary bubble: nothing, in the states whose
# START row keeps the state and neither acts nor starts the turn running.
_DRAFT_CHANGES_NOTHING = frozenset(
    state
    for state in TurnState
    if TRANSITIONS[state, _START] == (state, Action.NOTHING, Activity.NONE)
)
# A stored stream message of a known turn: nothing in the states whose STORED_MESSAGE
# row keeps the state and does nothing ...
_STORED_CHANGES_NOTHING = frozenset(
    state
    for state in TurnState
    if TRANSITIONS[state, _STORED_MESSAGE] == (state, Action.NOTHING, Activity.NONE)
)
# ... and nothing in those whose row only sets the primary's text, when the primary
# already has that text and is not streaming (so neither its text nor its status
# changes: Bubble.set_text and Bubble.settle would both answer False).
_STORED_SETS_TEXT = frozenset(
    state
    for state in TurnState
    if TRANSITIONS[state, _STORED_MESSAGE] == (state, _SET_TEXT, Activity.NONE)
)

# The fields of a page and of its stored messages, as orjson's own key objects (see
# decoder_keys: a lookup with that very object skips a character comparison, about
# 160 instructions per field found, some 1,100 per stored message).
(
    _threadId, _messages, _timestamp, _catId, _id, _content, _extra, _stream,
    _invocationId, _origin, _isDraft, _parentInvocationId,
) = decoder_keys(
    "threadId", "messages", "timestamp", "catId", "id", "content", "extra", "stream",
    "invocationId", "origin", "isDraft", "parentInvocationId",
)


def _stored_callback_detail(cat: str, message_id: str) -> str:
    """The detail of a refused stored callback (section 7, version 1.1)."""
    return (
        f"stored callback {message_id!r} from {cat!r} carries no turn id "
        "(extra.stream.invocationId); it is never guessed"
    )


class HistoryMerge(CallbackPlacement):
    """Section 7: ``history`` events."""

    def _history(
        self, data: dict[str, Any], line: int, changes: Sink, raw: bytes | str | None = None
    ) -> tuple[int, int] | None:
        """Section 7: check the page, make its thread exist, merge each message.

        A page is judged message by message (section 8): a refused stored callback is
        skipped and the rest of the page still applies.

        ``raw`` is the line ``data`` was decoded from by orjson alone, or ``None`` when
        ``data`` is exact. orjson reads an integer beyond 64 bits as a float, and of
        all a page holds only a stored ``timestamp`` is read as a number (every other
        field counts only as a string, an object or ``true``, which neither the float
        nor the integer is). So the page is merged as orjson read it unless a message
        has a float timestamp: then the whole page comes from the line's exact decode,
        taken before anything is merged, so a line the exact decoder cannot read (nested
        past its depth) is refused having changed nothing. No scan of the whole line
        for big integers.

        Returns, for ``check_lines`` (which wants no changes: ``changes`` is ``None``),
        what the page lacked by section 10: how many stored callbacks had no
        ``extra.stream.invocationId`` (rule 2) and how many drafts no
        ``extra.stream.parentInvocationId`` (rule 3); ``None`` for a page refused
        whole, and for a caller that wants the changes (``receive_message``: a client
        that joined mid-turn gets a page about every second).
        """
        thread_id = data.get(_threadId)
        messages = data.get(_messages)
        if not (
            (thread_id.__class__ is str or isinstance(thread_id, str))
            and (messages.__class__ is list or isinstance(messages, list))
        ):
            self._refuse(
                line, Reason.MALFORMED_EVENT, "history needs a string threadId and a messages list",
                changes, thread_id,
            )
            return None
        if raw is not None:
            inexact = False
            for message in messages:
                if message.__class__ is dict and message.get(_timestamp).__class__ is float:
                    inexact = True
                    break
            if inexact:
                # Perhaps an integer beyond 64 bits: the page as the exact decoder
                # reads it, before anything is merged.
                try:
                    exact = decode_json(raw)["data"]
                except WireError as exc:
                    # orjson read the line, the exact decoder cannot (nested past
                    # its depth): refused as the general path refuses such a line.
                    self._refuse_line(line, f"not strict JSON: {exc}", changes)
                    return None
                return self._history(exact, line, changes)
        thread = self._threads.get(thread_id)  # _thread, inline for a known thread
        if thread is None:
            thread = self._thread(thread_id)
        callbacks = drafts = 0  # what the page lacked (section 10 rules 2 and 3)
        for message in messages:
            # Each stored message is merged by exact identity (section 7), here in the
            # loop rather than in a method of its own: a Python call with this many
            # arguments and locals costs about 600 instructions, and a client that
            # joined mid-turn reads the same page about once a second.
            #
            # The agent first: a user's message (no catId: about a third of a real
            # page) makes no bubble. message.get(...) each time: a bound ``get`` kept
            # in a local costs more (about 150 instructions a call) than the method
            # call it saves. Each type test asks for the exact class first (what a
            # decoded page holds), then isinstance for a subclass an in-process caller
            # may pass: about 95 instructions less a test, seven tests a message.
            cat = (
                message.get(_catId)
                if message.__class__ is dict or isinstance(message, dict)
                else None
            )
            if cat is None:
                continue
            message_id = message.get(_id)
            if cat.__class__ is not str or message_id.__class__ is not str:
                if not isinstance(cat, str) or not isinstance(message_id, str):
                    continue  # user and system messages make no bubble
            if not message_id:  # is_id inline: an id is a non-empty string
                continue
            text = message.get(_content)
            if text.__class__ is not str and not isinstance(text, str):
                text = ""
            ts = message.get(_timestamp)
            if ts.__class__ is int:  # exactly an int (not a bool), as the fast path asks
                # A stored timestamp counts as seen (step 5), as see_timestamp does.
                if ts > thread.max_ts:
                    thread.max_ts = ts
            else:
                ts = thread.last_timestamp()
            # named: extra.stream.invocationId, when it is an id. (A message without
            # extra, a stored callback on a server without the fix, is answered by
            # the first test: no isinstance calls for a None.)
            turn_id = named = stream = None
            extra = message.get(_extra)
            if extra is not None and (extra.__class__ is dict or isinstance(extra, dict)):
                stream = extra.get(_stream)
                if stream is not None and (stream.__class__ is dict or isinstance(stream, dict)):
                    named = stream.get(_invocationId)
                    if (named.__class__ is str or isinstance(named, str)) and named:
                        turn_id = named
            # Whether the id is a draft's ("draft-" and the turn id) is asked only
            # where the answer is needed: here when extra.stream names no turn, below
            # when isDraft does not say it is a draft (a draft the server marks and
            # names, as clowder-ai's, skips it). message_id[0] == "d" before
            # startswith("draft-"): the server's message ids start with a digit, and
            # str.startswith parses its arguments the slow way (about 870
            # instructions against 410). message_id is not empty.
            draft_id = None
            if turn_id is None:
                draft_id = message_id[0] == "d" and message_id.startswith("draft-")
                if draft_id and len(message_id) > 6:
                    turn_id = message_id[6:]  # a draft's id names its turn

            if message.get(_origin) == "callback":
                if turn_id is None and message_id not in thread.by_message_id:
                    # Version 1.1: refused, as a live callback without its turn id is.
                    # Version 1 showed it as a bubble of its own, so a client that
                    # joined late showed the turn twice (its stored stream message and
                    # this).
                    self._refuse_stored_callback(thread, cat, message_id, line, changes)
                    callbacks += 1
                    continue
                self._stored_callback(
                    thread, message, cat, message_id, turn_id, text, ts, line, changes
                )
                # Section 10 rule 2 asks for the turn id in extra.stream (turn_id is
                # that very string then), not in a draft- message id.
                if turn_id is None or turn_id is not named:
                    callbacks += 1
            elif message.get(_isDraft) is True or (
                draft_id
                if draft_id is not None
                else message_id[0] == "d" and message_id.startswith("draft-")
            ):
                turn = thread.turns.get(turn_id) if turn_id is not None else None
                if (
                    turn is None
                    or turn.primary is None
                    or turn.state not in _DRAFT_CHANGES_NOTHING
                ):
                    self._stored_draft(
                        thread, stream, cat, turn, turn_id, text, ts, line, changes
                    )
                # else: the draft read again (see _DRAFT_CHANGES_NOTHING): nothing.
                # Rule 3's count, for check_lines only (it wants no changes).
                if changes is None and not (
                    isinstance(stream, dict) and is_id(stream.get(_parentInvocationId))
                ):
                    drafts += 1
            elif turn_id is not None:
                turn = thread.turns.get(turn_id)
                if turn is not None:
                    state = turn.state
                    if state in _STORED_CHANGES_NOTHING:
                        continue  # the stored message read again (see above)
                    if state in _STORED_SETS_TEXT:
                        bubble = turn.primary
                        if bubble is not None and bubble.status is not _STREAMING:
                            # Bubble.text, inline for a str.
                            known = bubble._text
                            if (bubble.text if known.__class__ is list else known) == text:
                                continue  # read again: same text, already done
                self._stored_turn_message(
                    thread, cat, turn, turn_id, text, ts, line, changes
                )
            else:
                self._stored_turnless(thread, cat, message_id, text, ts, line, changes)
        return (callbacks, drafts) if changes is None else None

    def _stored_turnless(
        self,
        thread: ThreadState,
        cat: str,
        message_id: str,
        text: str,
        ts: int,
        line: int,
        changes: Sink,
    ) -> None:
        """Section 7: a stored message without a turn is a bubble of its own, keyed by
        its message id, so a later page with the same message sets its text instead
        of adding a copy."""
        stored = thread.stored.get(message_id)
        if stored is not None:
            self._set_text(stored, text, line, changes)
        else:
            bubble = thread.stored[message_id] = self._new_bubble(
                thread, cat, None, _STREAM, _DONE, ts, text
            )
            if changes is not None:
                changes.append(BubbleAdded(bubble, line))

    def _stored_callback(
        self,
        thread: ThreadState,
        message: dict[str, Any],
        cat: str,
        message_id: str,
        turn_id: str | None,
        text: str,
        ts: int,
        line: int,
        changes: Sink,
    ) -> None:
        """Section 7: a stored callback sets its message's text, or is placed as a
        live callback of its turn (the caller refuses one with neither, as a rule)."""
        known = thread.by_message_id.get(message_id)
        if known is not None:
            # The message id belongs to the first bubble that got it (section 5).
            self._set_text(known, text, line, changes)
        elif turn_id is not None:
            # Applied exactly as a live callback, explicit posts included (section
            # 4.3: a stored explicit post stays a post of its own).
            self._place_callback(
                thread, thread.turn(turn_id), cat, text, message_id,
                is_explicit_post(message), ts, line, changes,
            )
        else:
            # Without its turn, the caller refused it unless a bubble had its id; this
            # lookup found none. Only an in-process caller's id whose hash or equality
            # changes between calls gets here: refused too, a value as ever (the
            # caller's test stays the cheap ``in``, which every page of a client that
            # joined mid-turn runs).
            self._refuse_stored_callback(thread, cat, message_id, line, changes)

    def _refuse_stored_callback(
        self, thread: ThreadState, cat: str, message_id: str, line: int, changes: Sink
    ) -> None:
        """Refuse a stored callback that names no turn and no known message.

        ``_refuse``, written out (a client that joined mid-turn meets the same stored
        callback on every page): the thread id is a string already, and for a
        plain-string agent and id what the log keeps (a ``Refusal``) is made once and
        kept in ``thread.refused_callbacks``.
        """
        if cat.__class__ is str and message_id.__class__ is str:
            by_id = thread.refused_callbacks.get(cat)
            why = by_id.get(message_id) if by_id is not None else None
            if why is None:
                why = self._stored_callback_refusal(thread, cat, message_id)
        else:  # a str subclass may word itself otherwise: worded each time
            why = (
                _CALLBACK_WITHOUT_INVOCATION._value_,
                _stored_callback_detail(cat, message_id),
                thread.id,
            )
        self._refusal_lines.append(line)
        self._refusals.append(why)
        if changes is not None:
            changes.append(refusal(line, _CALLBACK_WITHOUT_INVOCATION, why[1], why[2]))

    def _stored_callback_refusal(
        self, thread: ThreadState, cat: str, message_id: str
    ) -> Refusal:
        """What the log keeps of the refusal of the stored callback ``message_id``
        from ``cat`` in ``thread``, made once and kept in ``thread.refused_callbacks``;
        its detail is worded once per engine and kept in ``_stored_callback_details``.
        Plain strings only."""
        details = self._stored_callback_details.get(cat)
        detail = details.get(message_id) if details is not None else None
        if detail is None:
            detail = _kept(
                self._stored_callback_details, cat, message_id,
                _stored_callback_detail(cat, message_id),
            )
        return _kept(
            thread.refused_callbacks, cat, message_id,
            (_CALLBACK_WITHOUT_INVOCATION._value_, detail, thread.id),
        )

    def _stored_draft(
        self,
        thread: ThreadState,
        stream: Any,
        cat: str,
        turn: Turn | None,
        turn_id: str | None,
        text: str,
        ts: int,
        line: int,
        changes: Sink,
    ) -> None:
        """Section 7: a draft fills its turn's primary bubble only when the turn has
        none; it never overwrites text seen live (the live text is newer).

        ``turn`` is the thread's turn ``turn_id``, or ``None`` if it has none yet.
        """
        if turn_id is None:
            return
        if turn is None:
            if isinstance(stream, dict):
                parent = stream.get(_parentInvocationId)
                if is_id(parent):
                    # Version 1.1: a draft naming its parent announces its turn, so a
                    # client that joined mid-turn binds the turn's later chunks.
                    turn = self._open_turn(thread, turn_id, parent, cat, ts, line, changes)
            if turn is None:
                turn = thread.turn(turn_id)
        # A draft is the server's copy of a turn in progress: the turn runs. (_start
        # and _primary, written out.)
        if turn.step(_START)[2] is _OPENS:
            self._opened(thread, turn, cat, ts, line, changes)
        if turn.primary is None:
            self._primary(thread, turn, cat, ts, line, changes, text)

    def _stored_turn_message(
        self,
        thread: ThreadState,
        cat: str,
        turn: Turn | None,
        turn_id: str,
        text: str,
        ts: int,
        line: int,
        changes: Sink,
    ) -> None:
        """Section 7: a stored stream message is its turn's final text and closes the
        turn, unless a callback replaced the turn (the table decides).

        ``turn`` is the thread's turn ``turn_id``, or ``None`` if it has none yet.
        """
        if turn is None:
            turn = thread.turn(turn_id)
        _, action, activity = turn.step(_STORED_MESSAGE)
        if action is not _SET_TEXT:
            if activity is _CLOSES:  # replaced: the bubble stays, the work ended
                self._stopped(thread, turn, _STORED, line, changes)
            return
        bubble = turn.primary
        if bubble is None:
            # The table closed the turn, so a primary made here starts done.
            self._primary(thread, turn, cat, ts, line, changes, text)
        else:
            # _set_text, and the primary stops streaming (Bubble.settle), written out:
            # a page the client has seen before brings each of its turns' stored
            # messages again.
            if bubble.set_text(text) and changes is not None:
                changes.append(BubbleUpdated(bubble, _TEXT_SET, line))
            if bubble.settle() and changes is not None:
                changes.append(BubbleUpdated(bubble, _CLOSED, line))
        if activity is _CLOSES:
            self._stopped(thread, turn, _STORED, line, changes)
