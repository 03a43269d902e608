"""``reconcile simulate``: write a seeded, realistic, racy trace (and its expected state).

    reconcile simulate --seed 1 --turns 50 | reconcile check -
    reconcile simulate --seed 7 --turns 200 --threads 4 -o trace.jsonl --expected expected.json
    reconcile replay --json trace.jsonl | diff - expected.json   # (after sorting keys)

The trace goes to ``-o FILE`` or standard output; ``--expected FILE`` writes the
PROTOCOL v1 section 9 document computed by the naive reference model (not by the
engine), so the pair is a test case. ``--census`` lists which races the trace holds.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from reconcile.testing.simulate import Shape

from ._common import EXIT_OK, UsageError, dumps

#: Traces with more turns than this show progress on a terminal.
PROGRESS_TURNS = 2_000
#: The reference model is O(events x bubbles): warn before it runs on more lines.
SLOW_REFERENCE_LINES = 20_000


HELP = "write a seeded, realistic racy trace"
DESCRIPTION = (
    "Generate a realistic racy trace (JSON Lines) from a seed: parallel agents, late and "
    "early callbacks, redeliveries, seq duplicates and gaps, errors, cancels, tools, "
    "thinking, rich blocks, background threads. Same seed, same bytes."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reconcile.testing.simulate import Shape

    defaults = Shape()
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    shape = parser.add_argument_group("shape")
    shape.add_argument("--turns", type=int, default=defaults.turns,
                       help=f"agent turns in the trace (default {defaults.turns})")
    shape.add_argument("--threads", type=int, default=defaults.threads,
                       help="threads; all but the first are background "
                       f"(default {defaults.threads})")
    shape.add_argument("--agents", type=int, default=defaults.agents,
                       help=f"distinct agents (default {defaults.agents})")
    shape.add_argument("--chunks", type=float, default=defaults.chunks, metavar="MEAN",
                       help=f"mean stream chunks per turn (default {defaults.chunks:g})")
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
        rates.add_argument(option, dest=field, type=float, default=getattr(defaults, field),
                           metavar="P", help=f"{what} (default {getattr(defaults, field):g})")
    parser.add_argument("--start-ms", type=int, default=defaults.start_ms,
                        help="server clock at the first event, in ms")
    parser.add_argument("--id-prefix", default="", help="prefix for parent, turn and message ids")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the trace here (default stdout)")
    parser.add_argument("--expected", metavar="FILE",
                        help="write the expected section 9 JSON (from the reference model) here; "
                        "- for stdout when -o is given")
    parser.add_argument("--census", action="store_true",
                        help="count the races and features in the trace (to stderr when the "
                        "trace goes to stdout)")


def shape_from(args: argparse.Namespace) -> Shape:
    from reconcile.testing.simulate import Shape

    fields = {f: getattr(args, f) for f in (
        "turns", "threads", "agents", "chunks", "parallel", "callbacks", "late", "seq",
        "dual_ids", "loss", "redeliver", "history", "faults", "start_ms", "id_prefix")}
    shape = Shape(**fields)
    try:
        shape.check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return shape


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from reconcile.testing.simulate import census, expected, generate

    shape = shape_from(args)
    if args.expected == "-" and not args.output:
        raise UsageError("--expected - needs -o FILE (the trace already goes to stdout)")
    show = sys.stderr.isatty() and shape.turns >= PROGRESS_TURNS
    started = time.monotonic()

    def progress(message: str) -> None:
        if show:
            print(f"\r{message} ({time.monotonic() - started:.1f} s)\033[K", end="",
                  file=sys.stderr, flush=True)

    lines = generate(args.seed, shape, progress=progress)
    text = "\n".join(lines) + "\n" if lines else ""
    progress(f"writing {len(lines):,} lines")
    if args.output:
        _write_file(args.output, text)
    else:
        _write_text(out, text)
    if args.expected:
        if len(lines) > SLOW_REFERENCE_LINES:
            print(f"reconcile simulate: the reference model is O(events x bubbles); "
                  f"{len(lines):,} lines will take a while", file=sys.stderr)
        document = dumps(expected(lines)) + "\n"
        if args.expected == "-":
            _write_text(out, document)
        else:
            _write_file(args.expected, document)
    if show:
        print(f"\r{len(lines):,} lines in {time.monotonic() - started:.1f} s\033[K",
              file=sys.stderr)
    if args.census:
        target = out if args.output and args.expected != "-" else sys.stderr
        counts = census(lines)
        width = max(map(len, counts))
        target.write("".join(f"{key:<{width}}  {value:>9,}\n" for key, value in counts.items()))
    return EXIT_OK


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
