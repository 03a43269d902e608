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
from typing import Any

import attrs

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


@attrs.frozen(kw_only=True)
class AgentMessage:
    """One ``agent_message`` (protocol section 2). ``None`` fields are left out."""

    type: str
    thread: str
    cat: str
    content: str | None = None
    origin: str | None = None
    invocation_id: str | None = None
    turn_invocation_id: str | None = None
    message_id: str | None = None
    error: str | None = None
    tool_name: str | None = None
    tool_input: Any = None
    timestamp: int | None = None
    seq: int | None = None
    seq_epoch: Any = None
    is_final: bool | None = None
    is_explicit_post: bool = False

    def to_wire(self) -> dict[str, Any]:
        data = {
            wire: getattr(self, attr)
            for attr, wire in _WIRE_NAMES.items()
            if getattr(self, attr) is not None
        }
        if self.is_explicit_post:
            data["extra"] = {"isExplicitPost": True}
        return {"event": "agent_message", "data": data}


@attrs.frozen
class History:
    """A page of a thread's stored messages, oldest first (section 7)."""

    thread: str
    messages: tuple[dict[str, Any], ...] = attrs.field(default=(), converter=tuple)

    def to_wire(self) -> dict[str, Any]:
        return {
            "event": "history",
            "data": {"threadId": self.thread, "messages": list(self.messages)},
        }


@attrs.frozen
class OtherEvent:
    """Any other server event (``intent_mode``, ``heartbeat``...): counted, ignored."""

    name: str
    data: dict[str, Any] = attrs.field(factory=dict)

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
