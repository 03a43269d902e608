"""A live chat client: one pure :class:`~reconcile.Reconciler` behind a socket.

Install with ``pip install 'reconcile-chat[client]'`` (python-socketio, aiohttp, rich).

    async with ChatClient("http://127.0.0.1:8765", threads=["t1"]) as client:
        client.on_change(lambda change: print(change))
        await client.wait_ready()
        for bubble in client.bubbles("t1"):
            print(bubble.cat, bubble.status, client.display_text(bubble))

All I/O of the package lives here; the engine stays a pure function of the events
it is fed. The client feeds it exactly two kinds of input, one at a time, as the
JSON lines a recording holds:

* every event the socket delivers (any name), in delivery order;
* pages of the thread's stored messages (``GET /api/messages``, header
  ``X-Cat-Cafe-User``) as PROTOCOL section 7 ``history`` events, oldest page first.

One job per module:

* ``_connection``: the socket, kept up by a supervisor with backoff;
* ``_history``: fetching history pages (:func:`fetch_history`, :class:`HistoryError`);
* ``_payload``: socket payloads as trace lines (binary, several arguments, huge
  integers) and the one encoder the engine and the recorder share;
* ``_client``: :class:`ChatClient`, the policy (when to fetch history, late joins,
  resets, turn activity, refused callbacks, bounded change queues);
* ``recorder``: :class:`Recorder` and :func:`record` (``reconcile record``);
* ``view``: the rich terminal view (``reconcile watch``).

``docs/client.md`` explains why the result converges to the server's stored truth.
"""

from ._client import (
    DEFAULT_USER,
    NOTICE_LOG_MARK,
    ChatClient,
    ClientClosed,
    ClientUsageError,
    MissingExtra,
    NotFollowed,
    NotReady,
    Lagged,
    Notice,
    NoticeKind,
    Unplaced,
)
from ._connection import backoff_delay
from ._history import HistoryError, fetch_history, is_draft
from ._payload import encode_event
from .recorder import Recorder, record, routed_logs

__all__ = [
    "DEFAULT_USER",
    "NOTICE_LOG_MARK",
    "ChatClient",
    "ClientClosed",
    "ClientUsageError",
    "MissingExtra",
    "NotFollowed",
    "NotReady",
    "HistoryError",
    "Lagged",
    "Notice",
    "NoticeKind",
    "Recorder",
    "Unplaced",
    "backoff_delay",
    "encode_event",
    "fetch_history",
    "is_draft",
    "record",
    "routed_logs",
]
