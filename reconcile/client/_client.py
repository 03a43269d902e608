"""The chat client: one pure :class:`~reconcile.Reconciler` behind a socket.

See the package docstring (``reconcile.client``) and ``docs/client.md`` for the
theory of operation; this module holds the policy: what is fed to the engine and
when history is fetched.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import attrs

from reconcile import (
    Bubble,
    BubbleAdded,
    BubbleUpdated,
    Change,
    Gap,
    LocalProtocolError,
    Origin,
    Reason,
    ReconcileError,
    Reconciler,
    Rejected,
    RunningTurn,
    Status,
    TurnClosed,
    TurnEnd,
    TurnOpened,
)

from ._connection import Connection
from ._history import HistoryError, fetch_history, is_draft
from ._payload import SafeJson, encode_event, socket_message, too_long_integers

__all__ = ["ChatClient", "ClientClosed", "Lagged", "Notice", "NoticeKind", "Unplaced"]

log = logging.getLogger("reconcile.client")

#: clowder-ai's own default user id: its history endpoint filters by user.
DEFAULT_USER = "default-user"

#: The attribute set on the log record of every :class:`Notice` (``record`` and
#: ``watch`` show notices themselves and drop those records).
NOTICE_LOG_MARK = "reconcile_notice"

#: A turn's server start time is trusted for "working… (Ns)" when it is at most
#: this old (ms); beyond, or in the future, the server clock is not ours.
_PLAUSIBLE_AGE_MS = 24 * 3600 * 1000

#: Refusals that mean "this client missed something", not "the server misbehaved".
_SUSPECT_REASONS = frozenset({Reason.UNBOUND_EVENT, Reason.STREAM_AFTER_DONE})
#: Raw event types after which a suspect thread refetches (the server stored the
#: turn's final text before sending them).
_TURN_END_TYPES = frozenset({"done", "error"})
#: History fetches that follow joining a room (``_on_connected``, ``follow``).
_JOIN_REASONS = frozenset({"join", "reconnect", "follow"})

EventHook = Callable[[dict[str, Any], "str | None"], Any]
ChangeHook = Callable[[Change], Any]


class ClientClosed(ReconcileError):
    """The client was closed: it will never be ready again."""


class ClientUsageError(LocalProtocolError, ValueError):
    """A bad argument to the client (an URL without http://, an empty thread id...).
    A ``ValueError`` too, as Python's own functions would raise."""


class NotFollowed(LocalProtocolError, KeyError):
    """A thread this client does not follow. A ``KeyError`` too."""


class NotReady(ReconcileError, TimeoutError):
    """``wait_ready`` ran out of time. A ``TimeoutError`` too."""


class MissingExtra(ReconcileError, ImportError):
    """The client's dependencies are not installed (the ``client`` extra)."""


class NoticeKind(enum.StrEnum):
    """What a :class:`Notice` reports."""

    #: History came back empty while the socket delivered events for the thread:
    #: most likely the wrong user id (the server filters history by user).
    HISTORY_EMPTY = "history_empty"
    #: After a reconnect, a thread that had bubbles came back empty or not found:
    #: the server lost it (a restart of a memory store). Its running turns were
    #: closed as interrupted.
    RESET = "reset"
    #: A socket event held an integer too long to convert; it was kept as text.
    UNREADABLE_NUMBER = "unreadable_number"


@attrs.frozen
class Notice:
    """Something the client noticed about the server that a user should see."""

    kind: NoticeKind
    thread: str | None
    text: str
    at: float = attrs.field(factory=time.time, eq=False)  # wall clock, for display


@attrs.frozen
class Unplaced:
    """A refused callback's text: never in a bubble, but not lost to the user."""

    thread: str
    cat: str | None
    text: str
    reason: Reason
    line: int  # the line of its first refusal
    message_id: str | None
    #: How many times it was refused: a history page that holds it again (every
    #: refresh of the thread) is refused again, one refusal per event (PROTOCOL).
    refused: int = 1


@attrs.frozen
class Lagged:
    """Yielded by :meth:`ChatClient.changes` in place of ``missed`` changes that a
    slow consumer let overflow its queue (the oldest were dropped)."""

    missed: int


class _ChangeQueue:
    """A bounded queue for one ``changes()`` iterator: the oldest drop when full."""

    def __init__(self, size: int) -> None:
        self.items: collections.deque[Change] = collections.deque()
        self.size = size
        self.missed = 0
        self.closed = False
        self.ready = asyncio.Event()

    def put(self, change: Change) -> None:
        if len(self.items) >= self.size:
            self.items.popleft()
            self.missed += 1
        self.items.append(change)
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()


class _ThreadSync:
    """History bookkeeping for one followed thread (see docs/client.md)."""

    def __init__(self) -> None:
        self.suspect = False
        self.generation = 0  # bumped by every trigger; a fetch clears only its own
        self.task: asyncio.Task[None] | None = None
        self.again = False  # another fetch was asked for while one was in flight
        self.reason = ""
        self.timer: asyncio.TimerHandle | None = None  # the quiet-time resync
        self.failures = 0  # history fetches that failed in a row
        self.streak = 0  # quiet-timer fetches in a row that still found drafts
        self.fetches = 0
        # Late join (section 10 rule 3 broken): refresh drafts while chunks are unbound.
        self.unbound = 0  # unbound_event refusals seen
        self.draft_timer: asyncio.TimerHandle | None = None
        self.draft_interval = 0.0
        self.draft_changed = False  # some fetch saw a draft change since the last draft refresh
        self.last_fetch = 0.0  # monotonic start of the last fetch
        # Empty history and resets.
        self.events = 0  # socket agent_messages for this thread
        self.last_count: int | None = None  # messages in the last fetch (None: none yet)
        self.ever_stored = False  # a fetch ever returned a message
        self.filtered = False  # warned: history empty while events came (wrong user?)
        self.after_reconnect = False  # the next fetch is the first since a reconnect
        self.resets = 0

    def cancel_timers(self) -> None:
        for name in ("timer", "draft_timer"):
            handle = getattr(self, name)
            if handle is not None:
                handle.cancel()
                setattr(self, name, None)


class ChatClient:
    """A socket.io chat client that keeps every followed thread's bubbles.

    Args:
        url: the server's base URL, ``http://host:port`` (socket.io and HTTP).
        user_id: sent as the handshake auth ``{"userId": ...}`` and as the
            ``X-Cat-Cafe-User`` header of history requests. The default is
            clowder-ai's own default user, ``default-user``: its history endpoint
            returns only that user's messages.
        threads: threads to follow from the start (more with :meth:`follow`).
        history_limit: messages per history page.
        history_pages: at most this many pages per fetch (older ones are skipped).
        reconnect_delay: first reconnection delay in seconds; doubles per failed or
            short-lived connection up to ``reconnect_delay_max``, with +-25% jitter.
        reconnect_delay_max: the largest reconnection delay.
        reconnect_stable: a connection that stays up this long resets the backoff.
        resync_delay: a suspect thread refetches after this many quiet seconds.
        draft_interval: while a thread's stream events bind to no turn (a late
            join on a server that breaks PROTOCOL section 10 rule 3), its history
            is refreshed this often, backing off (doubling) up to
            ``draft_interval_max`` while the drafts do not change.
        draft_interval_max: the slowest such refresh.
        queue_size: at most this many changes wait in each :meth:`changes`
            iterator; beyond, the oldest are dropped and a :class:`Lagged` says how
            many.
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
        user_id: str = DEFAULT_USER,
        *,
        threads: Iterable[str] = (),
        history_limit: int = 50,
        history_pages: int = 20,
        reconnect_delay: float = 0.5,
        reconnect_delay_max: float = 10.0,
        reconnect_stable: float = 5.0,
        resync_delay: float = 1.0,
        draft_interval: float = 1.0,
        draft_interval_max: float = 4.0,
        queue_size: int = 10_000,
        request_timeout: float = 10.0,
        transports: list[str] | None = None,
        socketio_path: str = "socket.io",
        reconciler: Reconciler | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ClientUsageError(f"url must start with http:// or https://, not {url!r}")
        if not isinstance(user_id, str) or not user_id:
            raise ClientUsageError("user_id must be a non-empty string")
        if history_limit < 1:
            raise ClientUsageError("history_limit must be at least 1")
        if queue_size < 1:
            raise ClientUsageError("queue_size must be at least 1")
        self.url = url.rstrip("/")
        self.user_id = user_id
        self.history_limit = history_limit
        self.history_pages = history_pages
        self.resync_delay = resync_delay
        self.draft_interval = draft_interval
        self.draft_interval_max = max(draft_interval_max, draft_interval)
        self.queue_size = queue_size
        self.request_timeout = request_timeout
        self.reconciler = reconciler if reconciler is not None else Reconciler()
        self._ready = asyncio.Event()  # connected, rooms joined, history applied
        self._connection = Connection(
            self.url,
            user_id,
            on_event=self._on_socket_event,
            on_connected=self._on_connected,
            on_disconnected=self._ready.clear,
            reconnect_delay=reconnect_delay,
            reconnect_delay_max=reconnect_delay_max,
            reconnect_stable=reconnect_stable,
            transports=transports,
            socketio_path=socketio_path,
        )

        self._followed: dict[str, _ThreadSync] = {}
        for thread in threads:
            self._followed.setdefault(thread, _ThreadSync())
        self._event_hooks: list[EventHook] = []
        self._change_hooks: list[ChangeHook] = []
        self._notice_hooks: list[Callable[[Notice], Any]] = []
        self._queues: list[_ChangeQueue] = []

        self._session: Any = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closed_event = asyncio.Event()
        self._closed = False
        self._last_event = time.monotonic()
        self._in_history = False  # applying a history page right now
        # Turn activity: when this client saw each running turn open (monotonic).
        self._opened_at: dict[tuple[str, str], float] = {}
        self._interrupted: dict[str, list[TurnClosed]] = {}
        # Bubbles whose text so far came from a draft (late join), -> the newest draft.
        self._drafted: dict[str, str] = {}
        self._unplaced: dict[tuple[str, str], Unplaced] = {}
        self._notices: collections.deque[Notice] = collections.deque(maxlen=100)

        #: Socket events received and history pages applied.
        self.socket_events = 0
        self.history_pages_applied = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ChatClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start connecting in the background (returns at once; see :meth:`wait_ready`)."""
        if self._closed:
            raise ClientClosed("this client was closed; make a new one")
        if self._supervisor is not None:
            return
        import aiohttp

        try:
            import socketio  # noqa: F401  (fail here, not in the background task)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingExtra(
                "the chat client needs python-socketio: pip install 'reconcile-chat[client]'"
            ) from exc
        self._session = aiohttp.ClientSession()
        self._supervisor = asyncio.create_task(self._connection.run(), name="reconcile-client")

    async def close(self) -> None:
        """Disconnect, stop every background task and end the ``changes()`` iterators."""
        if self._closed:
            return
        self._closed = True
        self._closed_event.set()
        for state in self._followed.values():
            state.cancel_timers()
        tasks = [s.task for s in self._followed.values() if s.task is not None]
        await self._connection.close()
        if self._supervisor is not None:
            tasks.append(self._supervisor)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._connection.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        for queue in self._queues:
            queue.close()

    # ------------------------------------------------------------------ state for a UI

    @property
    def status(self) -> str:
        """``idle``, ``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
        return "closed" if self._closed else self._connection.status

    @property
    def connected(self) -> bool:
        return not self._closed and self._connection.connected

    @property
    def connects(self) -> int:
        """Successful connections (1 + reconnects)."""
        return self._connection.connects

    @property
    def disconnects(self) -> int:
        """Connections that ended (dropped or refused mid-session)."""
        return self._connection.disconnects

    @property
    def reconnect_delays(self) -> tuple[float, ...]:
        """The delays slept before each reconnection attempt (the last 100)."""
        return tuple(self._connection.delays)

    @property
    def last_error(self) -> str | None:
        """The last connection or history error, for display; ``None`` when healthy."""
        return self._connection.last_error

    @last_error.setter
    def last_error(self, value: str | None) -> None:
        self._connection.last_error = value

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

    def display_text(self, bubble: Bubble) -> str:
        """The text to show for ``bubble``: its own, or the server's newest draft.

        A client that joined mid-turn on a server that does not let it bind the
        turn's chunks (PROTOCOL section 10 rule 3) has the turn's text only from
        history drafts; the engine keeps the first draft (a draft never overwrites
        a bubble), and the client refreshes the draft about every second. This
        returns that newest draft while the bubble still streams and nothing live
        reached it.
        """
        if bubble.status is Status.STREAMING:
            return self._drafted.get(bubble.id, bubble.text)
        return bubble.text

    def running(self, thread: str) -> tuple[tuple[RunningTurn, float], ...]:
        """The thread's running turns with their elapsed seconds, in opening order.

        Elapsed time counts from the turn's start on the server
        (:attr:`~reconcile.RunningTurn.since`, ms) when that is plausible against
        this machine's clock: not in the future and at most a day old. Otherwise
        (another clock, a server without timestamps) it counts from when this
        client saw the turn open, which for a client that joined mid-turn is later
        than the turn's start.
        """
        now = time.monotonic()
        now_ms = time.time() * 1000
        out = []
        for turn in self.reconciler.running_turns(thread):
            age_ms = now_ms - turn.since
            if 0 <= age_ms <= _PLAUSIBLE_AGE_MS:
                elapsed = age_ms / 1000
            else:
                elapsed = max(now - self._opened_at.get((thread, turn.turn), now), 0.0)
            out.append((turn, elapsed))
        return tuple(out)

    def interrupted(self, thread: str) -> tuple[TurnClosed, ...]:
        """Turns of ``thread`` this client closed as interrupted (server reset)."""
        return tuple(self._interrupted.get(thread, ()))

    def unplaced(self, thread: str | None = None) -> tuple[Unplaced, ...]:
        """Refused callbacks (their text and why), oldest first; one per message id."""
        return tuple(u for u in self._unplaced.values() if thread is None or u.thread == thread)

    @property
    def notices(self) -> tuple[Notice, ...]:
        """The last 100 notices (wrong user id?, server reset, ...), oldest first."""
        return tuple(self._notices)

    def resets(self, thread: str) -> int:
        """How many times the server was seen to lose ``thread``."""
        state = self._followed.get(thread)
        return state.resets if state is not None else 0

    def is_following_drafts(self, thread: str) -> bool:
        """Whether the thread's history is being refreshed for unbound stream events."""
        state = self._followed.get(thread)
        if state is None:
            return False
        in_flight = state.task is not None and not state.task.done() and state.reason == "draft"
        return state.draft_timer is not None or in_flight

    # ------------------------------------------------------------------ hooks

    def on_change(self, callback: ChangeHook) -> None:
        """Call ``callback(change)`` for every change the engine reports, in order."""
        self._change_hooks.append(callback)

    def on_event(self, callback: EventHook) -> None:
        """Call ``callback(message, reason)`` for every event, just before it is applied.

        ``message`` is ``{"event": name, "data": payload}`` (plus ``"args"`` when the
        server sent several arguments). ``reason`` is ``None`` for a socket event and
        says why for a history page (``"join"``, ``"reconnect"``, ``"follow"``,
        ``"gap"``, ``"turn_end"``, ``"resync"``, ``"draft"``, ``"verify"``,
        ``"manual"``). Writing out :func:`~reconcile.client.encode_event` of each, in
        this order, gives a trace that replays to the client's engine exactly.
        """
        self._event_hooks.append(callback)

    def on_notice(self, callback: Callable[[Notice], Any]) -> None:
        """Call ``callback(notice)`` for every :class:`Notice` (reset, wrong user, ...)."""
        self._notice_hooks.append(callback)

    async def changes(self) -> AsyncIterator[Change | Lagged]:
        """Iterate over every change from now on; ends when the client closes.

        Each iterator has its own queue of at most ``queue_size`` changes, so a slow
        reader never blocks the socket. When it overflows, the oldest changes are
        dropped and the iterator yields one :class:`Lagged` (how many) where they
        were; the reader should then re-read the bubbles it shows. After
        :meth:`close` it ends at once.
        """
        if self._closed:
            return
        queue = _ChangeQueue(self.queue_size)
        self._queues.append(queue)
        try:
            while True:
                if queue.missed:
                    missed, queue.missed = queue.missed, 0
                    yield Lagged(missed)
                    continue
                if queue.items:
                    yield queue.items.popleft()
                    continue
                if queue.closed:
                    return
                queue.ready.clear()
                await queue.ready.wait()
        finally:
            with contextlib.suppress(ValueError):
                self._queues.remove(queue)

    # ------------------------------------------------------------------ following

    async def follow(self, thread: str) -> None:
        """Follow a thread: join its room and apply its history.

        When connected, returns after the first history fetch was applied;
        otherwise the thread is joined on the next connection.
        """
        if not isinstance(thread, str) or not thread:
            raise ClientUsageError("a thread id is a non-empty string")
        if thread in self._followed:
            return
        state = self._followed[thread] = _ThreadSync()
        if self.connected:
            await self._connection.emit("join_room", f"thread:{thread}")
            self._suspect(thread)
            self._request_sync(thread, "follow")
            if state.task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(state.task)

    async def unfollow(self, thread: str) -> None:
        """Leave a thread's room. Its bubbles stay in the engine."""
        state = self._followed.pop(thread, None)
        if state is None:
            return
        state.cancel_timers()
        if state.task is not None:
            state.task.cancel()
        await self._connection.emit("leave_room", f"thread:{thread}")

    async def sync(self, thread: str, reason: str = "manual") -> None:
        """Fetch and apply the thread's history now (coalesced with one in flight)."""
        if thread not in self._followed:
            raise NotFollowed(f"thread {thread!r} is not followed")
        self._request_sync(thread, reason)
        task = self._followed[thread].task
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until connected, every followed room joined and its history applied.

        Raises:
            TimeoutError: not ready within ``timeout`` seconds.
            ClientClosed: the client is (or gets) closed first.
        """
        if self._closed:
            raise ClientClosed("the client is closed")
        ready = asyncio.ensure_future(self._ready.wait())
        closed = asyncio.ensure_future(self._closed_event.wait())
        try:
            done, _ = await asyncio.wait({ready, closed}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            closed.cancel()
        if self._closed:
            raise ClientClosed("the client was closed before it was ready")
        if not done:
            raise NotReady(f"not ready within {timeout} s")

    def is_idle(self, quiet: float = 0.3) -> bool:
        """Connected, nothing fetched or suspect, and no event for ``quiet`` seconds."""
        if not self.connected or not self._ready.is_set():
            return False
        for state in self._followed.values():
            if state.suspect or (state.task is not None and not state.task.done()):
                return False
            if state.draft_timer is not None:
                return False
        return time.monotonic() - self._last_event >= quiet

    async def wait_idle(self, quiet: float = 0.3, timeout: float | None = 30.0) -> None:
        """Wait until :meth:`is_idle` holds (polling every 20 ms).

        Raises:
            TimeoutError: not idle within ``timeout`` seconds.
            ClientClosed: the client is closed.
        """

        async def poll() -> None:
            while not self.is_idle(quiet):
                if self._closed:
                    raise ClientClosed("the client is closed")
                await asyncio.sleep(0.02)

        await asyncio.wait_for(poll(), timeout)

    def is_suspect(self, thread: str) -> bool:
        """Whether the thread waits for a history fetch to confirm its bubbles."""
        state = self._followed.get(thread)
        return bool(state and state.suspect)

    # ------------------------------------------------------------------ applying

    def _apply(self, message: dict[str, Any], reason: str | None) -> tuple[Change, ...]:
        """Feed one event to the engine; the single entry point for all input.

        The engine gets the exact line a recorder writes (:func:`encode_event`), so a
        recording replays to this engine's state by construction.
        """
        for hook in self._event_hooks:
            try:
                hook(message, reason)
            except Exception:  # a broken observer must not stop the socket
                log.exception("on_event callback failed")
        changes = self.reconciler.receive_line(encode_event(message))
        self._last_event = time.monotonic()
        self._observe(changes, message, reason)
        self._dispatch(changes)
        return changes

    def _dispatch(self, changes: Iterable[Change]) -> None:
        for change in changes:
            for hook in self._change_hooks:
                try:
                    hook(change)
                except Exception:
                    log.exception("on_change callback failed")
            for queue in self._queues:
                queue.put(change)

    def _observe(
        self, changes: tuple[Change, ...], message: dict[str, Any], reason: str | None
    ) -> None:
        """What the client itself does about the engine's changes."""
        for change in changes:
            if isinstance(change, Gap):
                self._suspect(change.thread)
                self._request_sync(change.thread, "gap")
            elif isinstance(change, Rejected):
                if change.thread is None:
                    continue
                if change.reason in _SUSPECT_REASONS:
                    self._suspect(change.thread)
                if change.reason is Reason.UNBOUND_EVENT:
                    self._unbound(change.thread)
                elif change.reason is Reason.CALLBACK_WITHOUT_INVOCATION:
                    self._keep_unplaced(change, message)
            elif isinstance(change, TurnOpened):
                self._opened_at[(change.thread, change.turn)] = time.monotonic()
            elif isinstance(change, TurnClosed):
                self._opened_at.pop((change.thread, change.turn), None)
                if change.how is TurnEnd.INTERRUPTED:
                    self._interrupted.setdefault(change.thread, []).append(change)
            elif isinstance(change, BubbleUpdated) and reason is None:
                # Live text reached a bubble that showed a draft: it is live now.
                self._drafted.pop(change.bubble.id, None)

    def _keep_unplaced(self, change: Rejected, message: dict[str, Any]) -> None:
        data = message.get("data")
        if not isinstance(data, dict):
            return
        if message.get("event") == "history":
            # Which stored callback of the page: the refusal names its id.
            for stored in data.get("messages") or ():
                if not (isinstance(stored, dict) and stored.get("origin") == "callback"):
                    continue
                message_id = stored.get("id")
                if isinstance(message_id, str) and repr(message_id) in change.detail:
                    self._add_unplaced(change, stored.get("catId"), stored.get("content"),
                                       message_id)
                    return
            return
        message_id = data.get("messageId")
        self._add_unplaced(change, data.get("catId"), data.get("content"),
                           message_id if isinstance(message_id, str) else None)

    def _add_unplaced(
        self, change: Rejected, cat: Any, text: Any, message_id: str | None
    ) -> None:
        assert change.thread is not None
        key = (change.thread, message_id or f"line {change.line}")
        known = self._unplaced.get(key)
        if known is not None:
            # The same callback again (a refreshed page holds it): one entry, counted.
            self._unplaced[key] = attrs.evolve(known, refused=known.refused + 1)
            return
        self._unplaced[key] = Unplaced(
            thread=change.thread,
            cat=cat if isinstance(cat, str) else None,
            text=text if isinstance(text, str) else "",
            reason=change.reason,
            line=change.line,
            message_id=message_id,
        )

    def _notice(self, kind: NoticeKind, thread: str | None, text: str) -> None:
        notice = Notice(kind, thread, text)
        self._notices.append(notice)
        # Marked, so a front end that shows notices itself can drop this log record.
        log.warning("%s", text, extra={NOTICE_LOG_MARK: True})
        for hook in self._notice_hooks:
            try:
                hook(notice)
            except Exception:
                log.exception("on_notice callback failed")

    def _on_socket_event(self, event: str, args: tuple[Any, ...]) -> None:
        # Synchronous on purpose: python-socketio runs each delivery in arrival
        # order, and a handler that never awaits cannot be overtaken.
        if self._closed:
            return
        message = socket_message(event, args)
        huge = too_long_integers(args)
        if huge:
            self._notice(
                NoticeKind.UNREADABLE_NUMBER, None,
                f"socket event {event!r} held {huge} integer(s) of more than 4,300 digits; "
                "kept as text (the engine refuses such a field)",
            )
        self.socket_events += 1
        self._apply(message, None)
        data = message["data"]
        if event != "agent_message" or not isinstance(data, dict):
            return
        thread = data.get("threadId")
        state = self._followed.get(thread) if isinstance(thread, str) else None
        if state is None:
            return
        state.events += 1
        kind = data.get("type")
        if state.suspect:
            if kind in _TURN_END_TYPES:
                self._request_sync(thread, "turn_end")
            else:
                self._arm_resync(thread, state)
        elif kind in _TURN_END_TYPES and state.last_count == 0 and not state.filtered:
            # History was empty, yet this thread is live: the server stored the
            # turn's text before this `done`, so a fetch now tells a wrong user id.
            self._request_sync(thread, "verify")

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

    def _unbound(self, thread: str) -> None:
        """A stream event of ``thread`` bound to no turn: follow its drafts.

        The quiet timer never fires while such a turn streams (every chunk restarts
        it), so a late joiner would show the first draft until the turn's end. This
        timer is not restarted by events: one refresh per interval at most.
        """
        state = self._followed.get(thread)
        if state is None or self._closed:
            return
        state.unbound += 1
        if state.draft_timer is not None:
            return
        if not self._shows_draft(thread) and self.reconciler.running_turns(thread):
            # Every running turn's bubble is placed (a callback bound it, or live text
            # reached it): a draft would change nothing on screen.
            return
        if state.task is not None and not state.task.done() and state.reason == "draft":
            return  # the refresh in flight re-arms if more came meanwhile
        if state.draft_interval <= 0:
            state.draft_interval = self.draft_interval
        delay = max(state.last_fetch + state.draft_interval - time.monotonic(), 0.0)
        state.draft_timer = asyncio.get_running_loop().call_later(
            delay, self._draft_refresh, thread
        )

    def _draft_refresh(self, thread: str) -> None:
        state = self._followed.get(thread)
        if state is None:
            return
        state.draft_timer = None
        self._request_sync(thread, "draft")

    def _request_sync(self, thread: str, reason: str) -> None:
        state = self._followed.get(thread)
        if state is None or self._closed:
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
            state.last_fetch = time.monotonic()
            unbound_before = state.unbound
            try:
                pages = await fetch_history(
                    self._session,
                    self.url,
                    self.user_id,
                    thread,
                    limit=self.history_limit,
                    max_pages=self.history_pages,
                    timeout=self.request_timeout,
                    loads=SafeJson.loads,
                )
            except HistoryError as exc:
                if self._closed or self._followed.get(thread) is not state:
                    return
                if exc.status == 404 and state.after_reconnect:
                    state.after_reconnect = False
                    self._reset(thread, state, "history answers 404 (not found)")
                    state.failures = 0
                    state.suspect = False
                    return
                state.failures += 1
                self.last_error = str(exc)
                log.warning("history of %s: %s", thread, exc)
                state.suspect = True
                self._arm_resync(thread, state)
                return
            if self._closed or self._followed.get(thread) is not state:
                return
            state.failures = 0
            state.fetches += 1
            provisional = changed = False
            for page in reversed(pages):  # oldest page first
                page_drafts = [m for m in page if is_draft(m)]
                provisional = provisional or bool(page_drafts)
                self.history_pages_applied += 1
                self._in_history = True
                try:
                    changes = self._apply(
                        {"event": "history", "data": {"threadId": thread, "messages": page}},
                        reason,
                    )
                finally:
                    self._in_history = False
                changed = self._follow_drafts(thread, page_drafts, changes) or changed
            self._prune_drafted(thread)
            # After the pages: an interruption (reset) then follows the empty page
            # that showed it, in a recording too.
            self._check_empty(thread, state, sum(len(page) for page in pages))
            # Whichever fetch saw the draft change (a quiet-timer resync often comes
            # between two draft refreshes), the draft is still moving.
            state.draft_changed = state.draft_changed or changed
            if not self._shows_draft(thread):
                self._stop_drafts(state)  # the stored message (or live text) took over
            elif reason == "draft":
                self._pace_drafts(thread, state, unbound_before)
            # Only the quiet timer backs off; a fetch after a turn ended, a gap or a
            # rejoin is news, and the next quiet fetch comes after resync_delay.
            state.streak = state.streak + 1 if provisional and reason == "resync" else 0
            # A (re)join's page may have been served before the server put this
            # socket in the room: what was stored and broadcast in between reached
            # neither. One more fetch once the thread is quiet closes that window.
            joined = reason in _JOIN_REASONS
            if provisional or joined or state.generation != generation:
                state.suspect = True
                self._arm_resync(thread, state)
            elif not state.again:
                state.suspect = False
                if state.timer is not None:
                    state.timer.cancel()
                    state.timer = None
            if not state.again or not self.connected:
                return

    def _check_empty(self, thread: str, state: _ThreadSync, count: int) -> None:
        """Tell a reset (after a reconnect) and a wrong user id (empty but live)."""
        after_reconnect, state.after_reconnect = state.after_reconnect, False
        state.last_count = count
        if count:
            state.ever_stored = True
            return
        had_bubbles = bool(self.bubbles(thread))
        if after_reconnect and had_bubbles and not state.filtered:
            self._reset(thread, state, "history is empty after a reconnect")
        elif state.events and not state.filtered:
            state.filtered = True
            self._notice(
                NoticeKind.HISTORY_EMPTY, thread,
                f"history of {thread} is empty although the socket delivered "
                f"{state.events} events for it: the server filters history by user; "
                f"is the user id {self.user_id!r} right? (clowder's default is "
                f"{DEFAULT_USER!r}; set it with --user)",
            )

    def _reset(self, thread: str, state: _ThreadSync, why: str) -> None:
        """The server lost the thread: say so, and close its running turns."""
        state.resets += 1
        state.events = 0  # what the lost thread got; empty pages after it are no hint
        changes = self.reconciler.interrupt(thread)
        self._observe(changes, {}, "reset")
        self._dispatch(changes)
        closed = sum(isinstance(c, TurnClosed) for c in changes)
        self._notice(
            NoticeKind.RESET, thread,
            f"server reset: thread {thread} was lost ({why}); "
            f"{closed} running turn(s) closed as interrupted",
        )

    def _follow_drafts(
        self, thread: str, drafts: list[dict[str, Any]], changes: tuple[Change, ...]
    ) -> bool:
        """Remember the newest draft text of bubbles that only drafts fill.

        Returns whether a remembered text changed.
        """
        changed = False
        if not drafts:
            return changed
        added = {c.bubble.id for c in changes if isinstance(c, BubbleAdded)}
        primaries = {
            b.invocation: b
            for b in self.bubbles(thread)
            if b.invocation is not None and b.message_id is None and b.origin is Origin.STREAM
        }
        for draft in drafts:
            content = draft.get("content")
            extra = draft.get("extra")
            stream = extra.get("stream") if isinstance(extra, dict) else None
            turn = stream.get("invocationId") if isinstance(stream, dict) else None
            if not (isinstance(turn, str) and turn):
                turn = str(draft.get("id"))[len("draft-"):] or None
            bubble = primaries.get(turn)
            if bubble is None or bubble.status is not Status.STREAMING:
                continue
            if bubble.id in added or bubble.id in self._drafted:
                text = content if isinstance(content, str) else ""
                changed = changed or self._drafted.get(bubble.id) != text
                self._drafted[bubble.id] = text
        return changed

    def _shows_draft(self, thread: str) -> bool:
        """Whether a bubble of ``thread`` shows a history draft (see display_text)."""
        return any(
            b.id in self._drafted and b.status is Status.STREAMING for b in self.bubbles(thread)
        )

    def _stop_drafts(self, state: _ThreadSync) -> None:
        if state.draft_timer is not None:
            state.draft_timer.cancel()
            state.draft_timer = None
        state.draft_interval = 0.0
        state.draft_changed = False

    def _prune_drafted(self, thread: str) -> None:
        for bubble in self.bubbles(thread):
            if bubble.id in self._drafted and bubble.status is not Status.STREAMING:
                del self._drafted[bubble.id]

    def _pace_drafts(self, thread: str, state: _ThreadSync, unbound_before: int) -> None:
        """After a draft refresh: another one in an interval while chunks stay unbound.

        The interval is ``draft_interval`` while the drafts change (seen by this
        fetch or by any fetch since the previous refresh), and grows (x2, up to
        ``draft_interval_max``) only while they do not (a turn that went quiet, a
        server whose draft stopped). It stops when no event was unbound since the
        refresh began, and (in ``_sync_loop``) as soon as no bubble shows a draft:
        the turn's stored message closed it, or its chunks bind now.
        """
        if state.draft_changed or state.draft_interval <= 0:
            state.draft_interval = self.draft_interval
        else:
            state.draft_interval = min(state.draft_interval * 2, self.draft_interval_max)
        state.draft_changed = False
        if state.unbound > unbound_before and state.draft_timer is None:
            delay = max(state.last_fetch + state.draft_interval - time.monotonic(), 0.0)
            state.draft_timer = asyncio.get_running_loop().call_later(
                delay, self._draft_refresh, thread
            )

    # ------------------------------------------------------------------ connection

    async def _on_connected(self, reason: str) -> None:
        """Join every room without waiting for an acknowledgement, then fetch history.

        clowder never acknowledges ``join_room``, so waiting would cost a timeout
        per join. Events that arrive before the first page are applied as they come
        and the page after them (see docs/client.md, "Joining").
        """
        self._ready.clear()
        threads = list(self._followed)
        for thread in threads:
            await self._connection.emit("join_room", f"thread:{thread}")
        for thread in threads:
            state = self._followed.get(thread)
            if state is None:
                continue
            state.after_reconnect = reason == "reconnect"
            self._suspect(thread)
            self._request_sync(thread, reason)
        tasks = [self._followed[t].task for t in threads if t in self._followed]
        for task in tasks:
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
        if self.connected:
            self._ready.set()
