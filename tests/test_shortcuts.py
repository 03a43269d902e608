"""The fast path's shortcuts past the transition table, state by state.

The fast path (``_agent_message``) applies the most frequent events without asking
the table: a chunk appended to a running turn, a chunk superseded on a replaced turn,
an unbound chunk refused. Each shortcut must do exactly what the general path
(``_agent_message_slowly``, which asks the table for every event) does. The generated
traces of tests/test_hot_path.py reach the usual states; here every turn state is set
by hand, so each shortcut is compared with the table in every state, with every way a
chunk can name its turn.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconcile import Reconciler
from reconcile._agent_message import _STALE_STREAM_STATES
from reconcile._turns import TRANSITIONS, Action, Activity, TurnInput, TurnState

from .test_hot_path import describe, final_state

ANNOUNCE = {"event": "agent_message", "data": {
    "type": "system_info", "threadId": "t", "catId": "opus", "invocationId": "P",
    "content": json.dumps({"type": "invocation_created", "invocationId": "T"}),
}}


class TablePath(Reconciler):
    """The engine with every agent_message on the general path (the table's)."""

    _agent_message = Reconciler._agent_message_slowly  # type: ignore[assignment]


def chunk(text: str, **ids: Any) -> dict[str, Any]:
    return {"event": "agent_message", "data": {
        "type": "text", "threadId": "t", "catId": "opus", "content": text, "origin": "stream",
        "timestamp": 1767225600000, **ids,
    }}


def engine_in(cls: type[Reconciler], state: TurnState, with_bubble: bool) -> Reconciler:
    """An engine whose turn T (announced under parent P) is in ``state``."""
    engine = cls()
    engine.receive_message(ANNOUNCE)
    if with_bubble:
        engine.receive_message(chunk("first ", turnInvocationId="T"))
    engine._threads["t"].turns["T"].state = state
    return engine


IDS = {
    "turn id": {"turnInvocationId": "T"},
    "turn id and parent": {"turnInvocationId": "T", "invocationId": "P"},
    "parent": {"invocationId": "P"},
    "no id": {},
    "unknown parent": {"invocationId": "Q"},
    "unknown turn id": {"turnInvocationId": "U"},
    "empty turn id, parent": {"turnInvocationId": "", "invocationId": "P"},
}


@pytest.mark.parametrize("state", list(TurnState))
@pytest.mark.parametrize("with_bubble", [True, False])
@pytest.mark.parametrize("ids", sorted(IDS))
@pytest.mark.parametrize("text", ["more", ""])
def test_a_chunk_does_what_the_table_says_in_every_state(
    state: TurnState, with_bubble: bool, ids: str, text: str
) -> None:
    fast, table = engine_in(Reconciler, state, with_bubble), engine_in(TablePath, state, with_bubble)
    event = chunk(text, **IDS[ids])
    assert [describe(c) for c in fast.receive_message(event)] == [
        describe(c) for c in table.receive_message(event)
    ]
    assert final_state(fast) == final_state(table)
    assert fast.stats == table.stats
    assert {h: {t: (turn.state, turn.primary is not None) for t, turn in s.turns.items()}
            for h, s in fast._threads.items()} == {
        h: {t: (turn.state, turn.primary is not None) for t, turn in s.turns.items()}
        for h, s in table._threads.items()}


def test_the_superseding_shortcut_covers_exactly_the_rows_that_only_supersede() -> None:
    rows = {s for s in TurnState
            if TRANSITIONS[s, TurnInput.STREAM_TEXT] == (s, Action.SUPERSEDE, Activity.NONE)}
    assert _STALE_STREAM_STATES == rows
    assert TurnState.RUNNING_REPLACED in rows  # a callback mid-turn: the usual case
