"""reconcile: turn a multi-agent chat server's event stream into chat bubbles.

Stream chunks and out-of-band callbacks are merged by exact turn identity (the protocol,
version 1.1, in docs/protocol.md; "section N" in these docstrings means its section N), so a
late callback replaces its own bubble and nothing is ever guessed. The engine is pure (no clock, no I/O); feed it lines, decoded dicts or typed events::

    from reconcile import Reconciler
    r = Reconciler()
    r.receive_line(b'{"event": "agent_message", "data": {...}}')
    for bubble in r.bubbles("t1"):
        print(bubble.cat, bubble.status, bubble.text)

Everything public is listed in ``__all__``; the underscored modules are internal.
"""

from typing import TypeAlias

from ._bubbles import Change as _Change
from ._bubbles import (
    Bubble,
    BubbleAdded,
    BubbleUpdated,
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
from ._errors import FrozenInstanceError, LocalProtocolError, Reason, ReconcileError
from ._events import AgentMessage, History, OtherEvent, announce, callback, done, stream
from ._events import Event as _Event
from ._reconciler import LogView, Reconciler, Stats, ThreadBubbles
from ._contract import CheckReport, RuleReport, ThreadCounts, check_lines
from ._turns import TurnEnd

# The two unions are bound here again, not only imported, so that the API reference (pdoc
# reads a docstring beside an assignment in this module) can say what they are.
Change: TypeAlias = _Change
"""Any change ``receive*`` returns: `BubbleAdded`, `BubbleUpdated`, `Rejected`,
`Superseded`, `Duplicate`, `Gap`, `TurnOpened` or `TurnClosed`. Dispatch on it with ``isinstance`` or ``match``."""

Event: TypeAlias = _Event
"""Any typed input event ``Reconciler.receive`` takes: `AgentMessage`, `History` or
`OtherEvent`."""

__version__ = "0.1.0"
"""This package's version (semantic versioning: see the README, "Versions and stability")."""

__all__ = [
    # the engine
    "Reconciler",
    "ThreadBubbles",
    "LogView",
    "Stats",
    # the server contract (PROTOCOL section 10), what `reconcile check` runs
    "check_lines",
    "CheckReport",
    "RuleReport",
    "ThreadCounts",
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
    "FrozenInstanceError",
    "__version__",
]
