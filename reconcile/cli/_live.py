"""What ``reconcile record`` and ``reconcile watch`` run: the live client on the command line.

* ``record --url URL --thread ID -o FILE`` writes every event the client applies to
  its engine, one JSON line each (PROTOCOL section 1), flushed as it goes: every
  socket event (any name) and every history page it fetched, in the order applied.
  So ``reconcile replay FILE`` shows exactly the bubbles the client had, with the
  same bubble ids and refusal line numbers. Ctrl-C (or SIGTERM, or ``--duration``)
  stops it cleanly and prints a summary.
* ``watch --url URL --thread ID`` shows the threads' bubbles updating live (rich).

This module imports only the standard library and the engine at import time, so the
``reconcile`` command works without the client extra; the two commands then say
how to install it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from reconcile import Bubble, Origin, Status

from ._common import EXIT_OK, UsageError, bubble_details, dumps, summary_line

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console, RenderableType

    from reconcile.client import ChatClient

__all__ = ["common_arguments", "fit_screen", "record", "render_screen", "render_threads", "run_record", "run_watch", "watch"]

_INSTALL = "pip install 'reconcile[client]'"


def _require_client(command: str) -> None:
    try:
        import aiohttp  # noqa: F401
        import rich  # noqa: F401
        import socketio  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "a client dependency"
        raise UsageError(f"{command} needs {missing}: {_INSTALL}") from None


def _client_from_args(args: argparse.Namespace) -> ChatClient:
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


def _stop_on_signals(stop: asyncio.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGINT/SIGTERM; returns a function that restores the defaults."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass

    def restore() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return restore


async def _until(stop: asyncio.Event, duration: float | None) -> None:
    if duration is None:
        await stop.wait()
    else:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)


# ---------------------------------------------------------------------- record


class Recorder:
    """Writes each applied event as one JSON line and counts what it wrote."""

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
        line = dict(message)
        # Extra top-level keys are ignored on replay (PROTOCOL section 1): receive
        # time, and why a history page was fetched.
        line["t"] = round(time.monotonic() - self.started, 3)
        if reason is not None:
            line["reason"] = reason
            self.history_pages += 1
        else:
            self.socket_events += 1
        try:
            self.sink.write(dumps(line, indent=False) + "\n")
            self.sink.flush()
        except OSError as exc:
            self.error = exc
        self.lines += 1


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
    it is closed on return.
    """
    recorder = Recorder(sink)
    client.on_event(recorder)
    watcher = None
    try:
        await client.start()
        if status is not None:
            watcher = asyncio.create_task(_report_status(client, status))
        await _until(stop, duration)
    finally:
        if watcher is not None:
            watcher.cancel()
        await client.close()
    return recorder


async def _report_status(client: ChatClient, status: IO[str]) -> None:
    """One line on stderr per connection state change."""
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


def run_record(args: argparse.Namespace, out: IO[str]) -> int:
    _require_client("record")
    client = _client_from_args(args)
    if args.output == "-":
        sink, close_sink, report = out, False, sys.stderr
    else:
        try:
            sink = open(args.output, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        close_sink, report = True, out

    async def main() -> Recorder:
        stop = asyncio.Event()
        restore = _stop_on_signals(stop)
        try:
            return await record(client, sink, stop, duration=args.duration, status=sys.stderr)
        finally:
            restore()

    started = time.monotonic()
    try:
        recorder = asyncio.run(main())
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
    print(summary_line(client.reconciler), file=report)
    return EXIT_OK


# ---------------------------------------------------------------------- watch

_STATUS_STYLE = {
    Status.STREAMING: ("streaming…", "yellow"),
    Status.DONE: ("done", "green"),
    Status.ERROR: ("error", "bold red"),
}
_ORIGIN_STYLE = {Origin.STREAM: "cyan", Origin.CALLBACK: "magenta", Origin.SYSTEM: "dim"}


def _bubble_text(bubble: Bubble, limit: int | None) -> Any:
    from rich.text import Text

    body = bubble.text
    if limit is not None and len(body) > limit:
        body = "…" + body[-(limit - 1):]
    text = Text(body) if body else Text("(no text)", style="dim italic")
    details = bubble_details(bubble, 60, with_error=False)  # the error gets its own line
    if details:
        text.append("\n" + " · ".join(details), style="dim")
    if bubble.error:
        text.append(f"\nerror: {bubble.error}", style="red")
    return text




def render_threads(
    reconciler: Any,
    threads: Sequence[str],
    *,
    max_rows: int | None = None,
    text_limit: int | None = None,
    width: int | None = None,
) -> RenderableType:
    """One table per thread: bubble, agent, turn, origin, status, text.

    Args:
        reconciler: the engine whose bubbles to show.
        threads: the thread ids, in display order.
        max_rows: show at most this many bubbles per thread (the newest).
        text_limit: show at most this many characters of a bubble's text (the end).
        width: table width (default: the console's).
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table

    tables = []
    for thread in threads:
        try:
            bubbles = list(reconciler.bubbles(thread))
        except KeyError:
            bubbles = []
        table = Table(
            title=f"thread {thread} · {len(bubbles)} bubbles",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            expand=width is None,
            width=width,
            show_edge=False,
        )
        table.add_column("#", style="dim", no_wrap=True)
        table.add_column("agent", style="bold", no_wrap=True)
        table.add_column("turn", style="dim", no_wrap=True, max_width=18)
        table.add_column("origin", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("text", ratio=1)
        hidden = 0
        if max_rows is not None and len(bubbles) > max_rows:
            hidden = len(bubbles) - max_rows
            bubbles = bubbles[hidden:]
        if hidden:
            table.add_row("", "", "", "", "", f"… {hidden} earlier bubbles", style="dim")
        for bubble in bubbles:
            label, style = _STATUS_STYLE.get(bubble.status, (str(bubble.status), ""))
            table.add_row(
                bubble.id,
                bubble.cat,
                bubble.invocation or "-",
                f"[{_ORIGIN_STYLE.get(bubble.origin, '')}]{bubble.origin.value}[/]",
                f"[{style}]{label}[/]",
                _bubble_text(bubble, text_limit),
            )
        if not bubbles and not hidden:
            table.add_row("", "", "", "", "", "(no bubbles yet)", style="dim")
        tables.append(table)
    return Group(*tables)


def render_header(client: ChatClient) -> Any:
    from rich.text import Text

    dot = {"connected": "green", "connecting": "yellow", "reconnecting": "yellow"}.get(
        client.status, "red"
    )
    header = Text()
    header.append("reconcile watch ", style="bold")
    header.append(f"{client.url} as {client.user_id}  ")
    header.append("● ", style=dot)
    header.append(client.status)
    reconciler = client.reconciler
    header.append(
        f"  ·  {client.socket_events} events, {client.history_pages_applied} history pages, "
        f"{max(client.connects - 1, 0)} reconnects, {len(reconciler.rejected)} refused, "
        f"{len(reconciler.gaps)} gaps",
        style="dim",
    )
    if client.last_error and client.status != "connected":
        header.append(f"\n{client.last_error}", style="red")
    return header


def render_screen(
    client: ChatClient,
    height: int | None = None,
    width: int | None = None,
    *,
    max_rows: int | None = None,
) -> RenderableType:
    """The whole watch screen: a header line, then one table per followed thread.

    With the terminal's ``height`` and ``width`` (a live frame), long texts show their
    end, each thread shows at most ``max_rows`` bubbles (the newest; see
    :func:`fit_screen`), and lines stop short of the last columns:
    a full-width last line would wrap when the terminal echoes ``^C`` after it, and
    the frame would then be erased one line short. Without them, everything is shown
    (the final frame, printed once).
    """
    from rich.console import Group

    threads = client.threads
    text_limit = table_width = None
    if height is not None:
        text_limit = 400
    if width is not None:
        table_width = max(width - 3, 40)
    return Group(
        render_header(client),
        render_threads(
            client.reconciler, threads, max_rows=max_rows, text_limit=text_limit,
            width=table_width,
        ),
    )


def fit_screen(client: ChatClient, console: Console) -> RenderableType:
    """The largest live frame that fits the terminal: fewer bubbles per thread (the
    newest kept) until the rendered lines fit its height. A frame taller than the
    terminal could not be erased and would leave stale lines in the scrollback."""
    budget = max(console.height - 1, 1)
    options = console.options
    frame = None
    for max_rows in (None, 12, 8, 5, 3, 2, 1):
        frame = render_screen(client, console.height, console.width, max_rows=max_rows)
        if len(console.render_lines(frame, options, pad=False)) <= budget:
            return frame
    return frame  # still too tall: Live crops it


async def watch(
    client: ChatClient,
    console: Console,
    stop: asyncio.Event,
    *,
    duration: float | None = None,
    refresh: float = 8.0,
) -> None:
    """Show ``client``'s threads live on ``console`` until ``stop`` (or ``duration``).

    The screen is redrawn from the event loop (never from rich's refresh thread, which
    would read the engine while the socket handler changes it), at most ``refresh``
    times a second and only after something changed. The final frame is printed in
    full when it stops. The client is started here and closed on return.
    """
    from rich.live import Live

    changed = asyncio.Event()
    client.on_event(lambda message, reason: changed.set())
    await client.start()
    interval = 1.0 / max(refresh, 0.5)
    shown_status = None
    live = Live(
        fit_screen(client, console),
        console=console,
        auto_refresh=False,
        transient=True,
        vertical_overflow="crop",
        redirect_stdout=False,
        redirect_stderr=False,
    )
    ender = asyncio.create_task(_until(stop, duration))
    try:
        with live:
            while not ender.done():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ender), interval)
                status = (client.status, client.last_error)
                if changed.is_set() or status != shown_status:
                    changed.clear()
                    shown_status = status
                    live.update(fit_screen(client, console), refresh=True)
    finally:
        ender.cancel()
        await client.close()
    console.print(render_screen(client))


def run_watch(args: argparse.Namespace, out: IO[str]) -> int:
    _require_client("watch")
    from rich.console import Console

    client = _client_from_args(args)
    console = Console(file=out)

    async def main() -> None:
        stop = asyncio.Event()
        restore = _stop_on_signals(stop)
        try:
            await watch(client, console, stop, duration=args.duration, refresh=args.refresh)
        finally:
            restore()

    asyncio.run(main())
    console.print(summary_line(client.reconciler), style="dim")
    return EXIT_OK
