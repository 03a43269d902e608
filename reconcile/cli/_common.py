"""What the commands share: exit codes, usage errors, reading traces, printing."""

from __future__ import annotations

import argparse
import codecs
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

import orjson

from reconcile import Bubble, Reconciler, ReconcileError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

T = TypeVar("T")

#: Print progress to a terminal every this many lines of a long trace.
PROGRESS_EVERY = 250_000


class UsageError(ReconcileError):
    """A problem with the command line or its files: exit 2 with a one-line message."""


# ---------------------------------------------------------------------- input


def open_trace(path: str) -> IO[bytes]:
    """Open a trace for binary reading; ``-`` is standard input."""
    if path == "-":
        if sys.stdin is None:  # started with `<&-`: there is no file descriptor 0
            raise UsageError("standard input is closed; give a trace file instead of -")
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise UsageError(f"no such trace file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a trace file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def iter_lines(stream: IO[bytes]) -> Iterable[bytes]:
    """Lines split on ``\\n`` only (binary mode), each with its newline as read.

    The engine takes a trailing ``\\n`` as the line's terminator (blank lines,
    line numbers and refusal wording are the same with or without it), so the
    lines are not copied to drop it.
    """
    return stream


def _with_progress(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The same lines, with a count on a terminal every :data:`PROGRESS_EVERY` lines."""
    started = time.monotonic()
    number = 0
    for number, line in enumerate(lines, 1):  # noqa: B007 - read after the loop
        yield line
        if number % PROGRESS_EVERY == 0:
            rate = number / max(time.monotonic() - started, 1e-9)
            print(f"\r{number:,} lines ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    if number >= PROGRESS_EVERY:
        print(file=sys.stderr)


def read_trace(path: str, consume: Callable[[Iterable[bytes]], T]) -> T:
    """Open a trace and hand its lines to ``consume`` (progress on a terminal).

    Read errors and an exception the engine should not raise become a one-line
    :class:`UsageError`, never a traceback.
    """
    stream = open_trace(path)
    lines: Iterable[bytes] = iter_lines(stream)
    if sys.stderr is not None and sys.stderr.isatty():
        lines = _with_progress(lines)
    try:
        return consume(lines)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        # The engine refuses bad lines as values; this is a safety net (for instance
        # an integer too long for Python to convert) so the user gets one line.
        raise UsageError(f"{path}: a line the engine could not read: {exc}") from None
    finally:
        if stream is not getattr(sys.stdin, "buffer", None):
            stream.close()


def replay_file(path: str) -> Reconciler:
    """Feed a whole trace to a new reconciler, with progress on a terminal."""
    reconciler = Reconciler()
    read_trace(path, reconciler.feed)
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
    except ValueError:
        # An integer longer than Python's conversion limit (4,300 digits): only an
        # in-process caller can put one there (decoding refuses them), but output
        # must not fail on it. Converting is quadratic in the digits; it is bounded
        # by what the caller already holds in memory.
        digits = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)
        try:
            return json.dumps(document, ensure_ascii=ascii_only)
        finally:
            sys.set_int_max_str_digits(digits)
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
