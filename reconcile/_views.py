"""Read-only views the engine hands out: a thread's bubbles, its logs, its counters.

Each view reads the engine's own containers without copying them (a thread's bubbles
through the thread, whose order may change container), so making one is O(1) however
long the trace, and nothing a caller does to a view changes the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._bubbles import Bubble, Refusal, Rejected, rejected_list, rejected_of
from ._values import FrozenValue

if TYPE_CHECKING:
    from ._thread import ThreadState

__all__ = ["Stats", "ThreadBubbles", "LogView", "RefusalLog"]

T = TypeVar("T")

_object_setattr = object.__setattr__


class Stats(FrozenValue):
    """Counters of PROTOCOL section 9.

    Attributes:
        events: lines that passed section 1.
        ignored: other event names, unknown types, JSON payloads that make nothing.
        superseded: stream chunks dropped because a callback replaced the turn.
        duplicates: events skipped by seq.
    """

    __slots__ = ("events", "ignored", "superseded", "duplicates")
    __match_args__ = ("events", "ignored", "superseded", "duplicates")

    events: int
    ignored: int
    superseded: int
    duplicates: int

    def __init__(
        self, events: int = 0, ignored: int = 0, superseded: int = 0, duplicates: int = 0
    ) -> None:
        _object_setattr(self, "events", events)
        _object_setattr(self, "ignored", ignored)
        _object_setattr(self, "superseded", superseded)
        _object_setattr(self, "duplicates", duplicates)

    def to_dict(self) -> dict[str, int]:
        return {
            "events": self.events,
            "ignored": self.ignored,
            "superseded": self.superseded,
            "duplicates": self.duplicates,
        }


class ThreadBubbles(Sequence[Bubble]):
    """A live, read-only view of one thread's bubbles in display order.

    Complexity: ``len`` O(1), indexing O(log n), iteration O(n).
    """

    # The thread, not its order: a thread's order may change container (a plain list
    # becomes a SortedKeyList once it is long, see ThreadState.insert), and the view
    # stays live across that. Both containers hold the bubbles themselves.
    __slots__ = ("_thread",)

    def __init__(self, thread: ThreadState) -> None:
        self._thread = thread

    def __len__(self) -> int:
        return len(self._thread.order)

    @overload
    def __getitem__(self, index: int) -> Bubble: ...

    @overload
    def __getitem__(self, index: slice) -> list[Bubble]: ...

    def __getitem__(self, index: int | slice) -> Bubble | list[Bubble]:
        # A slice of either container is a new list: the caller never holds the order.
        return self._thread.order[index]

    def __iter__(self) -> Iterator[Bubble]:
        return iter(self._thread.order)

    def __repr__(self) -> str:
        return f"ThreadBubbles({list(self)!r})"


class LogView(Sequence[T]):
    """A live, read-only view of one of the engine's logs (refusals or gaps).

    Reading it copies nothing, so a UI may check ``len(engine.rejected)`` after every
    event. It compares equal to any list or tuple with the same items. The refusals'
    view (:class:`RefusalLog`) makes each :class:`~reconcile.Rejected` as it is read.
    Complexity: ``len`` and indexing O(1).
    """

    __slots__ = ("_items",)

    # The log itself: its items here, and what they are made from in a subclass
    # (RefusalLog's lines, beside its Refusal tuples).
    _items: list[Any]

    def __init__(self, items: list[T]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self._items[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (LogView, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LogView({self._items!r})"


class RefusalLog(LogView[Rejected]):
    """The :class:`LogView` of the engine's refusals.

    The engine logs a refusal as its line and a ``Refusal`` tuple, which refusals of
    one kind share (see ``EngineCore._refusal_lines``: no object per refusal for the
    garbage collector to walk), so this view makes a :class:`Rejected` on each read:
    equal to the one the engine handed out when it refused the event, but a new
    value, not that same object.
    Complexity: ``len`` and indexing O(1), iteration O(n).
    """

    __slots__ = ("_whys",)

    def __init__(self, lines: list[int], whys: list[Refusal]) -> None:
        self._items = lines
        self._whys = whys

    @overload
    def __getitem__(self, index: int) -> Rejected: ...

    @overload
    def __getitem__(self, index: slice) -> list[Rejected]: ...

    def __getitem__(self, index: int | slice) -> Rejected | list[Rejected]:
        if isinstance(index, slice):
            return rejected_list(self._items[index], self._whys[index])
        return rejected_of(self._items[index], self._whys[index])

    def __iter__(self) -> Iterator[Rejected]:
        return map(rejected_of, self._items, self._whys)

    def __repr__(self) -> str:
        return f"LogView({list(self)!r})"
