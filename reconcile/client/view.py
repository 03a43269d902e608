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
import collections
import contextlib
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconcile import Bubble, Origin, Reconciler, Status
from reconcile.cli._common import bubble_details, shorten  # the notes replay shows too

from ._client import ChatClient
from .recorder import routed_logs, until

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
    from_draft = body != bubble.text  # before cutting it to fit: a cut is no draft
    if limit is not None and len(body) > limit:
        body = "…" + body[-(limit - 1):]
    text = Text(body) if body else Text("(no text)", style="dim italic")
    if from_draft:
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
        # Everything the server (or the user) named goes in as Text: a str cell is
        # rich markup, and "[opus] ..." would lose its tag or "[/b]" raise.
        title = Text(f"thread {thread} · {len(bubbles)} bubbles")
        resets = client.resets(thread)
        if resets:
            title.append(f" · server reset ({resets}×): the server lost this thread")
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
                Text(bubble.id),
                Text(bubble.cat),
                Text(bubble.invocation or "-"),
                Text(bubble.origin.value, style=_ORIGIN_STYLE.get(bubble.origin, "")),
                Text(label, style=style),
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
                again = f" · refused {item.refused}×" if item.refused > 1 else ""
                activity.append(f"  [{item.reason} · line {item.line}{again}]\n", style="dim")
        if activity:
            activity.rstrip()
            parts.append(activity)
    return Group(*parts)


# Refusals by reason per engine, and how many of its log they cover: the log only
# grows, so each redraw of ``watch`` counts the refusals made since the last one, not
# the whole log again (a client that joined mid-turn is refused thousands of chunks,
# and each entry read from the log is a new Rejected).
_TALLIES: weakref.WeakKeyDictionary[Reconciler, tuple[int, collections.Counter[str]]] = (
    weakref.WeakKeyDictionary()
)


def _refusals_by_reason(engine: Reconciler) -> collections.Counter[str]:
    """How many of ``engine``'s refusals each reason has (its value as the key)."""
    log = engine.rejected
    seen, counts = _TALLIES.get(engine, (0, collections.Counter()))
    size = len(log)  # read once: the count and what it covers are the same entries
    if size > seen:
        counts.update(str(change.reason) for change in log[seen:size])
        _TALLIES[engine] = (size, counts)
    return counts


def refusal_counts(client: ChatClient) -> tuple[dict[str, int], int]:
    """Refusals by reason, without those of unplaced callbacks, and the number of
    unplaced callbacks (one per thread and message id).

    The engine refuses a turn-less callback each time it arrives, and every
    refreshed history page brings the stored one again: one callback can be
    refused many times. A user is shown the callback once (and how often it was
    refused); every other refusal is one event.
    """
    counts = dict(_refusals_by_reason(client.reconciler))
    unplaced = client.unplaced()
    for item in unplaced:
        reason = str(item.reason)
        counts[reason] = counts.get(reason, 0) - item.refused
        if counts[reason] <= 0:
            del counts[reason]
    return counts, len(unplaced)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def render_header(client: ChatClient, messages: Sequence[str] = ()) -> Any:
    """The header: connection, totals, the last notices and ``messages`` (log lines).

    Refusals count events, except refused callbacks, which count once each
    (:func:`refusal_counts`).
    """
    from rich.text import Text

    dot = {"connected": "green", "connecting": "yellow", "reconnecting": "yellow"}.get(
        client.status, "red"
    )
    header = Text()
    header.append("reconcile watch ", style="bold")
    header.append(f"{client.url} as {client.user_id}  ")
    header.append("● ", style=dot)
    header.append(client.status)
    counts, unplaced = refusal_counts(client)
    header.append(
        f"  ·  {client.socket_events} events, {client.history_pages_applied} history pages, "
        f"{max(client.connects - 1, 0)} reconnects, {sum(counts.values())} refused, "
        f"{_plural(unplaced, 'unplaced callback')}, {len(client.reconciler.gaps)} gaps",
        style="dim",
    )
    if client.last_error and client.status != "connected":
        header.append(f"\n{client.last_error}", style="red")
    for notice in client.notices[-3:]:
        stamp = time.strftime("%H:%M:%S", time.localtime(notice.at))
        header.append(f"\n! {stamp} {notice.text}", style="bold yellow")
    for message in list(messages)[-3:]:
        header.append(f"\n{message}", style="yellow")
    return header


def render_screen(
    client: ChatClient,
    height: int | None = None,
    width: int | None = None,
    *,
    max_rows: int | None = None,
    messages: Sequence[str] = (),
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
        render_header(client, messages),
        render_threads(client, client.threads, max_rows=max_rows, text_limit=text_limit,
                       width=table_width),
    )


def fit_screen(
    client: ChatClient, console: Console, messages: Sequence[str] = ()
) -> RenderableType:
    """The largest live frame that fits the terminal: fewer bubbles per thread (the
    newest kept) until the rendered lines fit its height. A frame taller than the
    terminal could not be erased and would leave stale lines in the scrollback."""
    budget = max(console.height - 1, 1)
    options = console.options
    frame = None
    for max_rows in (None, 12, 8, 5, 3, 2, 1):
        frame = render_screen(client, console.height, console.width, max_rows=max_rows,
                              messages=messages)
        if len(console.render_lines(frame, options, pad=False)) <= budget:
            return frame
    return frame  # still too tall: Live crops it


def refusal_summary(client: ChatClient) -> list[str]:
    """Lines for an exit summary: refusals by reason, and each unplaced callback once.

    ``refused: 30 unbound_event; 1 unplaced callback (refused 17 times)``, then one
    line per unplaced callback (thread, agent, first line, text).
    """
    if not len(client.reconciler.rejected):
        return []
    counts, _ = refusal_counts(client)
    unplaced = client.unplaced()
    parts = []
    if counts:
        parts.append(", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())))
    if unplaced:
        times = sum(item.refused for item in unplaced)
        parts.append(f"{_plural(len(unplaced), 'unplaced callback')} "
                     f"(refused {_plural(times, 'time')})")
    lines = ["refused: " + "; ".join(parts)]
    for item in unplaced:
        again = f", refused {item.refused} times" if item.refused > 1 else ""
        lines.append(
            f"  unplaced callback in {item.thread} from {item.cat or '?'} "
            f"(line {item.line}, {item.reason}{again}): {shorten(item.text, 100)}"
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

    While the frame is up nothing else may write to the terminal (a line written
    under it shifts it, and rich then erases the wrong lines: stale rows stay at the
    top). The client's log records go into the frame instead (notices are shown
    there anyway), and stray writes to stderr are printed above it by rich.
    """
    from rich.live import Live

    messages: collections.deque[str] = collections.deque(maxlen=3)
    changed = asyncio.Event()

    def show(line: str) -> None:
        messages.append(f"! {time.strftime('%H:%M:%S')} {line}")
        changed.set()

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
        redirect_stderr=True,
    )
    ender = asyncio.create_task(until(stop, duration))
    try:
        with routed_logs(show), live:
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
                    live.update(fit_screen(client, console, messages), refresh=True)
    finally:
        ender.cancel()
        await client.close()
    console.print(render_screen(client, messages=messages))
