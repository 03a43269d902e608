"""``reconcile audit PATH...``: ``check`` over many traces, merged into one report.

A readable summary by default, ``--json`` for machines (``report``, deterministic, and
``timing``, not), ``--chart FILE`` for the refusal mix as HTML or an image. Runs on a
local process pool (``--workers``) or a Dask cluster (``--scheduler``). Exit 0 when
every file was read and nothing refused, 1 otherwise (with ``--strict``, advisory
rule breaks count too), 2 for usage errors or a cluster that cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

from ._common import UsageError, can_write_any_text, dumps, shorten

HELP = "check many traces (files, directories, globs; gzip too) and merge the results"
DESCRIPTION = (
    "Run `check` on every trace (plain or gzip JSON Lines) in parallel, locally or on a "
    "Dask cluster, and print one report: refusals per reason and per PROTOCOL section-10 "
    "rule, the worst files, per-thread counts, gaps, unreadable files and the slowest "
    "files. Exit 0 when every file was read and clean, 1 otherwise."
)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", metavar="PATH", nargs="+",
        help="trace files, directories (searched for *.jsonl[.gz], *.ndjson[.gz]) or "
        "globs (quote them; ** crosses directories)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--workers", type=_positive, metavar="N",
        help="local processes (default: one per core; 1 runs in this process; "
        "ignored with --scheduler)",
    )
    parser.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run on this Dask cluster (tcp://host:8786) instead; needs reconcile-chat[audit]",
    )
    parser.add_argument(
        "--chart", metavar="FILE",
        help="also draw the refusal mix: .html (no dependency), .png, .svg or .pdf",
    )
    parser.add_argument(
        "--top", type=_positive, default=10, metavar="N",
        help="files listed as worst and slowest, threads and first lines shown (default 10)",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help="exit 1 also when a section-10 rule is broken only as an advisory",
    )
    parser.add_argument(
        "--progress", action="store_true",
        help="show files and lines done on stderr (default: only on a terminal)",
    )


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from reconcile.audit import AuditError, audit, exit_status, expand, write_chart
    from reconcile.audit.chart import CHART_SUFFIXES

    if args.chart and not args.chart.lower().endswith(CHART_SUFFIXES):
        raise UsageError(f"--chart {args.chart}: use one of {', '.join(CHART_SUFFIXES)}")
    files, problems = expand(args.paths)
    if not files:
        named = "; ".join(f"{path}: {why}" for path, why in problems)
        raise UsageError(f"no trace files to audit ({named})")
    show = args.progress or sys.stderr.isatty()
    shown = [False]

    def progress(done: int, total: int, lines: int) -> None:
        shown[0] = True
        print(f"\raudit: {done:,}/{total:,} files, {lines:,} lines", end="",
              file=sys.stderr, flush=True)

    try:
        result = audit(
            args.paths, workers=args.workers, scheduler=args.scheduler, top=args.top,
            progress=progress if show else None,
        )
    except AuditError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if shown[0]:
            print(file=sys.stderr)
    report = result["report"]
    if args.chart:
        try:
            write_chart(report, args.chart)
        except AuditError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        out.write(dumps(result, ascii_only=not can_write_any_text(out)) + "\n")
    else:
        out.write(summary(result, args.top))
    return exit_status(report, strict=args.strict)


def _files(n: int) -> str:
    return f"{n:,} file" if n == 1 else f"{n:,} files"


def summary(result: dict[str, Any], top: int = 10) -> str:
    """The report for people: totals first, then what to look at."""
    report, timing = result["report"], result["timing"]
    files = report["files"]
    lines = [
        f"audit of {_files(files['count'])} ({files['read']:,} read, "
        f"{files['unreadable']:,} unreadable): {report['lines']:,} lines, "
        f"{report['events']:,} events"
    ]
    if report["refused"]:
        lines.append(f"refused: {report['refused']:,} in {_files(files['with_refusals'])}")
        width = max(len(r) for r in report["reasons"])
        lines += [f"  {r:<{width}}  {n:>12,}" for r, n in report["reasons"].items()]
    else:
        lines.append("refused: none")
    if report["rules"]:
        lines.append("PROTOCOL section 10, rules broken:")
        from reconcile.audit import rule_kind

        for rule in report["rules"]:
            kind = rule_kind(rule)
            first = ", ".join(f"{f['path']}:{f['line']}" for f in rule["first"][:3])
            lines.append(
                f"  rule {rule['rule']} ({rule['title']}): {rule['count']:,} in "
                f"{_files(rule['files'])}, {kind}; first at {first}"
            )
    gaps = report["gaps"]
    if gaps["count"]:
        lines.append(f"gaps: {gaps['count']:,} in {_files(gaps['files'])}")
        for gap in gaps["first"][:3]:
            lines.append(
                f"  {gap['path']}: thread {gap['thread']}, after seq {gap['after']}, "
                f"before seq {gap['before']}"
            )
    if report["worst"]:
        lines.append("worst files:")
        for worst in report["worst"]:
            reasons = ", ".join(f"{n:,} {r}" for r, n in worst["reasons"].items())
            rules = ", ".join(str(r) for r in worst["rules"])
            note = f" ({reasons})" if reasons else ""
            lines.append(
                f"  {worst['path']}: {worst['refused']:,} refused{note}, "
                f"{worst['advisories']:,} advisories, rules {rules or '-'}"
            )
    troubled = sorted(
        ((t, c) for t, c in report["threads"].items() if c["refused"] or c["gaps"]),
        key=lambda item: (-item[1]["refused"], -item[1]["gaps"], item[0]),
    )[:top]
    lines.append(
        f"threads: {len(report['threads']):,}"
        + (", most refused:" if troubled else ", none with refusals or gaps")
    )
    for thread, counts in troubled:
        lines.append(
            f"  {shorten(thread, 40)}: {counts['refused']:,} refused, {counts['gaps']:,} gaps, "
            f"{counts['bubbles']:,} bubbles in {_files(counts['files'])}"
        )
    if report["unreadable"]:
        lines.append("unreadable:")
        lines += [f"  {u['path']}: {u['error']}" for u in report["unreadable"]]
    lines.append(
        f"run: {timing['runner']}, {timing['workers']} workers, {timing['wall_seconds']:.2f} s "
        f"wall, {timing['cpu_seconds']:.2f} s CPU, "
        f"{timing['lines_per_second'] or 0:,} lines/s; slowest files:"
    )
    lines += [
        f"  {s['path']}: {s['seconds']:.3f} s, {s['lines']:,} lines"
        for s in timing["slowest"][:3]
    ]
    return "\n".join(lines) + "\n"
