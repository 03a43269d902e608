"""Typed input events: a readable way to build what the wire carries.

The engine's own input is the wire form, ``{"event": name, "data": {...}}``, because
that is what a socket delivers and what a trace stores; the protocol's checks are
defined on it. These classes are for code that *makes* events (tests, simulators,
adapters for other servers): each converts to the wire form with :meth:`to_wire`, and
``Reconciler.receive`` runs it through exactly the same checks as a trace line, so a
typed event can never take a path a real one could not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ._values import FrozenValue

__all__ = [
    "AgentMessage",
    "History",
    "OtherEvent",
    "Event",
    "announce",
    "stream",
    "callback",
    "done",
]

_object_setattr = object.__setattr__

# Python attribute -> wire field of agent_message data.
_WIRE_NAMES = {
    "type": "type",
    "thread": "threadId",
    "cat": "catId",
    "content": "content",
    "origin": "origin",
    "invocation_id": "invocationId",
    "turn_invocation_id": "turnInvocationId",
    "message_id": "messageId",
    "error": "error",
    "tool_name": "toolName",
    "tool_input": "toolInput",
    "timestamp": "timestamp",
    "seq": "seq",
    "seq_epoch": "seqEpoch",
    "is_final": "isFinal",
}


class AgentMessage(FrozenValue):
    """One ``agent_message`` (protocol section 2). ``None`` fields are left out.

    Every argument is a keyword (``AgentMessage(type="text", thread="t1", cat="opus",
    ...)``), so a message reads like its wire form. Pattern matching uses keyword
    patterns (``case AgentMessage(type="done")``).
    """

    __slots__ = (
        "type",
        "thread",
        "cat",
        "content",
        "origin",
        "invocation_id",
        "turn_invocation_id",
        "message_id",
        "error",
        "tool_name",
        "tool_input",
        "timestamp",
        "seq",
        "seq_epoch",
        "is_final",
        "is_explicit_post",
    )
    __match_args__ = ()

    type: str
    thread: str
    cat: str
    content: str | None
    origin: str | None
    invocation_id: str | None
    turn_invocation_id: str | None
    message_id: str | None
    error: str | None
    tool_name: str | None
    tool_input: Any
    timestamp: int | None
    seq: int | None
    seq_epoch: Any
    is_final: bool | None
    is_explicit_post: bool

    def __init__(
        self,
        *,
        type: str,
        thread: str,
        cat: str,
        content: str | None = None,
        origin: str | None = None,
        invocation_id: str | None = None,
        turn_invocation_id: str | None = None,
        message_id: str | None = None,
        error: str | None = None,
        tool_name: str | None = None,
        tool_input: Any = None,
        timestamp: int | None = None,
        seq: int | None = None,
        seq_epoch: Any = None,
        is_final: bool | None = None,
        is_explicit_post: bool = False,
    ) -> None:
        _object_setattr(self, "type", type)
        _object_setattr(self, "thread", thread)
        _object_setattr(self, "cat", cat)
        _object_setattr(self, "content", content)
        _object_setattr(self, "origin", origin)
        _object_setattr(self, "invocation_id", invocation_id)
        _object_setattr(self, "turn_invocation_id", turn_invocation_id)
        _object_setattr(self, "message_id", message_id)
        _object_setattr(self, "error", error)
        _object_setattr(self, "tool_name", tool_name)
        _object_setattr(self, "tool_input", tool_input)
        _object_setattr(self, "timestamp", timestamp)
        _object_setattr(self, "seq", seq)
        _object_setattr(self, "seq_epoch", seq_epoch)
        _object_setattr(self, "is_final", is_final)
        _object_setattr(self, "is_explicit_post", is_explicit_post)

    def to_wire(self) -> dict[str, Any]:
        data = {
            wire: getattr(self, attr)
            for attr, wire in _WIRE_NAMES.items()
            if getattr(self, attr) is not None
        }
        if self.is_explicit_post:
            data["extra"] = {"isExplicitPost": True}
        return {"event": "agent_message", "data": data}


class History(FrozenValue):
    """A page of a thread's stored messages, oldest first (section 7).

    ``messages`` is kept as a tuple, whatever iterable it was given as.
    """

    __slots__ = ("thread", "messages")
    __match_args__ = ("thread", "messages")

    thread: str
    messages: tuple[dict[str, Any], ...]

    def __init__(self, thread: str, messages: Iterable[dict[str, Any]] = ()) -> None:
        _object_setattr(self, "thread", thread)
        _object_setattr(self, "messages", tuple(messages))

    def to_wire(self) -> dict[str, Any]:
        return {
            "event": "history",
            "data": {"threadId": self.thread, "messages": list(self.messages)},
        }


class OtherEvent(FrozenValue):
    """Any other server event (``intent_mode``, ``heartbeat``...): counted, ignored.

    ``data`` defaults to a new empty dict for each event.
    """

    __slots__ = ("name", "data")
    __match_args__ = ("name", "data")

    name: str
    data: dict[str, Any]

    def __init__(self, name: str, data: dict[str, Any] | None = None) -> None:
        _object_setattr(self, "name", name)
        _object_setattr(self, "data", {} if data is None else data)

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.name, "data": dict(self.data)}


Event = AgentMessage | History | OtherEvent


def announce(
    thread: str, cat: str, turn: str, parent: str | None = None, timestamp: int | None = None
) -> AgentMessage:
    """The ``invocation_created`` announcement of ``turn`` under ``parent``."""
    payload = json.dumps({"type": "invocation_created", "invocationId": turn})
    return AgentMessage(
        type="system_info",
        thread=thread,
        cat=cat,
        content=payload,
        invocation_id=parent,
        timestamp=timestamp,
    )


def stream(
    thread: str, cat: str, chunk: str, parent: str | None = None, **fields: Any
) -> AgentMessage:
    """A stream chunk; it carries the parent id, as real servers send it."""
    return AgentMessage(
        type="text", thread=thread, cat=cat, content=chunk, invocation_id=parent, **fields
    )


def callback(
    thread: str, cat: str, text: str, turn: str | None, message_id: str | None = None, **fields: Any
) -> AgentMessage:
    """A callback snapshot; it carries the *turn* id."""
    return AgentMessage(
        type="text",
        thread=thread,
        cat=cat,
        content=text,
        origin="callback",
        invocation_id=turn,
        message_id=message_id,
        **fields,
    )


def done(thread: str, cat: str, parent: str | None = None, **fields: Any) -> AgentMessage:
    """The end of one agent's turn."""
    return AgentMessage(type="done", thread=thread, cat=cat, invocation_id=parent, **fields)
