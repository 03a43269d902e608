"""reconcile._turns: the transition table is total and says what the protocol says."""

from __future__ import annotations

import itertools

import pytest

from reconcile._turns import TRANSITIONS, Action, Activity, Turn, TurnInput, TurnState

CLOSED = {TurnState.CLOSED, TurnState.CLOSED_REPLACED}
REPLACED = {TurnState.REPLACED, TurnState.RUNNING_REPLACED, TurnState.REPLACED_FINISHED,
            TurnState.CLOSED_REPLACED}
RUNNING = {TurnState.RUNNING, TurnState.RUNNING_REPLACED}
#: States a turn reaches only after it ran: from them it never runs again.
RAN = CLOSED | {TurnState.REPLACED_FINISHED}


def test_the_table_covers_every_state_and_input():
    assert set(TRANSITIONS) == set(itertools.product(TurnState, TurnInput))


def test_a_closed_turn_never_reopens():
    for (state, _), (after, _, activity) in TRANSITIONS.items():
        if state in CLOSED:
            assert after in CLOSED and activity is Activity.NONE


def test_a_replaced_turn_stays_replaced():
    for (state, _), (after, _, _) in TRANSITIONS.items():
        if state in REPLACED:
            assert after in REPLACED


def test_a_turn_runs_at_most_once():
    for (state, _), (after, _, activity) in TRANSITIONS.items():
        if state in RAN:
            assert after in RAN and activity is Activity.NONE


def test_a_stored_message_ends_a_replaced_turns_run_but_does_not_close_it():
    after, action, activity = TRANSITIONS[TurnState.RUNNING_REPLACED, TurnInput.STORED_MESSAGE]
    assert (after, action, activity) == (
        TurnState.REPLACED_FINISHED, Action.NOTHING, Activity.CLOSES)
    assert after not in CLOSED


def test_activity_says_exactly_when_running_starts_or_stops():
    for (state, _), (after, _, activity) in TRANSITIONS.items():
        expected = {
            (False, True): Activity.OPENS, (True, False): Activity.CLOSES,
        }.get((state in RUNNING, after in RUNNING), Activity.NONE)
        assert activity is expected, (state, after)


@pytest.mark.parametrize("kind", [
    TurnInput.CALLBACK, TurnInput.CALLBACK_NEW_MESSAGE, TurnInput.EXPLICIT_POST,
])
def test_a_callback_never_starts_or_stops_running(kind):
    for state in TurnState:
        after, _, activity = TRANSITIONS[state, kind]
        assert activity is Activity.NONE and (after in RUNNING) == (state in RUNNING)


@pytest.mark.parametrize("kind", [TurnInput.START, TurnInput.STREAM_TEXT, TurnInput.ACTIVITY])
def test_evidence_of_work_starts_an_idle_turn(kind):
    assert TRANSITIONS[TurnState.OPEN, kind][2] is Activity.OPENS
    assert TRANSITIONS[TurnState.REPLACED, kind][2] is Activity.OPENS
    assert TRANSITIONS[TurnState.RUNNING, kind][2] is Activity.NONE


@pytest.mark.parametrize("state,action", [
    (TurnState.OPEN, Action.APPEND),
    (TurnState.RUNNING, Action.APPEND),
    (TurnState.REPLACED, Action.SUPERSEDE),
    (TurnState.RUNNING_REPLACED, Action.SUPERSEDE),
    (TurnState.CLOSED, Action.REFUSE),
    (TurnState.CLOSED_REPLACED, Action.SUPERSEDE),
])
def test_stream_text_by_state(state, action):
    assert TRANSITIONS[state, TurnInput.STREAM_TEXT][1] is action


def test_stored_message_sets_text_and_closes_unless_replaced():
    assert TRANSITIONS[TurnState.OPEN, TurnInput.STORED_MESSAGE][:2] == (
        TurnState.CLOSED, Action.SET_TEXT)
    assert TRANSITIONS[TurnState.RUNNING, TurnInput.STORED_MESSAGE] == (
        TurnState.CLOSED, Action.SET_TEXT, Activity.CLOSES)
    assert TRANSITIONS[TurnState.REPLACED, TurnInput.STORED_MESSAGE][1] is Action.NOTHING


def test_turn_walks_through_its_life():
    turn = Turn("T1")
    assert (turn.closed, turn.replaced, turn.running) == (False, False, False)
    assert turn.step(TurnInput.STREAM_TEXT)[1:] == (Action.APPEND, Activity.OPENS)
    assert turn.running
    assert turn.step(TurnInput.CALLBACK)[1:] == (Action.REPLACE, Activity.NONE)
    assert turn.running and turn.replaced, "a callback mid-turn leaves the turn running"
    assert turn.step(TurnInput.CLOSE)[2] is Activity.CLOSES
    assert turn.closed and turn.replaced and not turn.running
    assert turn.step(TurnInput.STREAM_TEXT)[1] is Action.SUPERSEDE
    assert "closed_replaced" in repr(turn)


@pytest.mark.parametrize("state", [TurnState.OPEN, TurnState.RUNNING, TurnState.CLOSED])
@pytest.mark.parametrize("kind", [TurnInput.CALLBACK, TurnInput.CALLBACK_NEW_MESSAGE])
def test_the_first_callback_replaces_open_or_closed(state, kind):
    after, action, _ = TRANSITIONS[state, kind]
    assert action is Action.REPLACE
    assert after in REPLACED


@pytest.mark.parametrize("state", sorted(REPLACED))
def test_after_replacement_same_message_redelivers_and_another_is_a_post(state):
    assert TRANSITIONS[state, TurnInput.CALLBACK][:2] == (state, Action.REDELIVER)
    assert TRANSITIONS[state, TurnInput.CALLBACK_NEW_MESSAGE][:2] == (state, Action.SECOND_POST)


@pytest.mark.parametrize("state", list(TurnState))
def test_an_explicit_post_is_always_a_post_and_changes_no_state(state):
    assert TRANSITIONS[state, TurnInput.EXPLICIT_POST][:2] == (state, Action.SECOND_POST)


def test_the_rows_turn_step_reads_are_exactly_the_table():
    # Turn.step reads TRANSITIONS through _ROWS (two lookups, no tuple key): the rows
    # must hold every entry of the table and nothing else.
    from reconcile._turns import _ROWS

    assert {(s, i): e for s, row in _ROWS.items() for i, e in row.items()} == TRANSITIONS
    for (state, event), entry in TRANSITIONS.items():
        turn = Turn("t")
        turn.state = state
        assert turn.step(event) is entry and turn.state is entry[0]
