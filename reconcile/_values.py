"""The two bases of the package's small value classes (changes, events, reports).

Each value class lists its fields once, as its ``__slots__``, and writes its own
``__init__`` as plain attribute stores; these bases add what every such class shares:

* ``repr`` as ``Name(field=value, ...)``, fields in ``__slots__`` order;
* ``==`` between instances of the same class, comparing the fields as a tuple (a class
  may compare fewer fields: ``_compared``); any other class is ``NotImplemented``;
* :class:`Value` instances are mutable and unhashable; :class:`FrozenValue` instances
  refuse to have a field set or deleted (:class:`~reconcile.FrozenInstanceError`) and
  hash their compared fields;
* ``copy``, ``deepcopy`` and ``pickle`` work (frozen ones included), and so does
  ``copy.replace`` (Python 3.13).

Why not attrs or dataclasses: both write each class's methods as source text and compile
it when the module is imported. With the 16 classes of the engine that was most of
``reconcile check``'s start-up (about 2.8 million instructions a class, on top of
importing attrs). The methods here are written once, and nothing runs at import but
the class statements; the per-instance cost is the class's own ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from reprlib import recursive_repr
from typing import Any, ClassVar, Self, dataclass_transform

from ._errors import FrozenInstanceError

__all__ = ["Value", "FrozenValue", "slot_setters"]

_object_setattr = object.__setattr__


class Value:
    """Base of a mutable value class whose fields are its ``__slots__``."""

    __slots__ = ()

    #: The fields, in ``__init__`` order (the subclass's ``__slots__``); filled in.
    _fields: ClassVar[tuple[str, ...]] = ()
    #: The fields ``==`` compares and a frozen value hashes; a subclass that sets it
    #: compares fewer than its ``_fields`` (``Gap.line``). Filled in when not set.
    _compared: ClassVar[tuple[str, ...]] = ()
    #: ``instance -> tuple of the compared fields``: an ``operator.attrgetter``, one C
    #: call (no Python frame).
    _key: ClassVar[Callable[[Any], Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        slots = cls.__dict__.get("__slots__", ())
        # A subclass's own slots come after its base's fields (none for ours). A single
        # slot may be named by a bare string; __weakref__ and __dict__ are not fields.
        own = (slots,) if isinstance(slots, str) else tuple(slots)
        if "__weakref__" in own or "__dict__" in own:
            own = tuple(name for name in own if name not in ("__weakref__", "__dict__"))
        if "_compared" not in cls.__dict__:
            cls._compared = (*cls._compared, *own)
        cls._fields = (*cls._fields, *own)
        # attrgetter of one name returns the bare value, of several a tuple: give it
        # two names at least, so a key is always a tuple.
        names = cls._compared if len(cls._compared) > 1 else (*cls._compared, "__class__")
        cls._key = attrgetter(*names)

    # A value that holds itself (an event whose data dict contains the event) shows
    # as ``...`` inside, as attrs did, instead of recursing until RecursionError.
    # (collections imports reprlib already: this imports nothing more.)
    @recursive_repr()
    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        # attrs's name: the qualified one without a function's ``<locals>.`` prefix.
        name = self.__class__.__qualname__.rsplit(">.", 1)[-1]
        return f"{name}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = self.__class__._key  # read on the class: a callable there is not bound
        return bool(key(self) == key(other))

    # Defining __eq__ leaves __hash__ None: a mutable value is unhashable, as a list.

    def __replace__(self, /, **changes: Any) -> Self:
        """A new value of the same class with ``changes`` (field name -> value) made:
        ``copy.replace(gap, line=9)`` on Python 3.13, as attrs classes had there. It
        goes through ``__init__`` (``History`` makes its messages a tuple again)."""
        fields = {name: getattr(self, name) for name in self._fields}
        fields.update(changes)
        return self.__class__(**fields)

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            _object_setattr(self, name, value)


# For type checkers only (at run time it only sets a dunder on the class): the
# annotated fields of a subclass are read-only, so ``mypy`` reports ``gap.line = 3``
# as attrs's plugin did, not just the run time. The subclasses write their own
# ``__init__``, which a type checker then takes as it is.
@dataclass_transform(frozen_default=True)
class FrozenValue(Value):
    """Base of an immutable value class: fields set once, by ``__init__``.

    A subclass's ``__init__`` stores its fields with ``object.__setattr__`` (or the
    slots' own setters, on the hot path), since its own ``__setattr__`` refuses.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"{self.__class__.__name__} is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"{self.__class__.__name__} is immutable: cannot delete {name}")

    def __hash__(self) -> int:
        return hash(self.__class__._key(self))


def slot_setters(cls: type[Value]) -> tuple[Callable[[Any, Any], None], ...]:
    """The setters of ``cls``'s fields in order: ``setter(instance, value)``.

    For the ``__init__`` of a frozen class built on the hot path (``Rejected``,
    ``Gap``): a slot's own setter skips ``__setattr__`` and the name lookup, about a
    quarter fewer instructions per instance than ``object.__setattr__`` (and than
    attrs's frozen classes).
    """
    return tuple(cls.__dict__[name].__set__ for name in cls._fields)
