"""``reconcile simulate``: write a seeded, realistic, racy trace (and its expected state).

    reconcile simulate --seed 1 --turns 50 | reconcile check -
    reconcile simulate --seed 7 --turns 200 --threads 4 -o trace.jsonl --expected expected.json
    reconcile replay --json trace.jsonl | diff - expected.json   # (after sorting keys)

The trace goes to ``-o FILE`` or standard output; ``--expected FILE`` writes the
protocol section 9 document computed by the naive reference model (not by the
engine), so the pair is a test case. ``--census`` lists which races the trace holds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from reconcile.testing.simulate import Shape

from ._common import EXIT_OK, UsageError, dumps

#: Traces with more turns than this show progress on a terminal.
PROGRESS_TURNS = 2_000
#: The reference model is O(events x bubbles): warn before it runs on more lines.
SLOW_REFERENCE_LINES = 20_000
#: ... and refuse --expected beyond this many turns (about 350,000 lines: hours).
EXPECTED_MAX_TURNS = 20_000
#: Lines written at a time (one write call per batch, whatever the trace's length).
BATCH_LINES = 4_096

#: The defaults of ``reconcile.testing.simulate.Shape``, written out so that building
#: the parser does not import the simulator (tests/test_simulate.py checks they match).
SHAPE_DEFAULTS: dict[str, Any] = {
    "turns": 50, "threads": 3, "agents": 3, "chunks": 12.0, "parallel": 0.35,
    "callbacks": 0.7, "late": 0.2, "seq": 0.6, "dual_ids": 0.4, "loss": 0.01,
    "redeliver": 0.02, "history": 0.6, "faults": 0.0, "start_ms": 1767225600000,
    "id_prefix": "",
}


HELP = "write a seeded, realistic racy trace"
DESCRIPTION = (
    "Generate a realistic racy trace (JSON Lines) from a seed: parallel agents, late and "
    "early callbacks, redeliveries, seq duplicates and gaps, errors, cancels, tools, "
    "thinking, rich blocks, background threads. Same seed, same bytes. The trace is "
    "written as it is generated (memory does not grow with --turns)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SHAPE_DEFAULTS
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    shape = parser.add_argument_group("shape")
    shape.add_argument("--turns", type=int, default=defaults["turns"],
                       help=f"agent turns in the trace (default {defaults['turns']})")
    shape.add_argument("--threads", type=int, default=defaults["threads"],
                       help="threads; all but the first are background "
                       f"(default {defaults['threads']})")
    shape.add_argument("--agents", type=int, default=defaults["agents"],
                       help=f"distinct agents (default {defaults['agents']})")
    shape.add_argument("--chunks", type=float, default=defaults["chunks"], metavar="MEAN",
                       help=f"mean stream chunks per turn (default {defaults['chunks']:g})")
    rates = parser.add_argument_group("rates (probabilities between 0 and 1)")
    for option, field, what in (
        ("--parallel", "parallel", "user messages answered by several agents at once"),
        ("--callbacks", "callbacks", "turns that post a callback"),
        ("--late", "late", "callbacks that arrive after newer turns of their agent"),
        ("--seq", "seq", "threads whose server stamps seq/seqEpoch"),
        ("--dual-ids", "dual_ids", "threads on a newer server (turnInvocationId)"),
        ("--loss", "loss", "stream chunks lost in transit (seq gaps)"),
        ("--redeliver", "redeliver", "events delivered twice with their old seq"),
        ("--history", "history", "gaps followed by a history fetch"),
        ("--faults", "faults", "events turned into protocol violations"),
    ):
        rates.add_argument(option, dest=field, type=float, default=defaults[field],
                           metavar="P", help=f"{what} (default {defaults[field]:g})")
    parser.add_argument("--start-ms", type=int, default=defaults["start_ms"],
                        help="server clock at the first event, in ms")
    parser.add_argument("--id-prefix", default=defaults["id_prefix"],
                        help="prefix for parent, turn and message ids")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the trace here (default stdout)")
    parser.add_argument("--expected", metavar="FILE",
                        help="write the expected section 9 JSON (from the reference model) here; "
                        "- for stdout when -o is given. The reference model keeps the whole "
                        "trace in memory and is O(events x bubbles): refused above "
                        f"{EXPECTED_MAX_TURNS:,} turns")
    parser.add_argument("--census", action="store_true",
                        help="count the races and features in the trace (to stderr when the "
                        "trace goes to stdout)")


def shape_from(args: argparse.Namespace) -> Shape:
    from reconcile.testing.simulate import Shape

    fields = {f: getattr(args, f) for f in SHAPE_DEFAULTS}
    shape = Shape(**fields)
    try:
        shape.check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return shape


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from reconcile.testing.simulate import expected, iter_lines

    shape = shape_from(args)
    if args.expected == "-" and not args.output:
        raise UsageError("--expected - needs -o FILE (the trace already goes to stdout)")
    if args.expected and shape.turns > EXPECTED_MAX_TURNS:
        raise UsageError(
            f"--expected runs the naive reference model, which keeps the whole trace and "
            f"is O(events x bubbles): at most {EXPECTED_MAX_TURNS:,} turns "
            f"(asked {shape.turns:,}); drop --expected to write the trace alone")
    show = sys.stderr is not None and sys.stderr.isatty() and shape.turns >= PROGRESS_TURNS
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        print(f"\r{done / total:6.1%} of {total:,} turns ({time.monotonic() - started:.1f} s)"
              "\033[K", end="", file=sys.stderr, flush=True)

    lines: Iterable[str] = iter_lines(args.seed, shape, progress=progress if show else None)
    kept: list[str] | None = [] if args.expected else None
    if kept is not None:
        lines = _keep(lines, kept)
    counts: dict[str, int] | None = None
    written = 0
    if args.output:
        try:
            with open(args.output, "wb") as stream:
                written, counts = _write(stream, lines, args.census)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    else:
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            out.flush()
            written, counts = _write(buffer, lines, args.census)
            buffer.flush()
        else:  # a text stream without bytes underneath (tests pass a StringIO)
            written, counts = _write(_TextSink(out), lines, args.census)
    if show:
        print(f"\r{written:,} lines in {time.monotonic() - started:.1f} s\033[K",
              file=sys.stderr)
    if kept is not None:
        if len(kept) > SLOW_REFERENCE_LINES:
            print(f"reconcile simulate: the reference model is O(events x bubbles); "
                  f"{len(kept):,} lines will take a while", file=sys.stderr)
        document = dumps(expected(kept)) + "\n"
        if args.expected == "-":
            _write_text(out, document)
        else:
            _write_file(args.expected, document)
    if counts is not None:
        target = out if args.output and args.expected != "-" else sys.stderr
        width = max(map(len, counts))
        target.write("".join(f"{key:<{width}}  {value:>9,}\n" for key, value in counts.items()))
    return EXIT_OK


def _keep(lines: Iterable[str], kept: list[str]) -> Iterator[str]:
    for line in lines:
        kept.append(line)
        yield line


def _write(stream: Any, lines: Iterable[str], with_census: bool) -> tuple[int, dict[str, int] | None]:
    """Write ``lines`` as UTF-8 JSON Lines in batches; count features on the way."""
    from reconcile.testing.simulate import census

    written = 0
    batch: list[str] = []

    def through(lines: Iterable[str]) -> Iterator[str]:
        nonlocal written
        for line in lines:
            batch.append(line)
            if len(batch) >= BATCH_LINES:
                stream.write(("\n".join(batch) + "\n").encode("utf-8"))
                written += len(batch)
                batch.clear()
            yield line

    counts = census(through(lines)) if with_census else None
    if not with_census:
        for _ in through(lines):
            pass
    if batch:
        stream.write(("\n".join(batch) + "\n").encode("utf-8"))
        written += len(batch)
    return written, counts


class _TextSink:
    """Bytes in, text out: for a text stream that has no binary buffer."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, data: bytes) -> None:
        self.out.write(data.decode("utf-8"))


def _write_file(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_text(out: IO[str], text: str) -> None:
    """Write UTF-8 whatever the terminal's locale says (traces are UTF-8 by definition)."""
    buffer = getattr(out, "buffer", None)
    encoding = (getattr(out, "encoding", None) or "utf-8").lower().replace("-", "")
    if buffer is not None and encoding != "utf8":
        out.flush()
        buffer.write(text.encode("utf-8"))
        buffer.flush()
    else:
        out.write(text)
