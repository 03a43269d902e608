"""``reconcile record``: write every event a live server sends to a trace file.

Every socket event (any name) and every history page the client applied, in order,
one JSON line each, flushed as it goes; ``reconcile replay FILE`` then shows exactly
the bubbles the client had. Ctrl-C, SIGTERM or ``--duration`` stop it cleanly.
The work is done by :mod:`reconcile.client`; this module parses arguments. It
imports only the standard library at import time, so the ``reconcile`` command
works without the client extra; the command then says how to install it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar

from ._common import EXIT_OK, UsageError, summary_line

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

    from reconcile.client import ChatClient, Recorder

HELP = "record a live server's events to a trace file"
DESCRIPTION = (
    "Connect to a live chat server and write every event the client applies (socket "
    "events and history pages, in order) to a trace file, one JSON line each. "
    "`reconcile replay FILE` then shows exactly what the client showed. Stop with Ctrl-C."
)

_INSTALL = "pip install 'reconcile-chat[client]'"
T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    live_arguments(parser)
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE",
        help="trace file to write (- for stdout)",
    )


def live_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``record`` and ``watch`` share."""
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8765")
    parser.add_argument(
        "--thread", required=True, action="append", metavar="ID",
        help="thread to follow (repeat for several)",
    )
    parser.add_argument(
        "--user", default="default-user",
        help="user id for the handshake and history (default: default-user, clowder's "
        "own default; the server returns only this user's history)",
    )
    parser.add_argument(
        "--history-limit", type=int, default=50, metavar="N", help="messages per history page"
    )
    parser.add_argument(
        "--transport", choices=("polling", "websocket"),
        help="force one socket.io transport (default: polling upgraded to websocket)",
    )
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this many seconds"
    )


def require_client(command: str) -> None:
    try:
        # The client's own classes use attrs, which only the client extra installs
        # (aiohttp needs it today too, but that is aiohttp's business).
        import attrs  # noqa: F401
        import aiohttp  # noqa: F401
        import rich  # noqa: F401
        import socketio  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "a client dependency"
        raise UsageError(f"{command} needs {missing}: {_INSTALL}") from None


def client_from_args(args: argparse.Namespace) -> ChatClient:
    from reconcile.client import ChatClient

    if not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url must start with http:// or https://, not {args.url!r}")
    threads = list(dict.fromkeys(args.thread))
    if any(not t for t in threads):
        raise UsageError("--thread needs a non-empty id")
    try:
        return ChatClient(
            args.url,
            args.user,
            threads=threads,
            history_limit=args.history_limit,
            transports=[args.transport] if args.transport else None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """``asyncio.run(main(stop))``, with SIGINT/SIGTERM setting ``stop``."""
    import asyncio  # here, not at module level: building the parser must stay light

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        try:
            return await main(stop)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    return asyncio.run(runner())


def exit_summary(client: ChatClient) -> list[str]:
    """The closing lines of ``record`` and ``watch``: totals, refusals, notices."""
    from reconcile.client.view import refusal_summary

    lines = [summary_line(client.reconciler), *refusal_summary(client)]
    lines.extend(f"notice: {notice.text}" for notice in client.notices)
    return lines


def run(args: argparse.Namespace, out: IO[str]) -> int:
    require_client("record")
    from reconcile.client import record

    client = client_from_args(args)
    if args.output == "-":
        sink, close_sink, report = out, False, sys.stderr
    else:
        try:
            sink = open(args.output, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        close_sink, report = True, out

    def main(stop: asyncio.Event) -> Awaitable[Recorder]:
        return record(client, sink, stop, duration=args.duration, status=sys.stderr)

    started = time.monotonic()
    try:
        recorder: Any = run_until_signal(main)
    finally:
        if close_sink:
            sink.close()
    if recorder.error is not None:
        raise UsageError(f"cannot write {args.output}: {recorder.error.strerror or recorder.error}")
    seconds = time.monotonic() - started
    reconnects = max(client.connects - 1, 0)
    print(
        f"recorded {recorder.lines} events ({recorder.socket_events} from the socket, "
        f"{recorder.history_pages} history pages) to {args.output} in {seconds:.1f} s; "
        f"{client.connects} connections, {reconnects} reconnects",
        file=report,
    )
    for line in [*exit_summary(client), *interruption_lines(client)]:
        print(line, file=report)
    return EXIT_OK


def interruption_lines(client: ChatClient) -> list[str]:
    """What a replay of the recording will not show: the client's own decisions.

    A turn closed as interrupted after a server reset is the client's call
    (``Reconciler.interrupt``), not an event the server sent, so the trace does not
    hold it (the protocol has no such event) and a replay shows the turn still
    running, its bubble still streaming. Each line names where the replay differs:
    thread, turn and the trace line after which the client closed it.
    """
    closed = [c for thread in client.threads for c in client.interrupted(thread)]
    if not closed:
        return []
    lines = [
        f"not in the trace: {len(closed)} turn(s) this client closed as interrupted "
        "(a server reset is the client's judgement, not an event); a replay shows them "
        "still running:"
    ]
    lines.extend(
        f"  thread {c.thread}, turn {c.turn} ({c.cat}): interrupted after line {c.line}"
        for c in closed
    )
    return lines
