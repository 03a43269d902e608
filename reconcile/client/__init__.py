"""A live chat client: one pure :class:`~reconcile.Reconciler` behind a socket.

Install with ``pip install 'reconcile[client]'`` (python-socketio, aiohttp, rich).

    async with ChatClient("http://127.0.0.1:8765", "alice", threads=["t1"]) as client:
        client.on_change(lambda change: print(change))
        await client.wait_ready()
        for bubble in client.bubbles("t1"):
            print(bubble.cat, bubble.status, bubble.text)

Theory of operation
-------------------
All I/O of the package lives here; the engine stays a pure function of the events
it is fed. The client feeds it exactly two kinds of input, one at a time and in the
order they are applied:

* every event the socket delivers (any name, not only ``agent_message``), as
  ``{"event": name, "data": payload}``, in the order the socket delivered it. The
  socket handler is synchronous, so nothing can run between two deliveries;
* pages of the thread's stored messages, fetched over HTTP
  (``GET {url}/api/messages?threadId=..&limit=..``, header ``X-Cat-Cafe-User``) and
  applied as PROTOCOL section 7 ``history`` events, oldest page first.

Because that sequence is the engine's whole input, writing it out (``on_event``)
gives a trace that replays to exactly the bubbles the client showed, with the same
bubble ids and the same refusal line numbers: that is what ``reconcile record`` does.

When history is fetched (per thread, one fetch at a time, requests coalesced):

* after joining a thread's room, on the first connection and on every reconnect;
* when the engine reports a ``seq`` :class:`~reconcile.Gap`;
* while a thread is *suspect*, on each ``done`` or ``error`` it receives and once it
  has been quiet for ``resync_delay`` seconds.

A thread becomes suspect when events may have been missed or history may have
been provisional: on (re)joining, on a gap, when the engine refuses an event as
``unbound_event`` or ``stream_after_done`` (the usual sign of a missed
``invocation_created`` or of history that overtook the socket), and when a fetched
page held drafts (turns still running, whose text so far the client may have only
in part, or twice: a draft and a live chunk can overlap, and nothing in a draft says
where it ends). It stops being suspect after a fetch that holds no draft and saw no
new trigger while in flight. Since the server stores a turn's final text before it
sends that turn's ``done``, the fetch a ``done`` triggers carries the final text,
which the engine puts in place by exact turn identity. So after a disconnect, once
every turn that was running has finished, the client's bubbles equal the server's
stored truth; none is duplicated because every merge is by id.

Reconnecting: python-socketio's own reconnection is off. It does not reconnect after
a server-initiated disconnect (it treats it as deliberate), which is exactly what a
server restart or a load balancer drain looks like. A supervisor task reconnects
after any disconnect, with exponential backoff and jitter, rejoins the rooms and
fetches history.

Joining: ``join_room`` is emitted with an acknowledgement callback; the client waits
up to ``join_timeout`` for it so the history fetch starts after the server put the
socket in the room (else an event sent in between would be in neither). A server
that never acknowledges costs ``join_timeout`` per (re)join and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from reconcile import Bubble, Change, Gap, Reason, Reconciler, Rejected

__all__ = ["ChatClient", "HistoryError", "fetch_history"]

log = logging.getLogger("reconcile.client")

#: Refusals that mean "this client missed something", not "the server misbehaved".
_SUSPECT_REASONS = frozenset({Reason.UNBOUND_EVENT, Reason.STREAM_AFTER_DONE})
#: Raw event types after which a suspect thread refetches (the server stored the
#: turn's final text before sending them).
_TURN_END_TYPES = frozenset({"done", "error"})

EventHook = Callable[[dict[str, Any], "str | None"], Any]
ChangeHook = Callable[[Change], Any]


class HistoryError(Exception):
    """The history endpoint failed or answered something that is not a history page."""


def _base_url(url: str) -> str:
    return url.rstrip("/")


async def fetch_history(
    session: Any,
    url: str,
    user_id: str,
    thread: str,
    *,
    limit: int = 50,
    max_pages: int = 20,
    timeout: float = 10.0,
) -> list[list[Any]]:
    """Fetch a thread's stored messages, newest page first, following ``hasMore``.

    Args:
        session: an ``aiohttp.ClientSession``.
        url: the server's base URL (``http://host:port``).
        user_id: sent as ``X-Cat-Cafe-User``.
        thread: the thread id.
        limit: messages per page (the server caps it, clowder at 200).
        max_pages: stop after this many pages even if the server has more.
        timeout: seconds per request.

    Returns:
        The pages, **newest first**, each a list of messages oldest first as the
        server sent them. Apply them in reverse order.

    Raises:
        HistoryError: a non-200 answer, a network error, or a malformed body.
    """
    import aiohttp

    pages: list[list[Any]] = []
    before: str | None = None
    endpoint = f"{_base_url(url)}/api/messages"
    headers = {"X-Cat-Cafe-User": user_id}
    for _ in range(max(1, max_pages)):
        params = {"threadId": thread, "limit": str(limit)}
        if before is not None:
            params["before"] = before
        try:
            async with session.get(
                endpoint,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                if response.status != 200:
                    text = (await response.text())[:200]
                    raise HistoryError(f"GET {endpoint} -> HTTP {response.status}: {text}")
                body = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise HistoryError(f"GET {endpoint}: {exc or type(exc).__name__}") from exc
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            raise HistoryError(f"GET {endpoint}: no 'messages' list in the answer")
        pages.append(messages)
        if body.get("hasMore") is not True:
            break
        # The cursor is the oldest stored (non-draft) message of this page: ts:id.
        cursor = next(
            (
                m
                for m in messages
                if isinstance(m, dict)
                and not _is_draft(m)
                and type(m.get("timestamp")) is int
                and isinstance(m.get("id"), str)
            ),
            None,
        )
        if cursor is None:
            break
        before = f"{cursor['timestamp']}:{cursor['id']}"
    return pages


def _is_draft(message: Any) -> bool:
    if not isinstance(message, dict):
        return False
    message_id = message.get("id")
    return message.get("isDraft") is True or (
        isinstance(message_id, str) and message_id.startswith("draft-")
    )


class _ThreadSync:
    """History bookkeeping for one followed thread (see the module docstring)."""

    __slots__ = (
        "again",
        "failures",
        "fetches",
        "generation",
        "reason",
        "streak",
        "suspect",
        "task",
        "timer",
    )

    def __init__(self) -> None:
        self.suspect = False
        self.generation = 0  # bumped by every trigger; a fetch clears only its own
        self.task: asyncio.Task | None = None
        self.again = False  # another fetch was asked for while one was in flight
        self.reason = ""
        self.timer: asyncio.TimerHandle | None = None
        self.failures = 0  # history fetches that failed in a row
        self.streak = 0  # quiet-timer fetches in a row that still found drafts
        self.fetches = 0


class ChatClient:
    """A socket.io chat client that keeps every followed thread's bubbles.

    Args:
        url: the server's base URL, ``http://host:port`` (socket.io and HTTP).
        user_id: sent as the handshake auth ``{"userId": ...}`` and as the
            ``X-Cat-Cafe-User`` header of history requests.
        threads: threads to follow from the start (more with :meth:`follow`).
        history_limit: messages per history page.
        history_pages: at most this many pages per fetch (older ones are skipped).
        reconnect_delay: first reconnection delay in seconds; doubles per failed
            attempt up to ``reconnect_delay_max``, with +-25% jitter.
        reconnect_delay_max: the largest reconnection delay.
        resync_delay: a suspect thread refetches after this many quiet seconds.
        join_timeout: how long to wait for the server's ``join_room`` acknowledgement.
        request_timeout: seconds per history request.
        transports: socket.io transports (``None``: polling, upgraded to websocket).
        socketio_path: the socket.io endpoint path.
        reconciler: the engine to feed (a new one by default).

    The client is an async context manager; ``close()`` is idempotent. Nothing here
    is thread-safe: use it from one event loop.
    """

    def __init__(
        self,
        url: str,
        user_id: str = "reconcile",
        *,
        threads: Iterable[str] = (),
        history_limit: int = 50,
        history_pages: int = 20,
        reconnect_delay: float = 0.5,
        reconnect_delay_max: float = 10.0,
        resync_delay: float = 1.0,
        join_timeout: float = 1.0,
        request_timeout: float = 10.0,
        transports: list[str] | None = None,
        socketio_path: str = "socket.io",
        reconciler: Reconciler | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {url!r}")
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        if history_limit < 1:
            raise ValueError("history_limit must be at least 1")
        self.url = _base_url(url)
        self.user_id = user_id
        self.history_limit = history_limit
        self.history_pages = history_pages
        self.reconnect_delay = reconnect_delay
        self.reconnect_delay_max = reconnect_delay_max
        self.resync_delay = resync_delay
        self.join_timeout = join_timeout
        self.request_timeout = request_timeout
        self.transports = transports
        self.socketio_path = socketio_path
        self.reconciler = reconciler if reconciler is not None else Reconciler()

        self._followed: dict[str, _ThreadSync] = {}
        for thread in threads:
            self._followed.setdefault(thread, _ThreadSync())
        self._event_hooks: list[EventHook] = []
        self._change_hooks: list[ChangeHook] = []
        self._queues: list[asyncio.Queue] = []

        self._sio: Any = None
        self._session: Any = None
        self._supervisor: asyncio.Task | None = None
        self._disconnected = asyncio.Event()
        self._ready = asyncio.Event()  # connected, rooms joined, history applied
        self._closing = False
        self._closed = False
        self._joined: set[str] = set()
        self._last_event = time.monotonic()

        #: Connection state for a UI: ``idle``, ``connecting``, ``connected``,
        #: ``reconnecting``, ``closed``.
        self.status = "idle"
        #: Number of successful connections (1 + reconnects).
        self.connects = 0
        #: Number of connections that ended (dropped or refused mid-session).
        self.disconnects = 0
        #: Socket events received and history pages applied.
        self.socket_events = 0
        self.history_pages_applied = 0
        #: The last connection or history error, for display; ``None`` when healthy.
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ChatClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start connecting in the background (returns at once; see :meth:`wait_ready`)."""
        if self._supervisor is not None:
            return
        import aiohttp

        try:
            import socketio  # noqa: F401  (fail here, not in the background task)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the chat client needs python-socketio: pip install 'reconcile[client]'"
            ) from exc
        self._session = aiohttp.ClientSession()
        self._supervisor = asyncio.create_task(self._supervise(), name="reconcile-client")

    async def close(self) -> None:
        """Disconnect, stop every background task and end the ``changes()`` iterators."""
        if self._closed:
            return
        self._closing = True
        self._closed = True
        self.status = "closed"
        self._disconnected.set()
        for state in self._followed.values():
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
        tasks = [s.task for s in self._followed.values() if s.task is not None]
        if self._supervisor is not None:
            tasks.append(self._supervisor)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._drop_socket()
        if self._session is not None:
            await self._session.close()
            self._session = None
        for queue in self._queues:
            queue.put_nowait(None)

    # ------------------------------------------------------------------ public API

    @property
    def connected(self) -> bool:
        return self.status == "connected"

    @property
    def threads(self) -> tuple[str, ...]:
        """The followed threads, in the order they were followed."""
        return tuple(self._followed)

    def bubbles(self, thread: str) -> tuple[Bubble, ...]:
        """The thread's bubbles in display order (a snapshot tuple; empty if unknown).

        The :class:`~reconcile.Bubble` objects are live: they keep changing.
        """
        try:
            return tuple(self.reconciler.bubbles(thread))
        except KeyError:
            return ()

    def on_change(self, callback: ChangeHook) -> None:
        """Call ``callback(change)`` for every change the engine reports, in order."""
        self._change_hooks.append(callback)

    def on_event(self, callback: EventHook) -> None:
        """Call ``callback(message, reason)`` for every event, just before it is applied.

        ``message`` is ``{"event": name, "data": payload}``. ``reason`` is ``None``
        for a socket event and says why for a history page (``"join"``,
        ``"reconnect"``, ``"follow"``, ``"gap"``, ``"turn_end"``, ``"resync"``).
        Writing the messages out in this order gives a trace that replays to the
        client's bubbles exactly.
        """
        self._event_hooks.append(callback)

    async def changes(self) -> AsyncIterator[Change]:
        """Iterate over every change from now on; ends when the client closes.

        Each iterator has its own unbounded queue, so a slow reader never blocks
        the socket (and never misses a change).
        """
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                change = await queue.get()
                if change is None:
                    return
                yield change
        finally:
            with contextlib.suppress(ValueError):
                self._queues.remove(queue)

    async def follow(self, thread: str) -> None:
        """Follow a thread: join its room and apply its history.

        When connected, returns after the first history fetch was applied;
        otherwise the thread is joined on the next connection.
        """
        if not isinstance(thread, str) or not thread:
            raise ValueError("a thread id is a non-empty string")
        if thread in self._followed:
            return
        state = self._followed[thread] = _ThreadSync()
        if self.connected and self._sio is not None:
            await self._join(self._sio, thread)
            self._request_sync(thread, "follow")
            if state.task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(state.task)

    async def unfollow(self, thread: str) -> None:
        """Leave a thread's room. Its bubbles stay in the engine."""
        state = self._followed.pop(thread, None)
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
        if state.task is not None:
            state.task.cancel()
        self._joined.discard(thread)
        if self.connected and self._sio is not None:
            with contextlib.suppress(Exception):
                await self._sio.emit("leave_room", f"thread:{thread}")

    async def sync(self, thread: str, reason: str = "manual") -> None:
        """Fetch and apply the thread's history now (coalesced with one in flight)."""
        if thread not in self._followed:
            raise KeyError(f"thread {thread!r} is not followed")
        self._request_sync(thread, reason)
        task = self._followed[thread].task
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until connected, every followed room joined and its history applied.

        Raises:
            asyncio.TimeoutError: not ready within ``timeout`` seconds.
        """
        await asyncio.wait_for(self._ready.wait(), timeout)

    def is_idle(self, quiet: float = 0.3) -> bool:
        """Connected, nothing fetched or suspect, and no event for ``quiet`` seconds."""
        if not self.connected or not self._ready.is_set():
            return False
        for state in self._followed.values():
            if state.suspect or (state.task is not None and not state.task.done()):
                return False
        return time.monotonic() - self._last_event >= quiet

    async def wait_idle(self, quiet: float = 0.3, timeout: float | None = 30.0) -> None:
        """Wait until :meth:`is_idle` holds (polling every 20 ms).

        Raises:
            asyncio.TimeoutError: not idle within ``timeout`` seconds.
        """

        async def poll() -> None:
            while not self.is_idle(quiet):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(poll(), timeout)

    def is_suspect(self, thread: str) -> bool:
        """Whether the thread waits for a history fetch to confirm its bubbles."""
        state = self._followed.get(thread)
        return bool(state and state.suspect)

    # ------------------------------------------------------------------ applying

    def _apply(self, message: dict[str, Any], reason: str | None) -> tuple[Change, ...]:
        """Feed one event to the engine; the single entry point for all input."""
        for hook in self._event_hooks:
            try:
                hook(message, reason)
            except Exception:  # a broken observer must not stop the socket
                log.exception("on_event callback failed")
        changes = self.reconciler.receive_message(message)
        self._last_event = time.monotonic()
        for change in changes:
            if isinstance(change, Gap):
                self._suspect(change.thread)
                self._request_sync(change.thread, "gap")
            elif isinstance(change, Rejected) and change.reason in _SUSPECT_REASONS:
                if change.thread is not None:
                    self._suspect(change.thread)
            for hook in self._change_hooks:
                try:
                    hook(change)
                except Exception:
                    log.exception("on_change callback failed")
            for queue in self._queues:
                queue.put_nowait(change)
        return changes

    def _on_socket_event(self, event: str, *args: Any) -> None:
        # Synchronous on purpose: python-socketio runs each delivery in its own task,
        # in arrival order, and a handler that never awaits cannot be overtaken.
        if self._closing:
            return
        data: Any = args[0] if len(args) == 1 else (list(args) if args else {})
        self.socket_events += 1
        self._apply({"event": event, "data": data}, None)
        if event == "agent_message" and isinstance(data, dict):
            thread = data.get("threadId")
            state = self._followed.get(thread) if isinstance(thread, str) else None
            if state is not None and state.suspect:
                if data.get("type") in _TURN_END_TYPES:
                    self._request_sync(thread, "turn_end")
                else:
                    self._arm_resync(thread, state)

    # ------------------------------------------------------------------ history

    def _suspect(self, thread: str) -> None:
        state = self._followed.get(thread)
        if state is None:
            return
        state.suspect = True
        state.generation += 1
        self._arm_resync(thread, state)

    def _arm_resync(self, thread: str, state: _ThreadSync) -> None:
        """(Re)start the quiet timer: a suspect thread refetches once it is quiet."""
        if state.timer is not None:
            state.timer.cancel()
        # Back off while fetches keep failing, or while quiet-timer fetches keep
        # finding a draft nothing else refreshes (a turn that went silent, a draft
        # that outlived its turn): then a fetch every 30 s, not every second.
        delay = min(self.resync_delay * 2 ** min(max(state.failures, state.streak), 5), 30.0)
        state.timer = asyncio.get_running_loop().call_later(
            delay, self._request_sync, thread, "resync"
        )

    def _request_sync(self, thread: str, reason: str) -> None:
        state = self._followed.get(thread)
        if state is None or self._closing:
            return
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if not self.connected:
            return  # the next connection fetches every followed thread anyway
        state.reason = reason
        if state.task is not None and not state.task.done():
            state.again = True
            return
        state.task = asyncio.create_task(self._sync_loop(thread, state))

    async def _sync_loop(self, thread: str, state: _ThreadSync) -> None:
        while True:
            state.again = False
            generation = state.generation
            reason = state.reason
            try:
                pages = await fetch_history(
                    self._session,
                    self.url,
                    self.user_id,
                    thread,
                    limit=self.history_limit,
                    max_pages=self.history_pages,
                    timeout=self.request_timeout,
                )
            except HistoryError as exc:
                state.failures += 1
                self.last_error = str(exc)
                log.warning("history of %s: %s", thread, exc)
                if self._followed.get(thread) is state:
                    state.suspect = True
                    self._arm_resync(thread, state)
                return
            if self._closing or self._followed.get(thread) is not state:
                return
            state.failures = 0
            state.fetches += 1
            provisional = False
            for page in reversed(pages):  # oldest page first
                provisional = provisional or any(_is_draft(m) for m in page)
                self.history_pages_applied += 1
                self._apply(
                    {"event": "history", "data": {"threadId": thread, "messages": page}}, reason
                )
            # Only the quiet timer backs off; a fetch after a turn ended, a gap or a
            # rejoin is news, and the next quiet fetch comes after resync_delay.
            state.streak = state.streak + 1 if provisional and reason == "resync" else 0
            if provisional or state.generation != generation:
                state.suspect = True
                self._arm_resync(thread, state)
            elif not state.again:
                state.suspect = False
                if state.timer is not None:
                    state.timer.cancel()
                    state.timer = None
            if not state.again or not self.connected:
                return

    # ------------------------------------------------------------------ connection

    async def _supervise(self) -> None:
        """Connect, join, sync; wait for the drop; back off; repeat until closed."""
        import socketio

        attempt = 0
        while not self._closing:
            self.status = "connecting" if self.connects == 0 else "reconnecting"
            # handle_sigint=False: python-socketio would otherwise take over SIGINT
            # (disconnect everything, then re-raise), racing the application's own
            # Ctrl-C handling; close() is how this client is stopped.
            sio = socketio.AsyncClient(
                reconnection=False, handle_sigint=False, logger=False, engineio_logger=False
            )
            disconnected = self._disconnected = asyncio.Event()
            sio.on("disconnect", lambda *args, ended=disconnected: ended.set())
            sio.on("*", self._on_socket_event)
            self._sio = sio
            try:
                await sio.connect(
                    self.url,
                    auth={"userId": self.user_id},
                    transports=self.transports,
                    socketio_path=self.socketio_path,
                    wait_timeout=max(5.0, self.join_timeout),
                )
            except Exception as exc:  # noqa: BLE001 - ConnectionError, OSError, timeouts...
                self.last_error = f"connect: {exc}"
                log.info("connect to %s failed: %s", self.url, exc)
                await self._drop_socket()
                attempt += 1
                await self._backoff(attempt)
                continue
            attempt = 0
            self.connects += 1
            self.last_error = None
            self.status = "connected"
            log.info("connected to %s as %s (connection %d)", self.url, self.user_id,
                     self.connects)
            reason = "join" if self.connects == 1 else "reconnect"
            try:
                await self._on_connected(sio, reason)
            except Exception:  # pragma: no cover - defensive: keep supervising
                log.exception("after connecting")
            await disconnected.wait()
            self._ready.clear()
            self._joined.clear()
            if self._closing:
                break
            self.disconnects += 1
            self.status = "reconnecting"
            log.info("disconnected from %s; reconnecting", self.url)
            await self._drop_socket()
            attempt += 1
            await self._backoff(attempt)

    async def _on_connected(self, sio: Any, reason: str) -> None:
        threads = list(self._followed)
        await asyncio.gather(*(self._join(sio, thread) for thread in threads))
        for thread in threads:
            self._suspect(thread)
            self._request_sync(thread, reason)
        tasks = [self._followed[t].task for t in threads if t in self._followed]
        for task in tasks:
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
        if self.connected and self._sio is sio:
            self._ready.set()

    async def _join(self, sio: Any, thread: str) -> None:
        acked = asyncio.get_running_loop().create_future()

        def on_ack(*args: Any) -> None:
            if not acked.done():
                acked.set_result(args)

        try:
            await sio.emit("join_room", f"thread:{thread}", callback=on_ack)
            if self.join_timeout > 0:
                await asyncio.wait_for(acked, self.join_timeout)
        except TimeoutError:
            log.debug("no join_room acknowledgement for %s; going on", thread)
        except Exception as exc:  # noqa: BLE001 - the connection dropped meanwhile
            log.info("join_room %s failed: %s", thread, exc)
            return
        self._joined.add(thread)

    async def _backoff(self, attempt: int) -> None:
        delay = min(self.reconnect_delay * 2 ** (attempt - 1), self.reconnect_delay_max)
        delay *= 1 + random.uniform(-0.25, 0.25)
        await asyncio.sleep(max(delay, 0.01))

    async def _drop_socket(self) -> None:
        sio, self._sio = self._sio, None
        if sio is None:
            return
        # Also after a server-side disconnect or a refused connection: it resets the
        # engine.io client, which closes its own HTTP session.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sio.disconnect(), 2.0)
