"""reconcile._turns: the transition table is total and says what the protocol says."""

from __future__ import annotations

import itertools

import pytest

from reconcile._turns import TRANSITIONS, Action, Turn, TurnInput, TurnState


def test_the_table_covers_every_state_and_input():
    assert set(TRANSITIONS) == set(itertools.product(TurnState, TurnInput))


def test_a_closed_turn_never_reopens():
    closed = {TurnState.CLOSED, TurnState.CLOSED_REPLACED}
    for (state, _), (after, _) in TRANSITIONS.items():
        if state in closed:
            assert after in closed


def test_a_replaced_turn_stays_replaced():
    replaced = {TurnState.REPLACED, TurnState.CLOSED_REPLACED}
    for (state, _), (after, _) in TRANSITIONS.items():
        if state in replaced:
            assert after in replaced


@pytest.mark.parametrize("state,action", [
    (TurnState.OPEN, Action.APPEND),
    (TurnState.REPLACED, Action.SUPERSEDE),
    (TurnState.CLOSED, Action.REFUSE),
    (TurnState.CLOSED_REPLACED, Action.SUPERSEDE),
])
def test_stream_text_by_state(state, action):
    assert TRANSITIONS[state, TurnInput.STREAM_TEXT] == (state, action)


def test_stored_message_sets_text_and_closes_unless_replaced():
    assert TRANSITIONS[TurnState.OPEN, TurnInput.STORED_MESSAGE] == (TurnState.CLOSED, Action.SET_TEXT)
    assert TRANSITIONS[TurnState.REPLACED, TurnInput.STORED_MESSAGE][1] is Action.NOTHING


def test_turn_walks_through_its_life():
    turn = Turn("T1")
    assert (turn.closed, turn.replaced) == (False, False)
    assert turn.step(TurnInput.STREAM_TEXT) is Action.APPEND
    turn.step(TurnInput.CLOSE)
    assert turn.closed and not turn.replaced
    assert turn.step(TurnInput.STREAM_TEXT) is Action.REFUSE
    turn.step(TurnInput.CALLBACK)
    assert turn.closed and turn.replaced
    assert turn.step(TurnInput.STREAM_TEXT) is Action.SUPERSEDE
    assert "closed_replaced" in repr(turn)


@pytest.mark.parametrize("state", [TurnState.OPEN, TurnState.CLOSED])
@pytest.mark.parametrize("kind", [TurnInput.CALLBACK, TurnInput.CALLBACK_NEW_MESSAGE])
def test_the_first_callback_replaces_open_or_closed(state, kind):
    after, action = TRANSITIONS[state, kind]
    assert action is Action.REPLACE
    assert after in (TurnState.REPLACED, TurnState.CLOSED_REPLACED)


@pytest.mark.parametrize("state", [TurnState.REPLACED, TurnState.CLOSED_REPLACED])
def test_after_replacement_same_message_redelivers_and_another_is_a_post(state):
    assert TRANSITIONS[state, TurnInput.CALLBACK] == (state, Action.REDELIVER)
    assert TRANSITIONS[state, TurnInput.CALLBACK_NEW_MESSAGE] == (state, Action.SECOND_POST)


@pytest.mark.parametrize("state", list(TurnState))
def test_an_explicit_post_is_always_a_post_and_changes_no_state(state):
    assert TRANSITIONS[state, TurnInput.EXPLICIT_POST] == (state, Action.SECOND_POST)
