"""Everything the engine knows about one thread: its turns, indexes and bubble order.

All indexes are hash maps, so every event costs O(1) dictionary work plus at most one
O(log n) insertion into the ordered bubble list:

* ``turns``: turn id -> :class:`~reconcile._turns.Turn` (state + primary bubble);
* ``open_turn``: agent -> the turn announced last for it (a closed one counts as none);
* ``latest``: parent id -> agent -> the turn announced last under that parent;
* ``by_message_id``: message id -> the first bubble that carries it;
* ``posts``: (turn id, message id) -> second posts and explicit posts;
* ``stored``: history message id -> a turn-less stored bubble;
* ``held_blocks``: message id -> rich block ids waiting for their bubble;
* ``running``: turn id -> (agent, since, line) of each running turn, in opening order;
* ``order``: a ``SortedList`` of (timestamp, creation number, bubble). The key is set
  when the bubble is made and never changes (a replacement keeps its place), which is
  what lets a late callback land where its turn began (section 5, order).
"""

from __future__ import annotations

from typing import Any

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from ._bubbles import Bubble
from ._turns import Turn

__all__ = ["ThreadState"]

_NO_EPOCH = object()


class ThreadState:
    """One thread's turns, indexes and ordered bubbles (see the module docstring)."""

    __slots__ = (
        "id",
        "order",
        "max_ts",
        "seen_ts",
        "seq_epoch",
        "seq_last",
        "turns",
        "open_turn",
        "latest",
        "by_message_id",
        "posts",
        "stored",
        "held_blocks",
        "running",
        "checked",
    )

    def __init__(self, thread_id: str) -> None:
        self.id = thread_id
        self.order: SortedList = SortedList()
        # Largest timestamp seen; events without one take it (0 before any is seen;
        # timestamps may be negative, so "seen" is tracked apart from the value).
        self.max_ts = 0
        self.seen_ts = False
        # Section 6: the epoch key of the last ``seq`` seen and that ``seq``. Before
        # the first one, the epoch is a marker no key equals (``None`` is a key).
        self.seq_epoch: Any = _NO_EPOCH
        self.seq_last = 0
        self.turns: dict[str, Turn] = {}
        self.open_turn: dict[str, Turn] = {}
        # By parent id first, then agent: a lookup is two with one string key each,
        # cheaper than one with a (agent, parent) tuple key, and a parent never seen
        # (a client that joined mid-turn) is answered by the first.
        self.latest: dict[str, dict[str, Turn]] = {}
        self.by_message_id: dict[str, Bubble] = {}
        self.posts: dict[tuple[str, str], Bubble] = {}
        self.stored: dict[str, Bubble] = {}
        # Ordered sets (dicts): a server repeating a block adds nothing here either.
        self.held_blocks: dict[str, dict[str, None]] = {}
        # Running turns in opening order (a dict keeps insertion order): turn id ->
        # (agent, since, line). Plain tuples: a RunningTurn is made only when read.
        self.running: dict[str, tuple[str, int, int]] = {}
        # Events of this thread that ``check_lines`` counted from the engine's fast
        # path (see ``_agent_message``'s return value); the engine never reads it.
        self.checked = 0

    def turn(self, turn_id: str) -> Turn:
        """The turn with this id, made (open, no bubble) on first mention: a callback
        or a ``turnInvocationId`` may name a turn that was never announced."""
        turn = self.turns.get(turn_id)
        if turn is None:
            turn = self.turns[turn_id] = Turn(turn_id)
        return turn

    def see_timestamp(self, ts: int) -> None:
        """Section 2 step 5: remember the thread's largest timestamp."""
        if ts > self.max_ts or not self.seen_ts:
            self.max_ts = ts
            self.seen_ts = True
