"""Refusal reasons and the exceptions of the public API.

A refused event is a *value* (a :class:`~reconcile.Rejected` change carrying one of
the reasons below), never an exception: the engine must keep going after a bad line,
the way a chat window keeps going after a bad socket frame. Exceptions are kept for
callers who misuse the API itself (passing something that is not an event to
``Reconciler.receive``), in the spirit of h11's ``LocalProtocolError``.
"""

from __future__ import annotations

import enum

__all__ = [
    "Reason",
    "ReconcileError",
    "LocalProtocolError",
    "LocalTypeError",
    "FrozenInstanceError",
]


class Reason(enum.StrEnum):
    """Why an event was refused (protocol section 8).

    The values are the exact strings of the protocol, so ``Reason.UNBOUND_EVENT ==
    "unbound_event"`` and the enum serialises as its value.
    """

    #: The line is not UTF-8, not strict JSON, not an object, or lacks a string
    #: ``event`` or an object ``data``.
    MALFORMED_LINE = "malformed_line"
    #: A field has the wrong type, or a ``invocation_created`` / ``rich_block`` /
    #: ``history`` payload is unusable.
    MALFORMED_EVENT = "malformed_event"
    #: A callback that carries no turn id: it is never matched by guesswork.
    CALLBACK_WITHOUT_INVOCATION = "callback_without_invocation"
    #: Stream-side content that binds to no turn.
    UNBOUND_EVENT = "unbound_event"
    #: Stream text for a turn that closed without being replaced by a callback.
    STREAM_AFTER_DONE = "stream_after_done"


class ReconcileError(Exception):
    """Base class of every exception this package raises on purpose."""


class LocalProtocolError(ReconcileError):
    """The caller used the API wrongly (not the server: server mistakes are refusals)."""


class LocalTypeError(LocalProtocolError, TypeError):
    """The caller passed a value of the wrong type (e.g. a path where an iterable of
    lines belongs). A ``TypeError`` too, as Python's own functions would raise."""


class FrozenInstanceError(ReconcileError, AttributeError):
    """Setting or deleting a field of an immutable value (a :class:`~reconcile.Rejected`,
    a :class:`~reconcile.Gap`, an event, a report...). An ``AttributeError`` too, as
    Python raises for a read-only attribute."""
