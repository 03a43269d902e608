"""Running ``check`` on many files: in this process, in a local process pool, or on a
Dask cluster.

The unit of work is a *batch*: a short list of paths, checked one after another by
:func:`check_files` in one worker, which sends back one small record per file (never
the file's lines, never its full refusal list). Batching keeps the per-task overhead
of a pool or a cluster small next to the work when files are small, and the batches
are small enough that a slow file does not leave the other workers idle for long.

Scheduling is the pool's or Dask's own: ``concurrent.futures.ProcessPoolExecutor``
here, ``Client.map`` and ``as_completed`` on a cluster. Results are collected in the
order they finish; :func:`reconcile.audit.merge` sorts them, so that order never shows.
"""

from __future__ import annotations

import gzip
import math
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from reconcile import ReconcileError

from ._check import check_document
from ._read import READ_ERRORS, Unreadable, open_lines
from ._report import error_record, file_record

__all__ = ["AuditError", "check_file", "check_files", "run_serial", "run_local", "run_dask"]

#: Called as results arrive: (files done, files in all, lines done).
Progress = Callable[[int, int, int], None]
#: What a worker sends back per file: the record, and its timing apart.
Result = tuple[dict[str, Any], dict[str, Any]]


class AuditError(ReconcileError):
    """The audit as a whole cannot run (no cluster at that address, a worker without
    ``reconcile``): one message, exit 2. A bad *file* is never this: it is reported."""


def _describe(exc: BaseException) -> str:
    # Messages only from the exception's kind and the OS's text: the same broken file
    # gives the same words on every run (no addresses, no offsets of a read buffer).
    if isinstance(exc, EOFError):
        return "truncated gzip: the file ends before the end of its compressed stream"
    if isinstance(exc, (gzip.BadGzipFile, zlib.error)):
        return f"corrupt gzip: {exc}"
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return f"check failed: {type(exc).__name__}: {exc}"


def check_file(path: str) -> Result:
    """Check one trace; an unreadable, truncated or corrupt file gives an error record."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    count = [0]

    def counted(lines: Iterator[bytes]) -> Iterator[bytes]:
        for line in lines:
            count[0] += 1
            yield line

    try:
        with open_lines(path) as lines:
            record = file_record(path, check_document(counted(lines)))
    except Unreadable as exc:
        record = error_record(path, str(exc))
    except READ_ERRORS as exc:
        record = error_record(path, _describe(exc), count[0])
    except Exception as exc:  # noqa: BLE001 - one bad file must not end a fleet's audit
        # The engine should refuse, never raise; if it does on some input, that file
        # is reported and the rest of the audit goes on.
        record = error_record(path, _describe(exc), count[0])
    seconds = time.perf_counter() - started
    return record, {
        "path": path,
        "lines": count[0],
        "seconds": seconds,
        "cpu_seconds": time.thread_time() - cpu_started,
    }


def check_files(paths: list[str]) -> list[Result]:
    """One batch, checked in order (the function a pool or Dask worker runs)."""
    return [check_file(path) for path in paths]


def batches(paths: list[str], workers: int) -> list[list[str]]:
    """Split ``paths`` into batches: about eight per worker, at most 32 files each."""
    size = max(1, min(32, math.ceil(len(paths) / max(workers * 8, 1))))
    return [paths[i : i + size] for i in range(0, len(paths), size)]


class _Collector:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.results: list[Result] = []
        self.total = total
        self.lines = 0
        self.progress = progress

    def add(self, results: list[Result]) -> None:
        self.results.extend(results)
        self.lines += sum(t["lines"] for _, t in results)
        if self.progress is not None:
            self.progress(len(self.results), self.total, self.lines)


def run_serial(paths: list[str], progress: Progress | None = None) -> list[Result]:
    """Every file in this process, one after another."""
    collector = _Collector(len(paths), progress)
    for path in paths:
        collector.add([check_file(path)])
    return collector.results


def run_local(paths: list[str], workers: int, progress: Progress | None = None) -> list[Result]:
    """A pool of ``workers`` processes on this machine (1: this process, no pool)."""
    if workers <= 1 or len(paths) <= 1:
        return run_serial(paths, progress)
    collector = _Collector(len(paths), progress)
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(paths))) as pool:
            futures = [pool.submit(check_files, batch) for batch in batches(paths, workers)]
            for future in as_completed(futures):
                collector.add(future.result())
    except BrokenProcessPool:
        # A worker was killed (out of memory, a signal): no file's fault we can name.
        raise AuditError(
            "a worker process died (killed, or out of memory?); try fewer --workers"
        ) from None
    return collector.results


def run_dask(
    paths: list[str], scheduler: Any, progress: Progress | None = None,
    connect_timeout: float = 30.0,
) -> tuple[list[Result], int]:
    """On a Dask cluster; returns the results and how many worker threads it had.

    Args:
        scheduler: the scheduler's address (``tcp://host:8786``), or a connected
            ``dask.distributed.Client`` (left open for its owner).
        connect_timeout: seconds to wait for the scheduler at an address.

    Every worker must be able to import ``reconcile`` and read every path at the same
    name (shared storage): the paths are sent, never the files.
    """
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise AuditError(
            "--scheduler needs dask.distributed: pip install 'reconcile-chat[audit]'"
        ) from None
    own = not isinstance(scheduler, Client)
    if own:
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise AuditError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    else:
        client = scheduler
    try:
        threads = sum(client.nthreads().values())
        if not threads:
            raise AuditError(f"the Dask cluster at {client.scheduler.address} has no workers")
        collector = _Collector(len(paths), progress)
        # pure=False: two runs over the same paths must check the files again (they may
        # have changed), not reuse a result the cluster still holds.
        futures = client.map(check_files, batches(paths, threads), pure=False)
        try:
            for future in dask_completed(futures):
                collector.add(future.result())
        except (ImportError, AttributeError) as exc:
            raise AuditError(
                f"a Dask worker could not run the check ({type(exc).__name__}: {exc}); "
                "is the same version of reconcile installed on every worker?"
            ) from None
        return collector.results, threads
    finally:
        if own:
            client.close()
