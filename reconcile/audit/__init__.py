"""``reconcile audit``: ``check`` over a fleet's captures, merged into one report.

Each trace file is one socket session, independent of the others, so the work splits
by file: every file is checked on its own (in this process, a local process pool, or
a Dask cluster) and the per-file results are merged into one report::

    from reconcile.audit import audit
    result = audit(["/shared/traces/"], workers=4)
    result["report"]["reasons"]        # refusals per reason, over every file
    result["timing"]["slowest"]        # varies from run to run; kept apart

The ``report`` part is deterministic: the same files give the same report whatever the
number of workers or the order they finish in. docs/audit.md describes every key.

Modules: :mod:`._read` finds and streams files (plain or gzip), :mod:`._check` is the
one place a file is judged, :mod:`._report` merges (pure), :mod:`._runner` runs the
checks, :mod:`.chart` draws the refusal mix.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ._check import check_document
from ._read import expand, open_lines
from ._report import (
    REPORT_VERSION,
    error_record,
    exit_status,
    file_record,
    merge,
    rule_kind,
    timing,
)
from ._runner import AuditError, Progress, check_file, run_dask, run_local
from .chart import write_chart

__all__ = [
    "audit",
    "AuditError",
    "check_document",
    "check_file",
    "default_workers",
    "exit_status",
    "expand",
    "file_record",
    "merge",
    "open_lines",
    "REPORT_VERSION",
    "rule_kind",
    "write_chart",
]


def default_workers() -> int:
    """One process per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def audit(
    paths: list[str],
    *,
    workers: int | None = None,
    scheduler: Any = None,
    top: int = 10,
    progress: Progress | None = None,
    connect_timeout: float = 30.0,
) -> dict[str, Any]:
    """Check every trace ``paths`` names and merge the results.

    Args:
        paths: files, directories and globs (see :func:`expand`).
        workers: local processes (default: one per core); ignored with ``scheduler``.
        scheduler: a Dask scheduler address or ``Client``: run there instead.
        top: how many files the worst and slowest lists keep.
        progress: called with (files done, files in all, lines done) as files finish.
        connect_timeout: seconds to wait for a scheduler given by address.

    Returns:
        ``{"report": ..., "timing": ...}``; only ``report`` is deterministic.

    Raises:
        AuditError: the run as a whole cannot go on (the cluster is unreachable).
    """
    files, problems = expand(paths)
    started = time.perf_counter()
    if scheduler is not None:
        results, workers = run_dask(files, scheduler, progress, connect_timeout)
        runner = "dask"
    else:
        workers = workers or default_workers()
        results = run_local(files, workers, progress)
        runner = "local"
    wall = time.perf_counter() - started
    records = [record for record, _ in results]
    records.extend(error_record(path, reason) for path, reason in problems)
    return {
        "report": merge(records, top=top),
        "timing": timing((t for _, t in results), wall, runner, workers, top=top),
    }
