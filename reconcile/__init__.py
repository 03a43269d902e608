"""reconcile: turn a multi-agent chat server's event stream into chat bubbles.

Stream chunks and out-of-band callbacks are merged by exact turn identity (PROTOCOL
v1), so a late callback replaces its own bubble and nothing is ever guessed. The
engine is pure (no clock, no I/O); feed it lines, decoded dicts or typed events::

    from reconcile import Reconciler
    r = Reconciler()
    r.receive_line(b'{"event": "agent_message", "data": {...}}')
    for bubble in r.bubbles("t1"):
        print(bubble.cat, bubble.status, bubble.text)

Everything public is listed in ``__all__``; the underscored modules are internal.
"""

from ._bubbles import (
    Bubble,
    BubbleAdded,
    BubbleUpdated,
    Change,
    Duplicate,
    Gap,
    Origin,
    Rejected,
    Status,
    RunningTurn,
    Superseded,
    TurnClosed,
    TurnOpened,
    Update,
)
from ._errors import LocalProtocolError, Reason, ReconcileError
from ._events import AgentMessage, Event, History, OtherEvent, announce, callback, done, stream
from ._reconciler import LogView, Reconciler, Stats, ThreadBubbles
from ._turns import TurnEnd

__version__ = "0.1.0"

__all__ = [
    # the engine
    "Reconciler",
    "ThreadBubbles",
    "LogView",
    "Stats",
    # output
    "Bubble",
    "Origin",
    "Status",
    "Change",
    "BubbleAdded",
    "BubbleUpdated",
    "Update",
    "Rejected",
    "Superseded",
    "Duplicate",
    "Gap",
    # turn activity
    "TurnOpened",
    "TurnClosed",
    "TurnEnd",
    "RunningTurn",
    # input
    "Event",
    "AgentMessage",
    "History",
    "OtherEvent",
    "announce",
    "stream",
    "callback",
    "done",
    # errors
    "Reason",
    "ReconcileError",
    "LocalProtocolError",
    "__version__",
]
