"""Merging per-file ``check`` documents into one audit report (pure, deterministic).

Three steps, each a pure function:

1. :func:`file_record`: one trace's check document condensed to what the audit keeps
   (counts, the first few refusals and gaps; never the whole refusal list, so what a
   worker sends back is small whatever the file's size).
2. :func:`merge`: the records of every file, in any order, into the ``report``
   document. Records are sorted by path first, and every list in the report has a
   total order, so the report depends only on the inputs: not on the number of
   workers, nor on the order they finished in.
3. :func:`timing`: wall and CPU time, rates and the slowest files. These vary from run
   to run, so they live in a section of their own, apart from ``report``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconcile import LocalProtocolError

from ._check import FIRST_LINES

__all__ = [
    "REPORT_VERSION", "file_record", "error_record", "merge", "timing", "exit_status", "rule_kind",
]

#: Bumped when a key of the report changes meaning or disappears.
REPORT_VERSION = 1

#: Per-thread counts summed over files (a count a document lacks counts as 0).
_THREAD_COUNTS = ("events", "bubbles", "refused", "gaps")


def file_record(path: str, document: dict[str, Any]) -> dict[str, Any]:
    """Condense one file's check document (``CheckReport.to_dict()``)."""
    reasons = dict(document.get("reasons", {}))
    rules = {
        _rule_key(rule): {
            "rule": rule["rule"],
            "title": rule["title"],
            "count": rule["count"],
            "refused": rule.get("refused", rule["count"] if rule["refusal"] else 0),
            "lines": list(rule["lines"])[:FIRST_LINES],
            "refusal": bool(rule["refusal"]),
        }
        for rule in document.get("rules", ())
    }
    return {
        "path": path,
        "lines": document["lines"],
        "events": document["events"],
        "refused": sum(reasons.values()),
        "reasons": reasons,
        "rules": rules,
        "threads": {
            thread: dict(counts) for thread, counts in document.get("threads", {}).items()
        },
        "gaps": len(document.get("gaps", ())),
        "first_gaps": [dict(g) for g in document.get("gaps", ())[:FIRST_LINES]],
        "first_refusals": [dict(r) for r in document.get("rejected", ())[:FIRST_LINES]],
        "error": None,
    }


def _rule_key(rule: dict[str, Any]) -> str:
    # Two kinds of break may share a rule number (rule 3: stream events, drafts).
    return rule.get("key") or f"rule-{rule['rule']}"


def error_record(path: str, error: str, lines_read: int = 0) -> dict[str, Any]:
    """A file that could not be read to its end: reported, and left out of the totals."""
    return {"path": path, "error": error, "lines_read": lines_read}


def _advisories(record: dict[str, Any]) -> int:
    return sum(r["count"] - r["refused"] for r in record["rules"].values())


def merge(records: Iterable[dict[str, Any]], top: int = 10) -> dict[str, Any]:
    """The audit report of many files (see docs/audit.md for every key).

    Args:
        records: :func:`file_record` or :func:`error_record` results, in any order.
        top: how many files the ``worst`` list and the first-of lists keep.

    Raises:
        LocalProtocolError: two records name the same path (a caller's mistake; the
            audit itself checks each path once).
    """
    records = sorted(records, key=lambda r: r["path"])
    for before, after in zip(records, records[1:]):
        if before["path"] == after["path"]:
            raise LocalProtocolError(f"{before['path']} was checked twice")
    read = [r for r in records if r.get("error") is None]
    unreadable = [
        {"path": r["path"], "error": r["error"], "lines_read": r.get("lines_read", 0)}
        for r in records
        if r.get("error") is not None
    ]

    reasons: dict[str, int] = {}
    rules: dict[str, dict[str, Any]] = {}
    threads: dict[str, dict[str, int]] = {}
    first_gaps: list[dict[str, Any]] = []
    for record in read:
        path = record["path"]
        for reason, n in record["reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
        for key, rule in record["rules"].items():
            total = rules.setdefault(
                key,
                {"rule": rule["rule"], "key": key, "title": rule["title"], "count": 0,
                 "refused": 0, "files": 0, "refusal": False, "first": []},
            )
            total["count"] += rule["count"]
            total["refused"] += rule["refused"]
            total["files"] += 1
            total["refusal"] = total["refusal"] or rule["refusal"]
            room = top - len(total["first"])
            total["first"].extend({"path": path, "line": n} for n in rule["lines"][:max(room, 0)])
        for thread, counts in record["threads"].items():
            total_t = threads.setdefault(
                thread, {"files": 0, "events": 0, "bubbles": 0, "refused": 0, "gaps": 0}
            )
            total_t["files"] += 1
            for key in _THREAD_COUNTS:
                total_t[key] += counts.get(key, 0)
        room = top - len(first_gaps)
        first_gaps.extend({"path": path, **g} for g in record["first_gaps"][:max(room, 0)])

    worst = sorted(
        (r for r in read if r["refused"] or _advisories(r)),
        key=lambda r: (-r["refused"], -_advisories(r), r["path"]),
    )[:top]
    refused = sum(r["refused"] for r in read)
    return {
        "version": REPORT_VERSION,
        "files": {
            "count": len(records),
            "read": len(read),
            "unreadable": len(unreadable),
            "with_refusals": sum(1 for r in read if r["refused"]),
            "with_gaps": sum(1 for r in read if r["gaps"]),
        },
        "lines": sum(r["lines"] for r in read),
        "events": sum(r["events"] for r in read),
        "refused": refused,
        "reasons": dict(sorted(reasons.items())),
        "rules": sorted(rules.values(), key=lambda r: (r["rule"], r["key"])),
        "threads": dict(sorted(threads.items())),
        "gaps": {
            "count": sum(r["gaps"] for r in read),
            "files": sum(1 for r in read if r["gaps"]),
            "first": first_gaps,
        },
        "worst": [
            {
                "path": r["path"],
                "refused": r["refused"],
                "advisories": _advisories(r),
                "reasons": r["reasons"],
                "rules": sorted({v["rule"] for v in r["rules"].values()}),
                "first_refusals": r["first_refusals"],
            }
            for r in worst
        ],
        "unreadable": unreadable,
        "per_file": [
            {
                "path": r["path"],
                "lines": r["lines"],
                "events": r["events"],
                "refused": r["refused"],
                "reasons": r["reasons"],
                "rules": {k: v["count"] for k, v in sorted(r["rules"].items())},
                "gaps": r["gaps"],
                "threads": len(r["threads"]),
            }
            for r in read
        ],
    }


def timing(
    timings: Iterable[dict[str, Any]],
    wall_seconds: float,
    runner: str,
    workers: int,
    top: int = 10,
) -> dict[str, Any]:
    """The run's figures: varying from run to run, so kept apart from the report.

    Args:
        timings: per file ``{"path", "lines", "seconds", "cpu_seconds"}``.
        wall_seconds: the whole run, from the first file handed out to the last result.
        runner: ``"local"`` or ``"dask"``.
        workers: processes (local) or Dask worker threads.
    """
    timings = list(timings)
    lines = sum(t["lines"] for t in timings)
    cpu = sum(t["cpu_seconds"] for t in timings)
    in_flight = sum(t["seconds"] for t in timings)
    slowest = sorted(timings, key=lambda t: (-t["seconds"], t["path"]))[:top]
    return {
        "runner": runner,
        "workers": workers,
        "wall_seconds": round(wall_seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "lines_per_second": round(lines / wall_seconds) if wall_seconds > 0 else None,
        "lines_per_cpu_second": round(lines / cpu) if cpu > 0 else None,
        # Files being checked at once, on average: near `workers` when the pool is
        # kept busy; CPU below wall time within that means the machine was shared.
        "concurrency": round(in_flight / wall_seconds, 2) if wall_seconds > 0 else None,
        "slowest": [
            {
                "path": t["path"],
                "seconds": round(t["seconds"], 3),
                "cpu_seconds": round(t["cpu_seconds"], 3),
                "lines": t["lines"],
            }
            for t in slowest
        ],
    }


def exit_status(report: dict[str, Any], strict: bool = False) -> int:
    """0 when every file was read and nothing was refused (nor, with ``strict``, any
    advisory rule broken); 1 otherwise."""
    if report["refused"] or report["files"]["unreadable"]:
        return 1
    if strict and any(rule["count"] > rule["refused"] for rule in report["rules"]):
        return 1
    return 0


def rule_kind(rule: dict[str, Any]) -> str:
    """``refused``, ``advisory``, or ``N refused`` when only some of its breaks were."""
    if not rule["refused"]:
        return "advisory"
    if rule["refused"] >= rule["count"]:
        return "refused"
    return f"{rule['refused']:,} refused"
