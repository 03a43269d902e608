"""``reconcile replay TRACE``: the bubbles a chat window would show.

Per thread, one line per bubble (id, agent, turn, origin, status, shortened text) with
its details, then gaps, refusals and a summary; ``--json`` prints the section 9
document instead.
"""

from __future__ import annotations

import argparse
from typing import IO

from ._common import (
    EXIT_OK,
    can_write_any_text,
    describe_bubble,
    dumps,
    replay_file,
    summary_line,
)

HELP = "show the bubbles of a trace"
DESCRIPTION = (
    "Replay a JSON Lines trace and show each thread's bubbles, then the refused events "
    "and a summary."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="trace file (JSON Lines), or - for stdin")
    parser.add_argument(
        "--json", action="store_true", help="print the PROTOCOL section 9 JSON document"
    )
    parser.add_argument(
        "--width", type=int, default=72, help="shorten bubble text to this many characters"
    )


def run(args: argparse.Namespace, out: IO[str]) -> int:
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
