"""``reconcile check TRACE``: validate a server's trace against the protocol.

Each refusal as ``LINE: REASON: detail``, then a summary. Exit 0 when clean, 1 when
anything was refused.
"""

from __future__ import annotations

import argparse
from typing import IO

from ._common import EXIT_OK, EXIT_REFUSED, replay_file

HELP = "validate a server's trace"
DESCRIPTION = (
    "Replay a trace and list every refused event as LINE: REASON: detail. "
    "Exit 0 when clean, 1 otherwise."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="trace file (JSON Lines), or - for stdin")


def run(args: argparse.Namespace, out: IO[str]) -> int:
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
