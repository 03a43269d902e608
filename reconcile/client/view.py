"""The terminal view of ``reconcile watch``: live bubbles, running turns, refusals.

Needs rich (the client extra). The screen, per followed thread: a title (bubble
count, and a red line when the server lost the thread), one row per bubble (agent,
turn, origin, status, text), one line per running turn ("opus is working… (12s)",
whatever its bubble's status: an agent that posted its callback mid-turn shows a
``done`` bubble *and* is still working), the turns closed as interrupted, and the
*unplaced* list: callbacks the engine refused, with their text and the reason,
never inside a bubble. A header line says where the client is connected, and the
notices (wrong user id?, server reset) come under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconcile import Bubble, Origin, Status
from reconcile.cli._common import bubble_details, shorten  # the notes replay shows too

from ._client import ChatClient
from .recorder import until

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console, RenderableType

__all__ = ["fit_screen", "refusal_summary", "render_screen", "render_threads", "watch"]

_STATUS_STYLE = {
    Status.STREAMING: ("streaming…", "yellow"),
    Status.DONE: ("done", "green"),
    Status.ERROR: ("error", "bold red"),
}
_ORIGIN_STYLE = {Origin.STREAM: "cyan", Origin.CALLBACK: "magenta", Origin.SYSTEM: "dim"}


def _bubble_text(client: ChatClient, bubble: Bubble, limit: int | None) -> Any:
    from rich.text import Text

    body = client.display_text(bubble)
    if limit is not None and len(body) > limit:
        body = "…" + body[-(limit - 1):]
    text = Text(body) if body else Text("(no text)", style="dim italic")
    if body is not bubble.text and body != bubble.text:
        text.append("\n(draft from history: this client joined mid-turn)", style="dim")
    details = bubble_details(bubble, 60, with_error=False)  # the error gets its own line
    if details:
        text.append("\n" + " · ".join(details), style="dim")
    if bubble.error:
        text.append(f"\nerror: {bubble.error}", style="red")
    return text


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def render_threads(
    client: ChatClient,
    threads: Sequence[str],
    *,
    max_rows: int | None = None,
    text_limit: int | None = None,
    width: int | None = None,
) -> RenderableType:
    """Per thread: a table of bubbles, then running turns, interruptions, unplaced.

    Args:
        client: the client whose engine and state to show.
        threads: the thread ids, in display order.
        max_rows: show at most this many bubbles per thread (the newest).
        text_limit: show at most this many characters of a bubble's text (the end).
        width: table width (default: the console's).
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for thread in threads:
        bubbles = list(client.bubbles(thread))
        title = f"thread {thread} · {len(bubbles)} bubbles"
        resets = client.resets(thread)
        if resets:
            title += f" · server reset ({resets}×): the server lost this thread"
        table = Table(
            title=title,
            title_justify="left",
            title_style="bold red" if resets else None,
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
                _bubble_text(client, bubble, text_limit),
            )
        if not bubbles and not hidden:
            table.add_row("", "", "", "", "", "(no bubbles yet)", style="dim")
        parts.append(table)
        activity = Text()
        for turn, elapsed in client.running(thread):
            activity.append(f"  ● {turn.cat} is working… ({_elapsed(elapsed)})", style="yellow")
            activity.append(f"  turn {turn.turn}\n", style="dim")
        for closed in client.interrupted(thread)[-3:]:
            activity.append(f"  ✕ {closed.cat}: turn {closed.turn} interrupted "
                            "(the server lost it)\n", style="red")
        unplaced = client.unplaced(thread)
        if unplaced:
            activity.append(f"  unplaced ({len(unplaced)}): refused callbacks, "
                            "not shown in any bubble\n", style="bold magenta")
            for item in unplaced[-5:]:
                text = item.text if text_limit is None else shorten(item.text, text_limit)
                activity.append(f"    {item.cat or '?'}: ", style="magenta")
                activity.append(f"{text}")
                activity.append(f"  [{item.reason} · line {item.line}]\n", style="dim")
        if activity:
            activity.rstrip()
            parts.append(activity)
    return Group(*parts)


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
    for notice in client.notices[-3:]:
        stamp = time.strftime("%H:%M:%S", time.localtime(notice.at))
        header.append(f"\n! {stamp} {notice.text}", style="bold yellow")
    return header


def render_screen(
    client: ChatClient,
    height: int | None = None,
    width: int | None = None,
    *,
    max_rows: int | None = None,
) -> RenderableType:
    """The whole watch screen: a header line, then each followed thread.

    With the terminal's ``height`` and ``width`` (a live frame), long texts show their
    end, each thread shows at most ``max_rows`` bubbles (the newest; see
    :func:`fit_screen`), and lines stop short of the last columns: a full-width last
    line would wrap when the terminal echoes ``^C`` after it, and the frame would then
    be erased one line short. Without them, everything is shown (the final frame).
    """
    from rich.console import Group

    text_limit = table_width = None
    if height is not None:
        text_limit = 400
    if width is not None:
        table_width = max(width - 3, 40)
    return Group(
        render_header(client),
        render_threads(client, client.threads, max_rows=max_rows, text_limit=text_limit,
                       width=table_width),
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


def refusal_summary(client: ChatClient) -> list[str]:
    """Lines for an exit summary: refusals by reason, and each unplaced callback."""
    rejected = client.reconciler.rejected
    if not len(rejected):
        return []
    counts: dict[str, int] = {}
    for change in rejected:
        counts[str(change.reason)] = counts.get(str(change.reason), 0) + 1
    lines = ["refused: " + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))]
    for item in client.unplaced():
        lines.append(
            f"  unplaced callback in {item.thread} from {item.cat or '?'} "
            f"(line {item.line}, {item.reason}): {shorten(item.text, 100)}"
        )
    return lines


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
    times a second, after something changed and every second while a turn runs (its
    elapsed time). The final frame is printed in full when it stops. The client is
    started here and closed on return.
    """
    from rich.live import Live

    changed = asyncio.Event()
    client.on_event(lambda message, reason: changed.set())
    client.on_change(lambda change: changed.set())
    client.on_notice(lambda notice: changed.set())
    await client.start()
    interval = 1.0 / max(refresh, 0.5)
    shown_status = None
    last_draw = 0.0
    live = Live(
        fit_screen(client, console),
        console=console,
        auto_refresh=False,
        transient=True,
        vertical_overflow="crop",
        redirect_stdout=False,
        redirect_stderr=False,
    )
    ender = asyncio.create_task(until(stop, duration))
    try:
        with live:
            while not ender.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ender), interval)
                status = (client.status, client.last_error)
                ticking = time.monotonic() - last_draw >= 1.0 and any(
                    client.reconciler.running_turns(t) for t in client.threads
                )
                if changed.is_set() or status != shown_status or ticking:
                    changed.clear()
                    shown_status = status
                    last_draw = time.monotonic()
                    live.update(fit_screen(client, console), refresh=True)
    finally:
        ender.cancel()
        await client.close()
    console.print(render_screen(client))
