"""Everything the engine knows about one thread: its turns, indexes and bubble order.

All indexes are hash maps, so every event costs O(1) dictionary work plus at most one
O(log n) insertion into the ordered bubble list:

* ``turns``: turn id -> :class:`~reconcile._turns.Turn` (state + primary bubble);
* ``open_turn``: agent -> the turn announced last for it (a closed one counts as none);
* ``latest``: agent -> parent id -> the turn announced last under that parent;
* ``by_message_id``: message id -> the first bubble that carries it;
* ``posts``: (turn id, message id) -> second posts and explicit posts;
* ``stored``: history message id -> a turn-less stored bubble;
* ``held_blocks``: message id -> rich block ids waiting for their bubble;
* ``running``: turn id -> (agent, since, line) of each running turn, in opening order;
* ``order``: the thread's bubbles in display order, by (timestamp of the creating
  event, creation number). The key is set when the bubble is made and never changes
  (a replacement keeps its place), which is what lets a late callback land where its
  turn began (section 5, order). See :meth:`ThreadState.insert` for its container.
"""

from __future__ import annotations

from bisect import insort
from operator import attrgetter
from typing import Any

from sortedcontainers import SortedKeyList, SortedList  # type: ignore[import-untyped]

from ._bubbles import Bubble, Refusal
from ._turns import Turn, TurnState

__all__ = ["ThreadState", "NO_THREAD"]

_NO_EPOCH = object()
#: ThreadState.max_ts before any timestamp: below every integer, so the first
#: timestamp seen, however negative, replaces it in one comparison.
UNSEEN = float("-inf")
_OPEN = TurnState.OPEN
_new = object.__new__

# ThreadState.turn builds a Turn without calling the class: a Python __init__ costs,
# called from the interpreter, about 530 instructions more than the three slot stores
# written out. Only right while these are Turn's fields, in full.
assert Turn.__slots__ == ("id", "state", "primary"), "the inline Turn no longer sets every field"

#: A bubble's display key: (timestamp of its creating event, creation number).
_display_key = attrgetter("_ts", "_number")

#: A thread's order is a plain list while it holds fewer bubbles than this; see
#: ThreadState.insert. It is the load of a SortedList's sublists, which it inserts
#: into the same way.
_LIST_LIMIT: int = SortedList.DEFAULT_LOAD_FACTOR


class ThreadState:
    """One thread's turns, indexes and ordered bubbles (see the module docstring)."""

    __slots__ = (
        "id",
        "order",
        "max_ts",
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
        "unbound_cat",
        "unbound_why",
        "unbound_text",
        "refused_callbacks",
        "checked",
    )

    def __init__(self, thread_id: str) -> None:
        self.id = thread_id
        # The bubbles in display order: a plain list, appended to (see insert).
        self.order: list[Bubble] | SortedKeyList = []
        # Largest timestamp seen: minus infinity before any (timestamps may be
        # negative), so one comparison keeps it. Events without a timestamp take
        # last_timestamp(), 0 before any is seen.
        self.max_ts: int | float = UNSEEN
        # Section 6: the epoch key of the last ``seq`` seen and that ``seq``. Before
        # the first one, the epoch is a marker no key equals (``None`` is a key).
        self.seq_epoch: Any = _NO_EPOCH
        self.seq_last = 0
        self.turns: dict[str, Turn] = {}
        self.open_turn: dict[str, Turn] = {}
        # By agent, then parent id: a lookup is two with one string key each, cheaper
        # than one with an (agent, parent) tuple key, and a turn costs one entry in
        # its agent's dict (agents are few; a dict per parent would cost about 200
        # bytes per turn, a tuple key about 60).
        self.latest: dict[str, dict[str, Turn]] = {}
        self.by_message_id: dict[str, Bubble] = {}
        self.posts: dict[tuple[str, str], Bubble] = {}
        self.stored: dict[str, Bubble] = {}
        # Ordered sets (dicts): a server repeating a block adds nothing here either.
        self.held_blocks: dict[str, dict[str, None]] = {}
        # Running turns in opening order (a dict keeps insertion order): turn id ->
        # (agent, since, line). Plain tuples: a RunningTurn is made only when read.
        self.running: dict[str, tuple[str, int, int]] = {}
        # What the refusal log keeps of a refusal that repeats (see
        # EngineCore._refusal_lines), made once. An unbound stream chunk's Refusal:
        # the last agent's beside its name (the fast path compares the name, cheaper
        # than a lookup), the other agents' in unbound_text, by agent (a thread whose
        # chunks come from one agent never fills it). And agent -> stored message id
        # -> the Refusal of that stored callback without its turn id (section 7; a
        # client that joined mid-turn meets it on every page).
        self.unbound_cat: str | None = None
        self.unbound_why: Refusal | None = None
        self.unbound_text: dict[str, Refusal] = {}
        self.refused_callbacks: dict[str, dict[str, Refusal]] = {}
        # Events of this thread that ``check_lines`` counted from the engine's fast
        # path (see what _message_path's batch path returns); the engine never reads it.
        self.checked = 0

    def turn(self, turn_id: str) -> Turn:
        """The turn with this id, made (open, no bubble) on first mention: a callback
        or a ``turnInvocationId`` may name a turn that was never announced."""
        turn = self.turns.get(turn_id)
        if turn is None:
            turn = self.turns[turn_id] = _new(Turn)  # Turn(turn_id), inline
            turn.id = turn_id
            turn.state = _OPEN
            turn.primary = None
        return turn

    def insert(self, bubble: Bubble) -> None:
        """Put a new bubble in the order when it does not simply go last.

        The engine appends a new bubble itself while the order is a short plain list
        and the bubble sorts last: its creation number is the largest yet, so it does
        unless its timestamp is earlier than the last bubble's (a history page, a late
        event). That is nearly every bubble, so a thread costs one list and each bubble
        one append, instead of a ``SortedList`` (about 4,400 instructions to make) and
        its ``add``.

        Otherwise it lands here. Below :data:`_LIST_LIMIT` bubbles it is a binary search
        and an insertion that moves at most that many references, as a ``SortedList``
        does inside one of its sublists. At the limit the list becomes a
        ``SortedKeyList`` for good: an insertion stays O(log n) however long the thread,
        and the change itself costs O(limit), never a pause as long as the thread.
        Readers only iterate, index, slice and take ``len``, which both offer.
        """
        order = self.order
        if isinstance(order, list):
            if len(order) < _LIST_LIMIT:
                insort(order, bubble, key=_display_key)
                return
            order = self.order = SortedKeyList(order, key=_display_key)
        order.add(bubble)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # NO_THREAD is one object: a copy or a pickle of an engine refers to it by
        # name, so the engine's "no last thread yet" stays that object.
        if self is NO_THREAD:
            return "NO_THREAD"
        return object.__reduce_ex__(self, protocol)

    def see_timestamp(self, ts: int) -> None:
        """Section 2 step 5: remember the thread's largest timestamp."""
        if ts > self.max_ts:
            self.max_ts = ts

    def last_timestamp(self) -> int:
        """Section 2 step 5: the timestamp of an event that has none, the thread's
        largest so far (0 before any)."""
        ts = self.max_ts
        return 0 if ts == UNSEEN else ts  # type: ignore[return-value]


#: A thread that is no thread: its id is ``None``, which equals no thread id (the
#: engine's ``_last_thread`` before the first event). Nothing else of it is set.
NO_THREAD: ThreadState = _new(ThreadState)
NO_THREAD.id = None  # type: ignore[assignment]
