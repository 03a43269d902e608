"""Section 4: callbacks, placed by exact turn identity.

A callback is the agent's final message, posted out of band and possibly long after
its stream ended. It names its turn; the turn's transition table
(:data:`~reconcile._turns.TRANSITIONS`) decides whether it replaces the turn's primary
bubble, redelivers it, or is a second post. This module only works out which input
the callback is (the message id comparison) and carries out the table's answer.
"""

from __future__ import annotations

from typing import Any

from ._bubbles import BubbleAdded, BubbleUpdated, Origin, Status, Update
from ._core import EngineCore, Sink
from ._errors import Reason
from ._thread import ThreadState
from ._turns import Action, Turn, TurnInput

__all__ = ["CallbackPlacement", "is_explicit_post"]

# Enum members as module constants (a member read off its class costs more).
_REPLACE, _REDELIVER = Action.REPLACE, Action.REDELIVER
_EXPLICIT_POST, _CALLBACK_INPUT, _NEW_MESSAGE = (
    TurnInput.EXPLICIT_POST, TurnInput.CALLBACK, TurnInput.CALLBACK_NEW_MESSAGE
)
_CALLBACK, _DONE, _REPLACED = Origin.CALLBACK, Status.DONE, Update.REPLACED
_new = object.__new__


def is_explicit_post(data: dict[str, Any]) -> bool:
    """Section 4.3: ``extra.isExplicitPost`` is exactly ``true``."""
    extra = data.get("extra")
    return isinstance(extra, dict) and extra.get("isExplicitPost") is True


class CallbackPlacement(EngineCore):
    """Section 4: live callbacks, and the placement stored callbacks share."""

    def _callback(
        self,
        thread: ThreadState,
        data: dict[str, Any],
        cat: str,
        ts: int,
        line: int,
        changes: Sink,
        text: str,
        turn_id: str | None,
        parent: str | None,
        message_id: str | None,
    ) -> None:
        """Section 4.1: a live callback's turn is its own id, never a guess.

        ``turn_id``, ``parent`` and ``message_id`` are the event's
        ``turnInvocationId``, ``invocationId`` and ``messageId``, already checked to be
        strings or ``None`` (section 2 step 3).
        """
        # On a callback, invocationId is the turn id itself; an empty id is no id.
        turn_id = turn_id or parent
        if not turn_id:
            self._refuse(
                line,
                Reason.CALLBACK_WITHOUT_INVOCATION,
                f"callback from {cat!r} carries no turn id; it is never guessed",
                changes,
                thread.id,
            )
            return
        turn = thread.turns.get(turn_id)
        if turn is None:
            turn = thread.turn(turn_id)
        # An empty messageId counts as absent (terms: an id is a non-empty string).
        self._place_callback(
            thread, turn, cat, text, message_id or None,
            "extra" in data and is_explicit_post(data), ts, line, changes,
        )

    def _place_callback(
        self,
        thread: ThreadState,
        turn: Turn,
        cat: str,
        text: str,
        message_id: str | None,
        explicit: bool,
        ts: int,
        line: int,
        changes: Sink,
    ) -> None:
        """Section 4.2 (and 4.3): replace the primary, redeliver, or add a second post.

        The caller's part is only to say which callback this is: an explicit post, one
        with the primary's message id (or none), or one with another message id. The
        turn's table answers what that means in the turn's state.
        """
        primary = turn.primary
        if explicit:
            kind = _EXPLICIT_POST
        elif message_id is None or (primary is not None and message_id == primary.message_id):
            kind = _CALLBACK_INPUT
        else:
            kind = _NEW_MESSAGE
        action = turn.step(kind)[1]  # a callback never starts or stops a turn running
        if action is _REPLACE:
            # The callback becomes the turn's primary bubble, in place: same id, same
            # position, so a late callback lands where its turn began.
            bubble = turn.primary
            if bubble is None:
                bubble = self._primary(
                    thread, turn, cat, ts, line, changes, text, _CALLBACK, message_id
                )
            else:
                bubble.become_callback(text, message_id)
                if changes is not None:
                    # BubbleUpdated(bubble, _REPLACED, line), inline (the assertion in
                    # _agent_message ties these builds to the class's fields).
                    update = _new(BubbleUpdated)
                    update.bubble = bubble
                    update.how = _REPLACED
                    update.line = line
                    update.delta = None
                    changes.append(update)
            if message_id is not None:
                self._give_message_id(thread, bubble, message_id, line, changes)
            return
        if action is _REDELIVER:
            assert primary is not None  # only a replaced turn redelivers
            self._set_text(primary, text, line, changes)  # idempotent: a snapshot
            return
        # A second post in the same turn (or an explicit post): its own bubble, keyed
        # (thread, turn, message id); a redelivery of that message sets its text.
        if message_id is not None:
            post = thread.posts.get((turn.id, message_id))
            if post is not None:
                self._set_text(post, text, line, changes)
                return
        post = self._new_bubble(
            thread, cat, turn.id, _CALLBACK, _DONE, ts, text, message_id
        )
        if changes is not None:
            changes.append(BubbleAdded(post, line))
        if message_id is not None:
            thread.posts[turn.id, message_id] = post
            self._give_message_id(thread, post, message_id, line, changes)
