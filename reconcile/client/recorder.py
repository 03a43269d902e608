"""Recording: every event the client applies, one JSON line each (PROTOCOL section 1).

The line written is the very line the client fed its engine
(:func:`~reconcile.client.encode_event`) with two extra top-level keys that replay
ignores: ``t`` (seconds since the recording started) and, for a history page,
``reason`` (why it was fetched). So ``reconcile replay FILE`` rebuilds the
client's bubbles, bubble ids and refusal line numbers included, whatever the
socket delivered (binary payloads, several arguments, huge integers: see
``encode_event``), with one exception: a turn the client closed as interrupted
(a server reset, :meth:`~reconcile.Reconciler.interrupt`) is the client's own
decision, not an event, so it is not in the trace and a replay shows that turn
as the server left it. ``reconcile record`` lists those interruptions (thread,
turn, line) in its summary; the trace itself holds only what the server sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from ._client import NOTICE_LOG_MARK, ChatClient
from ._payload import encode_event

__all__ = ["Recorder", "record", "routed_logs", "until"]


class _RouteHandler(logging.Handler):
    def __init__(self, show: Callable[[str], Any]) -> None:
        super().__init__(logging.WARNING)
        self.show = show

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, NOTICE_LOG_MARK, False):
            return  # the front end shows the Notice itself
        try:
            self.show(f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - logging must never raise into the client
            self.handleError(record)


@contextlib.contextmanager
def routed_logs(show: Callable[[str], Any]) -> Iterator[None]:
    """Send the client's warnings to ``show`` instead of the terminal, for a while.

    ``record`` and ``watch`` show notices themselves (the client also logs each
    one, for programs that embed it), and ``watch`` owns the terminal while its
    live frame is up: a line written under it would shift the frame and leave
    stale lines behind. Notice records are dropped; other records (a failed
    history fetch, a broken callback) go to ``show`` as ``"warning: ..."``.
    """
    logger = logging.getLogger("reconcile.client")
    handler = _RouteHandler(show)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class Recorder:
    """An ``on_event`` hook that writes each applied event as one line and counts them.

    A write error (disk full, closed pipe) stops the writing and is kept in
    ``error``; the client goes on.
    """

    def __init__(self, sink: IO[str]) -> None:
        self.sink = sink
        self.started = time.monotonic()
        self.lines = 0
        self.socket_events = 0
        self.history_pages = 0
        self.error: OSError | None = None

    def __call__(self, message: dict[str, Any], reason: str | None) -> None:
        if self.error is not None:
            return
        line = encode_event(message)
        # Splice the extra keys into the object the engine was fed: the bytes before
        # them are identical, so nothing can differ between the live run and replay.
        extra = f',"t":{round(time.monotonic() - self.started, 3)}'
        if reason is not None:
            extra += f',"reason":{json.dumps(reason)}'
            self.history_pages += 1
        else:
            self.socket_events += 1
        self.lines += 1
        try:
            self.sink.write(line[:-1] + extra + "}\n")
            self.sink.flush()
        except OSError as exc:
            self.error = exc


async def until(stop: asyncio.Event, duration: float | None) -> None:
    """Wait for ``stop``, or ``duration`` seconds when given."""
    if duration is None:
        await stop.wait()
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)


async def record(
    client: ChatClient,
    sink: IO[str],
    stop: asyncio.Event,
    *,
    duration: float | None = None,
    status: IO[str] | None = None,
) -> Recorder:
    """Record everything ``client`` applies to ``sink`` until ``stop`` (or ``duration``).

    The client must not be started yet (so the first history page is recorded too);
    it is closed on return. With ``status``, one line per connection state change
    and per notice is written there.
    """
    recorder = Recorder(sink)
    client.on_event(recorder)
    routing: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if status is not None:
        client.on_notice(lambda notice: print(f"record: {notice.text}", file=status,
                                              flush=True))
        # Each notice once (above), not a second time through the log.
        routing = routed_logs(lambda line: print(f"record: {line}", file=status, flush=True))
    watcher = None
    with routing:
        try:
            await client.start()
            if status is not None:
                watcher = asyncio.create_task(_report_status(client, status))
            await until(stop, duration)
        finally:
            if watcher is not None:
                watcher.cancel()
            await client.close()
    return recorder


async def _report_status(client: ChatClient, status: IO[str]) -> None:
    """One line on ``status`` per connection state change."""
    shown = None
    while True:
        state = (client.status, client.last_error if client.status != "connected" else None)
        if state != shown:
            shown = state
            line = f"record: {client.status} {client.url}"
            if state[1]:
                line += f" ({state[1]})"
            print(line, file=status, flush=True)
        await asyncio.sleep(0.1)
