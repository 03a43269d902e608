"""The ``reconcile`` command: the only module that opens files and prints.

Subcommands:

* ``replay TRACE``: the bubbles a chat window would show, per thread, then refusals;
  ``--json`` prints the PROTOCOL v1 section 9 document instead.
* ``check TRACE``: validate a server's trace; exit 1 if any event was refused.

Exit status: 0 success, 1 ``check`` found refusals, 2 usage or input errors.
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import orjson

from . import __version__
from ._bubbles import Bubble
from ._reconciler import Reconciler

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

#: Print progress to a terminal every this many lines of a long trace.
PROGRESS_EVERY = 250_000


class UsageError(Exception):
    """A problem with the command line or its files: exit 2 with a one-line message."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconcile",
        description="Turn a multi-agent chat server's event trace into chat bubbles "
        "(PROTOCOL v1: exact turn identity, no guessing).",
    )
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    replay = commands.add_parser(
        "replay", help="show the bubbles of a trace", description="Replay a JSON Lines trace "
        "and show each thread's bubbles, then the refused events and a summary."
    )
    replay.add_argument("trace", metavar="TRACE", help="trace file (JSON Lines), or - for stdin")
    replay.add_argument(
        "--json", action="store_true", help="print the PROTOCOL section 9 JSON document"
    )
    replay.add_argument(
        "--width", type=int, default=72, help="shorten bubble text to this many characters"
    )
    replay.set_defaults(run=run_replay)

    check = commands.add_parser(
        "check", help="validate a server's trace", description="Replay a trace and list "
        "every refused event as LINE: REASON: detail. Exit 0 when clean, 1 otherwise."
    )
    check.add_argument("trace", metavar="TRACE", help="trace file (JSON Lines), or - for stdin")
    check.set_defaults(run=run_check)

    _add_optional_commands(commands)
    return parser


def _add_optional_commands(commands: Any) -> None:
    """Subcommands that live in their own modules (imported lazily when run)."""
    for name, module, help_text in (
        ("simulate", "simulate", "write a seeded, realistic racy trace"),
        ("record", "client", "record a live server's events to a trace file"),
        ("watch", "client", "show a live thread's bubbles in the terminal"),
    ):
        try:
            mod = __import__(f"reconcile.{module}_cli", fromlist=["add_parser"])
        except ImportError:
            continue
        mod.add_parser(commands, name, help_text)


# ---------------------------------------------------------------------- input


def open_trace(path: str) -> IO[bytes]:
    """Open a trace for binary reading; ``-`` is standard input."""
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise UsageError(f"no such trace file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a trace file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def iter_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Lines split on ``\\n`` only (binary mode), each without its newline."""
    for line in stream:
        yield line[:-1] if line.endswith(b"\n") else line


def replay_file(path: str) -> Reconciler:
    """Feed a whole trace to a new reconciler, with progress on a terminal."""
    reconciler = Reconciler()
    receive = reconciler.receive_line
    show_progress = sys.stderr.isatty()
    started = time.monotonic()
    stream = open_trace(path)
    try:
        for number, line in enumerate(iter_lines(stream), 1):
            receive(line)
            if show_progress and number % PROGRESS_EVERY == 0:
                rate = number / max(time.monotonic() - started, 1e-9)
                print(f"\r{number:,} lines ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if show_progress and reconciler.lines >= PROGRESS_EVERY:
        print(file=sys.stderr)
    return reconciler


# ---------------------------------------------------------------------- output


def can_write_any_text(out: IO[str]) -> bool:
    """Whether ``out`` encodes every character (UTF-8), or would fail on some."""
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        return codecs.lookup(encoding).name in ("utf-8", "utf-16", "utf-32")
    except LookupError:
        return False


def dumps(document: Any, indent: bool = True, ascii_only: bool = False) -> str:
    """JSON text; orjson when it can, the standard library for what it cannot.

    orjson refuses integers beyond 64 bits and values nested deeper than 255 levels,
    and a trace may legally carry either in ``toolInput``. The fallback is compact
    (the standard library's C encoder; its indenting encoder is pure Python and
    recursive) and runs with a raised recursion limit, since decoded lines are at
    most about 1,000 levels deep (the decoders' own limit).
    """
    if not ascii_only:
        try:
            return orjson.dumps(document, option=orjson.OPT_INDENT_2 if indent else 0).decode()
        except TypeError:
            pass
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        # ascii_only: \u escapes keep the document valid JSON on any terminal encoding.
        return json.dumps(document, ensure_ascii=ascii_only)
    finally:
        sys.setrecursionlimit(limit)


def shorten(text: str, width: int) -> str:
    """One line, at most ``width`` characters, an ellipsis where it was cut."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return flat[: max(width - 1, 1)] + "…"


def describe_bubble(bubble: Bubble, width: int) -> list[str]:
    turn = bubble.invocation or "-"
    head = (
        f"  {bubble.id:<6} {bubble.cat:<10} {turn:<12} {bubble.origin.value:<8} "
        f"{bubble.status.value:<9}"
    )
    lines = [f"{head} {shorten(bubble.text, width)!s}" if bubble.text else f"{head} (no text)"]
    details = bubble_details(bubble, width // 2)
    if details:
        lines.append(" " * 9 + " · ".join(details))
    return lines


def bubble_details(bubble: Bubble, width: int, with_error: bool = True) -> list[str]:
    """The short notes shown under a bubble (``replay`` and ``watch`` share them)."""
    details = []
    if bubble.message_id:
        details.append(f"message {bubble.message_id}")
    if with_error and bubble.error:
        details.append(f"error: {shorten(bubble.error, width)}")
    if bubble.thinking:
        details.append(f"thinking: {shorten(bubble.thinking, width)}")
    if bubble.tools:
        names = ", ".join(f"{t['kind']} {t.get('name')}" for t in bubble.tools)
        details.append(f"tools: {shorten(names, width)}")
    if bubble.blocks:
        details.append(f"blocks: {', '.join(bubble.blocks)}")
    return details


def summary_line(reconciler: Reconciler) -> str:
    stats = reconciler.stats
    bubbles = sum(len(reconciler.bubbles(h)) for h in reconciler.threads)
    return (
        f"{len(reconciler.threads)} threads, {bubbles} bubbles, "
        f"{len(reconciler.rejected)} refused, {stats.superseded} superseded, "
        f"{stats.duplicates} duplicates, {len(reconciler.gaps)} gaps "
        f"({stats.events} events, {stats.ignored} ignored)"
    )


def run_replay(args: argparse.Namespace, out: IO[str]) -> int:
    reconciler = replay_file(args.trace)
    if args.json:
        out.write(dumps(reconciler.to_dict(), ascii_only=not can_write_any_text(out)) + "\n")
        return EXIT_OK
    for thread in reconciler.threads:
        bubbles = reconciler.bubbles(thread)
        out.write(f"thread {thread} ({len(bubbles)} bubbles)\n")
        for bubble in bubbles:
            out.write("\n".join(describe_bubble(bubble, args.width)) + "\n")
    if reconciler.gaps:
        out.write("gaps (events that never arrived)\n")
        for gap in reconciler.gaps:
            out.write(f"  {gap.thread}: after seq {gap.after}, before seq {gap.before}\n")
    if reconciler.rejected:
        out.write(f"refused ({len(reconciler.rejected)})\n")
        for rejected in reconciler.rejected:
            out.write(f"  line {rejected.line}: {rejected.reason.value}: {rejected.detail}\n")
    out.write(summary_line(reconciler) + "\n")
    return EXIT_OK


def run_check(args: argparse.Namespace, out: IO[str]) -> int:
    reconciler = replay_file(args.trace)
    for rejected in reconciler.rejected:
        out.write(f"{rejected.line}: {rejected.reason.value}: {rejected.detail}\n")
    refused = len(reconciler.rejected)
    counts: dict[str, int] = {}
    for rejected in reconciler.rejected:
        counts[rejected.reason.value] = counts.get(rejected.reason.value, 0) + 1
    by_reason = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    verdict = "clean" if not refused else f"{refused} refused ({by_reason})"
    out.write(f"{reconciler.lines} lines, {reconciler.stats.events} events: {verdict}\n")
    return EXIT_REFUSED if refused else EXIT_OK


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    """Run the command line; returns the exit status (never raises for bad input)."""
    if out is None:
        out = sys.stdout
        if not can_write_any_text(out) and hasattr(out, "reconfigure"):
            # A terminal or pipe that is not UTF-8 (PYTHONIOENCODING=ascii, LANG=C on
            # old systems): show what it cannot encode as "?" rather than crash.
            out.reconfigure(errors="replace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse prints its own usage message
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        return args.run(args, out)
    except UsageError as exc:
        print(f"reconcile: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("reconcile: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `reconcile replay big.jsonl | head`: the reader left; that is not an error.
        sys.stderr.close()
        return EXIT_OK
