"""``reconcile check TRACE``: check a server's trace against the protocol.

Each refusal as ``LINE: REASON: detail``; then, per rule of PROTOCOL section 10 that
the trace shows broken, the count and the first line numbers; then a summary. Exit 0
when nothing was refused, 1 when something was (or, with ``--strict``, when a rule
was broken at all, or when the trace holds no event: nothing was checked). ``--json``
prints the same report as one JSON document.
"""

from __future__ import annotations

import argparse
import gc
from typing import IO

from reconcile import CheckReport, check_lines

from ._common import EXIT_OK, EXIT_REFUSED, can_write_any_text, dumps, read_trace

HELP = "check a server's trace against the protocol"
DESCRIPTION = (
    "Replay a trace, list every refused event as LINE: REASON: detail, and report which "
    "rules of PROTOCOL section 10 (what a server must send) the trace shows broken, with "
    "counts and the first line numbers. Exit 0 when nothing was refused, 1 when something "
    "was, or when the trace holds no event at all (nothing was checked)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="trace file (JSON Lines), or - for stdin")
    parser.add_argument("--json", action="store_true",
                        help="print the report as one JSON document (same exit status)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 on advisories too (section 10 rules broken without a "
                        "refusal, e.g. stream events without turnInvocationId)")


def exit_status(report: CheckReport, strict: bool = False) -> int:
    """1 when the trace does not pass: refusals, nothing to check, or (strict) any
    broken rule."""
    if report.rejected or report.empty or (strict and report.rules):
        return EXIT_REFUSED
    return EXIT_OK


def run(args: argparse.Namespace, out: IO[str]) -> int:
    # What exists now (the interpreter's objects, the modules imported) lives until
    # exit: out of the cyclic collector's sight while the trace is checked, so no
    # collection walks it again (the first walk alone costs about as much as reading
    # a thousand lines). Left frozen if a caller froze it already.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        report = read_trace(args.trace, check_lines)
    finally:
        if freeze:
            gc.unfreeze()
    status = exit_status(report, args.strict)
    # `check big.jsonl | head -1`: the verdict stands even if the reader leaves early.
    args.status_if_reader_leaves = status
    if args.json:
        out.write(dumps(report.to_dict(), ascii_only=not can_write_any_text(out)) + "\n")
        return status
    # One write for all refusals: a trace can hold thousands (a refusal's reason is a
    # StrEnum, so formatting it gives its value without the enum's property).
    out.write("".join([f"{r.line}: {r.reason}: {r.detail}\n" for r in report.rejected]))
    for rule in report.rules:
        kind = "refused" if rule.refusal else "advisory"
        where = ", ".join(map(str, rule.lines)) + (", ..." if rule.count > len(rule.lines) else "")
        label = "lines" if len(rule.lines) > 1 else "line"
        out.write(f"rule {rule.rule} ({kind}): {rule.count} {rule.title}: {label} {where}\n")
    out.write(f"{report.lines} lines, {report.events} events: {verdict(report)}\n")
    return status


def verdict(report: CheckReport) -> str:
    """The summary after the counts: refusals by reason, then the rules broken."""
    if report.empty:
        return "empty trace: nothing to check"
    if report.rejected:
        by_reason = ", ".join(f"{n} {reason}" for reason, n in report.reasons.items())
        text = f"{len(report.rejected)} refused ({by_reason})"
    else:
        text = "clean"
    refused = sorted({rule.rule for rule in report.rules if rule.refusal})
    advisory = sorted({rule.rule for rule in report.rules if not rule.refusal})
    notes = []
    if refused:
        notes.append("breaks rule " + ", ".join(map(str, refused)))
    if advisory:
        notes.append("advisory rule " + ", ".join(map(str, advisory)))
    if notes:
        text += f"; PROTOCOL section 10: {'; '.join(notes)}"
    return text
