"""The socket: connecting, staying connected, and reconnecting with backoff.

python-socketio's own reconnection is off: it does not reconnect after a
*server-initiated* disconnect (it treats ``sio.disconnect(sid)`` as deliberate),
which is exactly what a server restart or a load balancer drain looks like. A
supervisor task here reconnects after any disconnect or refused connection.

Backoff: ``reconnect_delay`` doubling per failed or short-lived connection up to
``reconnect_delay_max``, +-25% jitter. It starts over only once a connection has
stayed up for ``reconnect_stable`` seconds: a server that accepts and drops at once
would otherwise be hammered every ``reconnect_delay`` forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._payload import SafeJson

__all__ = ["Connection", "backoff_delay"]

log = logging.getLogger("reconcile.client")

EventHandler = Callable[[str, tuple[Any, ...]], None]
ConnectedHandler = Callable[[str], Awaitable[None]]


def backoff_delay(attempt: int, first: float, largest: float) -> float:
    """The delay before reconnection ``attempt`` (1-based), without jitter."""
    return min(first * 2 ** max(attempt - 1, 0), largest)


def _packet_class() -> type:
    """socket.io packets decoded with :class:`SafeJson`, for this client only.

    (python-socketio's ``json=`` option would set it on the shared ``Packet`` class,
    for every client and server of the process.)
    """
    from socketio import packet

    class Packet(packet.Packet):
        json = SafeJson

    return Packet


class Connection:
    """One logical connection to a socket.io server, kept up by a supervisor task.

    Args:
        url: the server's base URL.
        user_id: sent as the handshake auth ``{"userId": ...}``.
        on_event: ``on_event(name, args)`` for every socket event, synchronously, in
            delivery order.
        on_connected: awaited after each successful connection with ``"join"`` (the
            first) or ``"reconnect"``.
        on_disconnected: called when a connection ends.
    """

    def __init__(
        self,
        url: str,
        user_id: str,
        *,
        on_event: EventHandler,
        on_connected: ConnectedHandler,
        on_disconnected: Callable[[], None] = lambda: None,
        reconnect_delay: float = 0.5,
        reconnect_delay_max: float = 10.0,
        reconnect_stable: float = 5.0,
        connect_timeout: float = 5.0,
        transports: list[str] | None = None,
        socketio_path: str = "socket.io",
    ) -> None:
        self.url = url
        self.user_id = user_id
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self.reconnect_delay = reconnect_delay
        self.reconnect_delay_max = reconnect_delay_max
        self.reconnect_stable = reconnect_stable
        self.connect_timeout = connect_timeout
        self.transports = transports
        self.socketio_path = socketio_path
        self._sio: Any = None
        self._closing = False
        self._disconnected = asyncio.Event()
        #: ``idle``, ``connecting``, ``connected``, ``reconnecting``, ``closed``.
        self.status = "idle"
        self.connects = 0
        self.disconnects = 0
        #: The backoff attempt of the next reconnection (0: connected and stable).
        self.attempt = 0
        #: The delays slept before reconnecting, in order (bounded), for a UI and tests.
        self.delays: list[float] = []
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self.status == "connected"

    async def emit(self, event: str, data: Any) -> bool:
        """Send one event (no acknowledgement awaited). False when not connected."""
        sio = self._sio
        if sio is None or not self.connected:
            return False
        try:
            await sio.emit(event, data)
        except Exception as exc:  # noqa: BLE001 - the connection dropped meanwhile
            log.info("emit %s failed: %s", event, exc)
            return False
        return True

    async def run(self) -> None:
        """Connect, wait for the drop, back off, repeat until :meth:`close`."""
        import socketio

        packet_class = _packet_class()
        while not self._closing:
            self.status = "connecting" if self.connects == 0 else "reconnecting"
            # handle_sigint=False: python-socketio would otherwise take over SIGINT,
            # racing the application's own Ctrl-C handling.
            sio = socketio.AsyncClient(
                reconnection=False, handle_sigint=False, logger=False,
                engineio_logger=False, serializer=packet_class,
            )
            disconnected = self._disconnected = asyncio.Event()
            sio.on("disconnect", lambda *args, ended=disconnected: ended.set())
            sio.on("*", lambda event, *args: self._on_event(event, args))
            self._sio = sio
            try:
                await sio.connect(
                    self.url,
                    auth={"userId": self.user_id},
                    transports=self.transports,
                    socketio_path=self.socketio_path,
                    wait_timeout=self.connect_timeout,
                )
            except Exception as exc:  # noqa: BLE001 - ConnectionError, OSError, timeouts...
                self.last_error = f"connect: {exc}"
                log.info("connect to %s failed: %s", self.url, exc)
                await self._drop()
                await self._backoff()
                continue
            up_since = time.monotonic()
            self.connects += 1
            self.last_error = None
            self.status = "connected"
            log.info("connected to %s as %s (connection %d)", self.url, self.user_id,
                     self.connects)
            try:
                await self._on_connected("join" if self.connects == 1 else "reconnect")
            except Exception:  # pragma: no cover - defensive: keep supervising
                log.exception("after connecting")
            await disconnected.wait()
            self._on_disconnected()
            if self._closing:
                break
            self.disconnects += 1
            self.status = "reconnecting"
            log.info("disconnected from %s; reconnecting", self.url)
            await self._drop()
            if time.monotonic() - up_since >= self.reconnect_stable:
                self.attempt = 0
            await self._backoff()

    async def close(self) -> None:
        self._closing = True
        self.status = "closed"
        self._disconnected.set()
        await self._drop()

    async def _backoff(self) -> None:
        self.attempt += 1
        delay = backoff_delay(self.attempt, self.reconnect_delay, self.reconnect_delay_max)
        delay = max(delay * (1 + random.uniform(-0.25, 0.25)), 0.01)
        self.delays = [*self.delays[-99:], delay]
        await asyncio.sleep(delay)

    async def _drop(self) -> None:
        sio, self._sio = self._sio, None
        if sio is None:
            return
        # Also after a server-side disconnect or a refused connection: it resets the
        # engine.io client, which closes its own HTTP session.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sio.disconnect(), 2.0)
