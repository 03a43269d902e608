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

A third fact is apart from bubbles: is the turn **running**, its agent working on it?
It starts at the first evidence of work (announcement, draft, bound chunk, tool,
thinking or block) and stops when the turn closes. A callback neither starts nor
stops it: a callback mid-turn is a finished message while the agent keeps working.

Those facts give six states (a closed turn does not run). Rule 1: everything that changes them lives in
``TRANSITIONS`` below; the reconciler asks the table and then carries out the action
on the bubbles. Nothing else assigns ``Turn.state``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._bubbles import Bubble

__all__ = ["TurnState", "TurnInput", "Action", "Activity", "TurnEnd", "Turn", "TRANSITIONS"]


# StrEnum, not Enum: the table below is looked up once per event, and a plain Enum
# hashes in Python code (two calls per lookup); a str-based member hashes in C.
class TurnState(enum.StrEnum):
    OPEN = "open"  # known, accepting stream chunks, but no sign yet that it runs
    RUNNING = "running"  # its agent is working on it: accepting stream chunks
    REPLACED = "replaced"  # a callback is the primary (chunks are stale); not running
    RUNNING_REPLACED = "running_replaced"  # replaced, and its agent keeps working
    # Replaced, and its agent finished it (its stored message arrived) without a
    # ``done`` this client could bind: still open for the protocol (section 7 closes
    # only a turn a callback did not replace), but it never runs (again).
    REPLACED_FINISHED = "replaced_finished"
    CLOSED = "closed"  # finished without a callback: chunks are refused
    CLOSED_REPLACED = "closed_replaced"  # finished and replaced


class TurnInput(enum.StrEnum):
    START = "start"  # an announcement, or a stored draft of the turn
    STREAM_TEXT = "stream_text"  # a stream chunk bound to the turn
    ACTIVITY = "activity"  # a bound tool event, thinking or rich block
    # A callback (section 4.2). The caller compares message ids and says which:
    CALLBACK = "callback"  # no messageId, or the same one as the turn's primary bubble
    CALLBACK_NEW_MESSAGE = "callback_new_message"  # a messageId the primary does not have
    EXPLICIT_POST = "explicit_post"  # extra.isExplicitPost (section 4.3)
    CLOSE = "close"  # done, error, a newer announcement, or an interruption
    STORED_MESSAGE = "stored_message"  # a history message with the turn's final text


class Action(enum.StrEnum):
    APPEND = "append"  # add the chunk to the primary bubble
    SUPERSEDE = "supersede"  # drop the chunk, count it
    REFUSE = "refuse"  # refuse the chunk as stream_after_done
    ATTACH = "attach"  # add the tool, thinking or block to the primary bubble
    REPLACE = "replace"  # the callback becomes the primary bubble (made or replaced)
    REDELIVER = "redeliver"  # the callback sets the primary's text again
    SECOND_POST = "second_post"  # the callback is a bubble of its own, keyed by messageId
    SET_TEXT = "set_text"  # the stored text becomes the primary's text
    NOTHING = "nothing"  # the input changes no bubble


class Activity(enum.StrEnum):
    """Whether a step started or stopped the turn *running* (its agent working on it).

    Apart from bubble status on purpose: a callback is a finished message (its bubble
    is ``done``) while its agent may keep working until ``done``.
    """

    NONE = "none"
    OPENS = "opens"  # the turn starts running: report a TurnOpened
    CLOSES = "closes"  # a running turn stops: report a TurnClosed


class TurnEnd(enum.StrEnum):
    """How a turn stopped running (the ``how`` of a TurnClosed)."""

    DONE = "done"  # a bound ``done``
    ERROR = "error"  # a bound ``error``
    SUPERSEDED = "superseded"  # a newer turn of the same (thread, agent) was announced
    STORED = "stored"  # a stored history message carried the turn's final text
    INTERRUPTED = "interrupted"  # the caller said the server lost it (Reconciler.interrupt)


_S, _I, _A = TurnState, TurnInput, Action
_NO, _OPENS, _CLOSES = Activity.NONE, Activity.OPENS, Activity.CLOSES

#: (state, input) -> (next state, action, activity). The whole life of a turn.
TRANSITIONS: dict[tuple[TurnState, TurnInput], tuple[TurnState, Action, Activity]] = {
    # A turn runs from the first evidence that its agent works on it (an announcement,
    # a draft, a bound chunk, tool, thinking or block) until it closes. A closed turn
    # never reopens, and never runs again.
    (_S.OPEN, _I.START): (_S.RUNNING, _A.NOTHING, _OPENS),
    (_S.RUNNING, _I.START): (_S.RUNNING, _A.NOTHING, _NO),
    (_S.REPLACED, _I.START): (_S.RUNNING_REPLACED, _A.NOTHING, _OPENS),
    (_S.RUNNING_REPLACED, _I.START): (_S.RUNNING_REPLACED, _A.NOTHING, _NO),
    (_S.CLOSED, _I.START): (_S.CLOSED, _A.NOTHING, _NO),
    (_S.CLOSED_REPLACED, _I.START): (_S.CLOSED_REPLACED, _A.NOTHING, _NO),
    # Stream text grows an open turn, is stale once a callback replaced the turn
    # (a callback may legitimately overtake its own stream), and is refused after done.
    (_S.OPEN, _I.STREAM_TEXT): (_S.RUNNING, _A.APPEND, _OPENS),
    (_S.RUNNING, _I.STREAM_TEXT): (_S.RUNNING, _A.APPEND, _NO),
    (_S.REPLACED, _I.STREAM_TEXT): (_S.RUNNING_REPLACED, _A.SUPERSEDE, _OPENS),
    (_S.RUNNING_REPLACED, _I.STREAM_TEXT): (_S.RUNNING_REPLACED, _A.SUPERSEDE, _NO),
    (_S.CLOSED, _I.STREAM_TEXT): (_S.CLOSED, _A.REFUSE, _NO),
    (_S.CLOSED_REPLACED, _I.STREAM_TEXT): (_S.CLOSED_REPLACED, _A.SUPERSEDE, _NO),
    # Tools, thinking and blocks attach in every state, even after done.
    (_S.OPEN, _I.ACTIVITY): (_S.RUNNING, _A.ATTACH, _OPENS),
    (_S.RUNNING, _I.ACTIVITY): (_S.RUNNING, _A.ATTACH, _NO),
    (_S.REPLACED, _I.ACTIVITY): (_S.RUNNING_REPLACED, _A.ATTACH, _OPENS),
    (_S.RUNNING_REPLACED, _I.ACTIVITY): (_S.RUNNING_REPLACED, _A.ATTACH, _NO),
    (_S.CLOSED, _I.ACTIVITY): (_S.CLOSED, _A.ATTACH, _NO),
    (_S.CLOSED_REPLACED, _I.ACTIVITY): (_S.CLOSED_REPLACED, _A.ATTACH, _NO),
    # Section 4.2. Open or closed does not matter to a callback: a late one still
    # lands. The first callback replaces; after that, the same message (or none) is a
    # redelivery, and another message is a second post. A callback is a finished
    # message, not a sign of work: it neither starts nor stops the turn running.
    (_S.OPEN, _I.CALLBACK): (_S.REPLACED, _A.REPLACE, _NO),
    (_S.RUNNING, _I.CALLBACK): (_S.RUNNING_REPLACED, _A.REPLACE, _NO),
    (_S.CLOSED, _I.CALLBACK): (_S.CLOSED_REPLACED, _A.REPLACE, _NO),
    (_S.REPLACED, _I.CALLBACK): (_S.REPLACED, _A.REDELIVER, _NO),
    (_S.RUNNING_REPLACED, _I.CALLBACK): (_S.RUNNING_REPLACED, _A.REDELIVER, _NO),
    (_S.CLOSED_REPLACED, _I.CALLBACK): (_S.CLOSED_REPLACED, _A.REDELIVER, _NO),
    (_S.OPEN, _I.CALLBACK_NEW_MESSAGE): (_S.REPLACED, _A.REPLACE, _NO),
    (_S.RUNNING, _I.CALLBACK_NEW_MESSAGE): (_S.RUNNING_REPLACED, _A.REPLACE, _NO),
    (_S.CLOSED, _I.CALLBACK_NEW_MESSAGE): (_S.CLOSED_REPLACED, _A.REPLACE, _NO),
    (_S.REPLACED, _I.CALLBACK_NEW_MESSAGE): (_S.REPLACED, _A.SECOND_POST, _NO),
    (_S.RUNNING_REPLACED, _I.CALLBACK_NEW_MESSAGE): (_S.RUNNING_REPLACED, _A.SECOND_POST, _NO),
    (_S.CLOSED_REPLACED, _I.CALLBACK_NEW_MESSAGE): (_S.CLOSED_REPLACED, _A.SECOND_POST, _NO),
    # Section 4.3: an explicit post never becomes the primary and supersedes nothing.
    (_S.OPEN, _I.EXPLICIT_POST): (_S.OPEN, _A.SECOND_POST, _NO),
    (_S.RUNNING, _I.EXPLICIT_POST): (_S.RUNNING, _A.SECOND_POST, _NO),
    (_S.REPLACED, _I.EXPLICIT_POST): (_S.REPLACED, _A.SECOND_POST, _NO),
    (_S.RUNNING_REPLACED, _I.EXPLICIT_POST): (_S.RUNNING_REPLACED, _A.SECOND_POST, _NO),
    (_S.CLOSED, _I.EXPLICIT_POST): (_S.CLOSED, _A.SECOND_POST, _NO),
    (_S.CLOSED_REPLACED, _I.EXPLICIT_POST): (_S.CLOSED_REPLACED, _A.SECOND_POST, _NO),
    # Closing is idempotent; the engine sets a streaming primary to done. A turn that
    # never ran closes silently.
    (_S.OPEN, _I.CLOSE): (_S.CLOSED, _A.NOTHING, _NO),
    (_S.RUNNING, _I.CLOSE): (_S.CLOSED, _A.NOTHING, _CLOSES),
    (_S.REPLACED, _I.CLOSE): (_S.CLOSED_REPLACED, _A.NOTHING, _NO),
    (_S.RUNNING_REPLACED, _I.CLOSE): (_S.CLOSED_REPLACED, _A.NOTHING, _CLOSES),
    (_S.CLOSED, _I.CLOSE): (_S.CLOSED, _A.NOTHING, _NO),
    (_S.CLOSED_REPLACED, _I.CLOSE): (_S.CLOSED_REPLACED, _A.NOTHING, _NO),
    # Section 7: a stored message is the turn's final stream text and closes it,
    # unless a callback won (then the bubble keeps the callback and the turn stays open
    # for the protocol). Either way the server has stored the turn's message, so the
    # agent is done with it: a running turn stops running (a client that joined
    # mid-turn never binds the turn's ``done``, which carries only the parent id).
    (_S.OPEN, _I.STORED_MESSAGE): (_S.CLOSED, _A.SET_TEXT, _NO),
    (_S.RUNNING, _I.STORED_MESSAGE): (_S.CLOSED, _A.SET_TEXT, _CLOSES),
    (_S.CLOSED, _I.STORED_MESSAGE): (_S.CLOSED, _A.SET_TEXT, _NO),
    (_S.REPLACED, _I.STORED_MESSAGE): (_S.REPLACED_FINISHED, _A.NOTHING, _NO),
    (_S.RUNNING_REPLACED, _I.STORED_MESSAGE): (_S.REPLACED_FINISHED, _A.NOTHING, _CLOSES),
    (_S.CLOSED_REPLACED, _I.STORED_MESSAGE): (_S.CLOSED_REPLACED, _A.NOTHING, _NO),
    # A finished replaced turn acts as a replaced one, except that nothing makes it run
    # again: every turn runs at most once.
    (_S.REPLACED_FINISHED, _I.START): (_S.REPLACED_FINISHED, _A.NOTHING, _NO),
    (_S.REPLACED_FINISHED, _I.STREAM_TEXT): (_S.REPLACED_FINISHED, _A.SUPERSEDE, _NO),
    (_S.REPLACED_FINISHED, _I.ACTIVITY): (_S.REPLACED_FINISHED, _A.ATTACH, _NO),
    (_S.REPLACED_FINISHED, _I.CALLBACK): (_S.REPLACED_FINISHED, _A.REDELIVER, _NO),
    (_S.REPLACED_FINISHED, _I.CALLBACK_NEW_MESSAGE): (
        _S.REPLACED_FINISHED, _A.SECOND_POST, _NO),
    (_S.REPLACED_FINISHED, _I.EXPLICIT_POST): (_S.REPLACED_FINISHED, _A.SECOND_POST, _NO),
    (_S.REPLACED_FINISHED, _I.CLOSE): (_S.CLOSED_REPLACED, _A.NOTHING, _NO),
    (_S.REPLACED_FINISHED, _I.STORED_MESSAGE): (_S.REPLACED_FINISHED, _A.NOTHING, _NO),
}

# The same table by rows, for Turn.step: state -> input -> entry. Derived here, never
# written by hand, so TRANSITIONS stays the one source. Two lookups with one member
# each cost about half of one lookup with a (state, input) key, which makes a tuple
# and compares the stored key member by member (about 350 instructions less a step).
_ROWS: dict[TurnState, dict[TurnInput, tuple[TurnState, Action, Activity]]] = {
    state: {event: TRANSITIONS[state, event] for event in TurnInput} for state in TurnState
}

_CLOSED_STATES = frozenset({TurnState.CLOSED, TurnState.CLOSED_REPLACED})
_REPLACED_STATES = frozenset(
    {
        TurnState.REPLACED,
        TurnState.RUNNING_REPLACED,
        TurnState.REPLACED_FINISHED,
        TurnState.CLOSED_REPLACED,
    }
)
_RUNNING_STATES = frozenset({TurnState.RUNNING, TurnState.RUNNING_REPLACED})
_OPEN = TurnState.OPEN  # a module global: a member read off its enum class costs more


class Turn:
    """One turn: its id, its state and its primary bubble (or ``None``)."""

    __slots__ = ("id", "state", "primary")

    def __init__(self, turn_id: str) -> None:
        self.id = turn_id
        self.state = _OPEN
        self.primary: Bubble | None = None

    def step(self, event: TurnInput) -> tuple[TurnState, Action, Activity]:
        """Apply one input; return the table's entry: (new state, what to do with the
        bubbles, whether the turn started or stopped running). Complexity: O(1)."""
        entry = _ROWS[self.state][event]  # TRANSITIONS[self.state, event]
        self.state = entry[0]
        return entry

    @property
    def closed(self) -> bool:
        return self.state in _CLOSED_STATES

    @property
    def replaced(self) -> bool:
        return self.state in _REPLACED_STATES

    @property
    def running(self) -> bool:
        return self.state in _RUNNING_STATES

    def __repr__(self) -> str:
        return f"<Turn {self.id!r} {self.state.value}>"
