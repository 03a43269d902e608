"""The per-turn state machine.

Theory of operation
-------------------
A *turn* is one agent's run inside one thread, keyed by (thread, turn id). It is the
unit of identity of the whole protocol: every bubble that is not a system line belongs
to exactly one turn, and each turn has at most one *primary* bubble (the one its stream
chunks grow and its callback replaces). Second posts and explicit posts are extra
bubbles of the turn; they never take part in the state machine.

Two facts about a turn decide what every later event does to it:

* is it **closed**?  ``done``, a bound ``error``, a newer announcement for the same
  (thread, agent) and a stored history message close it. A closed turn never reopens.
* is it **replaced**?  Its primary bubble became a callback snapshot. From then on the
  stream is stale by definition: later chunks are *superseded* (dropped and counted),
  not refused, because a callback may legitimately overtake its own stream.

Those two booleans give four states. Rule 1: everything that changes them lives in
``TRANSITIONS`` below; the reconciler asks the table and then carries out the action
on the bubbles. Nothing else assigns ``Turn.state``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._bubbles import Bubble

__all__ = ["TurnState", "TurnInput", "Action", "Turn", "TRANSITIONS"]


# StrEnum, not Enum: the table below is looked up once per event, and a plain Enum
# hashes in Python code (two calls per lookup); a str-based member hashes in C.
class TurnState(enum.StrEnum):
    OPEN = "open"  # accepting stream chunks
    REPLACED = "replaced"  # open, but a callback is the primary: chunks are stale
    CLOSED = "closed"  # finished without a callback: chunks are refused
    CLOSED_REPLACED = "closed_replaced"  # finished and replaced


class TurnInput(enum.StrEnum):
    STREAM_TEXT = "stream_text"  # a stream chunk bound to the turn
    # A callback (section 4.2). The caller compares message ids and says which:
    CALLBACK = "callback"  # no messageId, or the same one as the turn's primary bubble
    CALLBACK_NEW_MESSAGE = "callback_new_message"  # a messageId the primary does not have
    EXPLICIT_POST = "explicit_post"  # extra.isExplicitPost (section 4.3)
    CLOSE = "close"  # done, error, or a newer announcement
    STORED_MESSAGE = "stored_message"  # a history message with the turn's final text


class Action(enum.StrEnum):
    APPEND = "append"  # add the chunk to the primary bubble
    SUPERSEDE = "supersede"  # drop the chunk, count it
    REFUSE = "refuse"  # refuse the chunk as stream_after_done
    REPLACE = "replace"  # the callback becomes the primary bubble (made or replaced)
    REDELIVER = "redeliver"  # the callback sets the primary's text again
    SECOND_POST = "second_post"  # the callback is a bubble of its own, keyed by messageId
    SET_TEXT = "set_text"  # the stored text becomes the primary's text
    NOTHING = "nothing"  # the input changes no bubble


_S, _I, _A = TurnState, TurnInput, Action

#: (state, input) -> (next state, action). The whole life of a turn.
TRANSITIONS: dict[tuple[TurnState, TurnInput], tuple[TurnState, Action]] = {
    # Stream text grows an open turn, is stale once a callback replaced the turn
    # (a callback may legitimately overtake its own stream), and is refused after done.
    (_S.OPEN, _I.STREAM_TEXT): (_S.OPEN, _A.APPEND),
    (_S.REPLACED, _I.STREAM_TEXT): (_S.REPLACED, _A.SUPERSEDE),
    (_S.CLOSED, _I.STREAM_TEXT): (_S.CLOSED, _A.REFUSE),
    (_S.CLOSED_REPLACED, _I.STREAM_TEXT): (_S.CLOSED_REPLACED, _A.SUPERSEDE),
    # Section 4.2. Open or closed does not matter to a callback: a late one still
    # lands. The first callback replaces; after that, the same message (or none) is a
    # redelivery, and another message is a second post.
    (_S.OPEN, _I.CALLBACK): (_S.REPLACED, _A.REPLACE),
    (_S.CLOSED, _I.CALLBACK): (_S.CLOSED_REPLACED, _A.REPLACE),
    (_S.REPLACED, _I.CALLBACK): (_S.REPLACED, _A.REDELIVER),
    (_S.CLOSED_REPLACED, _I.CALLBACK): (_S.CLOSED_REPLACED, _A.REDELIVER),
    (_S.OPEN, _I.CALLBACK_NEW_MESSAGE): (_S.REPLACED, _A.REPLACE),
    (_S.CLOSED, _I.CALLBACK_NEW_MESSAGE): (_S.CLOSED_REPLACED, _A.REPLACE),
    (_S.REPLACED, _I.CALLBACK_NEW_MESSAGE): (_S.REPLACED, _A.SECOND_POST),
    (_S.CLOSED_REPLACED, _I.CALLBACK_NEW_MESSAGE): (_S.CLOSED_REPLACED, _A.SECOND_POST),
    # Section 4.3: an explicit post never becomes the primary and supersedes nothing.
    (_S.OPEN, _I.EXPLICIT_POST): (_S.OPEN, _A.SECOND_POST),
    (_S.REPLACED, _I.EXPLICIT_POST): (_S.REPLACED, _A.SECOND_POST),
    (_S.CLOSED, _I.EXPLICIT_POST): (_S.CLOSED, _A.SECOND_POST),
    (_S.CLOSED_REPLACED, _I.EXPLICIT_POST): (_S.CLOSED_REPLACED, _A.SECOND_POST),
    # Closing is idempotent; the engine sets a streaming primary to done.
    (_S.OPEN, _I.CLOSE): (_S.CLOSED, _A.NOTHING),
    (_S.REPLACED, _I.CLOSE): (_S.CLOSED_REPLACED, _A.NOTHING),
    (_S.CLOSED, _I.CLOSE): (_S.CLOSED, _A.NOTHING),
    (_S.CLOSED_REPLACED, _I.CLOSE): (_S.CLOSED_REPLACED, _A.NOTHING),
    # Section 7: a stored message is the turn's final stream text and closes it,
    # unless a callback won (then nothing: not even closing, the text says nothing new).
    (_S.OPEN, _I.STORED_MESSAGE): (_S.CLOSED, _A.SET_TEXT),
    (_S.CLOSED, _I.STORED_MESSAGE): (_S.CLOSED, _A.SET_TEXT),
    (_S.REPLACED, _I.STORED_MESSAGE): (_S.REPLACED, _A.NOTHING),
    (_S.CLOSED_REPLACED, _I.STORED_MESSAGE): (_S.CLOSED_REPLACED, _A.NOTHING),
}

_CLOSED_STATES = frozenset({TurnState.CLOSED, TurnState.CLOSED_REPLACED})
_REPLACED_STATES = frozenset({TurnState.REPLACED, TurnState.CLOSED_REPLACED})


class Turn:
    """One turn: its id, its state and its primary bubble (or ``None``)."""

    __slots__ = ("id", "state", "primary")

    def __init__(self, turn_id: str) -> None:
        self.id = turn_id
        self.state = TurnState.OPEN
        self.primary: Bubble | None = None

    def step(self, event: TurnInput) -> Action:
        """Apply one input; return what to do with the bubbles. Complexity: O(1)."""
        self.state, action = TRANSITIONS[self.state, event]
        return action

    @property
    def closed(self) -> bool:
        return self.state in _CLOSED_STATES

    @property
    def replaced(self) -> bool:
        return self.state in _REPLACED_STATES

    def __repr__(self) -> str:
        return f"<Turn {self.id!r} {self.state.value}>"
