"""TEMPORARY test-only stand-in for the turn-activity API (CONTRACTS part A).

The engine branch adds ``TurnOpened``, ``TurnClosed``, ``TurnEnd``, ``RunningTurn``,
``Reconciler.running_turns`` and ``Reconciler.interrupt``; until it is merged, the
client's tests install this approximation (a turn "runs" while the engine holds it
not closed). It does nothing when the engine has the real API. Delete this file and
``tests/_shim/`` once ``engine`` is merged.
"""

from __future__ import annotations

import enum

import attrs

import reconcile
from reconcile import Reconciler


#: Only the client's tests turn the wrapping on (an autouse fixture), so the engine's
#: own tests in the same process see the engine as it is.
ACTIVE = False


def install() -> None:
    if hasattr(reconcile, "TurnOpened"):
        return
    from reconcile._turns import TurnInput

    class TurnEnd(enum.StrEnum):
        DONE = "done"
        ERROR = "error"
        SUPERSEDED = "superseded"
        STORED = "stored"
        INTERRUPTED = "interrupted"

    @attrs.define
    class TurnOpened:
        thread: str
        cat: str
        turn: str
        line: int
        timestamp: int

    @attrs.define
    class TurnClosed:
        thread: str
        cat: str
        turn: str
        how: TurnEnd
        line: int

    @attrs.frozen
    class RunningTurn:
        thread: str
        cat: str
        turn: str
        since: int
        line: int

    def running(self: Reconciler) -> dict[tuple[str, str], str]:
        out = {}
        for thread in self._threads.values():
            for turn in thread.turns.values():
                if not turn.closed and (turn.id, thread.id) not in self._shim_dead:
                    cat = turn.primary.cat if turn.primary is not None else None
                    if cat is None:
                        cat = next((a for a, t in thread.open_turn.items() if t is turn), "?")
                    out[(thread.id, turn.id)] = cat
        return out

    def wrap(method):
        def receive(self, *args, **kwargs):
            if not ACTIVE:
                return method(self, *args, **kwargs)
            if not hasattr(self, "_shim_dead"):
                self._shim_dead, self._shim_since = set(), {}
            before = running(self)
            changes = method(self, *args, **kwargs)
            after = running(self)
            extra = []
            history = any(
                type(c).__name__ == "BubbleUpdated" and str(c.how) == "text_set" for c in changes
            )
            for key, cat in before.items():
                if key not in after:
                    how = TurnEnd.STORED if history else TurnEnd.DONE
                    extra.append(TurnClosed(key[0], cat, key[1], how, self.lines))
            for key, cat in after.items():
                if key not in before:
                    ts = self._threads[key[0]].max_ts
                    self._shim_since[key] = (ts, self.lines)
                    extra.append(TurnOpened(key[0], cat, key[1], self.lines, ts))
            return changes + tuple(extra)

        return receive

    def running_turns(self: Reconciler, thread: str) -> tuple:
        if not hasattr(self, "_shim_dead"):
            return ()
        return tuple(
            RunningTurn(h, cat, t, *self._shim_since.get((h, t), (0, 0)))
            for (h, t), cat in running(self).items()
            if h == thread
        )

    def interrupt(self: Reconciler, thread: str) -> tuple:
        changes: list = []
        state = self._threads.get(thread)
        if state is None or not hasattr(self, "_shim_dead"):
            return ()
        for (h, t), cat in running(self).items():
            if h != thread:
                continue
            turn = state.turns[t]
            turn.step(TurnInput.CLOSE)
            self._stop_streaming(turn, self.lines, changes)
            self._shim_dead.add((t, thread))
            changes.append(TurnClosed(thread, cat, t, TurnEnd.INTERRUPTED, self.lines))
        return tuple(changes)

    Reconciler.receive_line = wrap(Reconciler.receive_line)
    Reconciler.receive_message = wrap(Reconciler.receive_message)
    Reconciler.running_turns = running_turns
    Reconciler.interrupt = interrupt
    for cls in (TurnEnd, TurnOpened, TurnClosed, RunningTurn):
        setattr(reconcile, cls.__name__, cls)


install()
