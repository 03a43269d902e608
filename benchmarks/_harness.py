"""Timing, statistics and reporting shared by every benchmark.

A *figure* is one number with its repetitions (min / median / max), a unit, and
optionally a target it must meet. Benchmarks return lists of figures; ``run`` prints
them as one table and writes them as JSON.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Where a run writes its results and plots: under build/, which git ignores, so running
#: the benchmarks never changes a tracked file.
RESULTS = ROOT / "build" / "benchmarks"

#: Repetitions of every timed figure (the issue asks for at least 5).
REPEAT = 5


@dataclass
class Figure:
    """One reported number: its repetitions, and the target it is held to (if any)."""

    key: str  # stable id, e.g. "replay_ratio"
    label: str  # what the table shows
    unit: str  # "us/event", "x", "B", "events/s"
    values: list[float]
    target: float | None = None  # the bound the median is held to
    bound: str = "<="  # "<=" or ">="
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.median <= self.target if self.bound == "<=" else self.median >= self.target

    def verdict(self) -> str:
        if self.met is None:
            return ""
        if self.met:
            return "met"
        factor = self.median / self.target if self.bound == "<=" else self.target / self.median
        return f"MISSED ({factor:.1f}x off)"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(min=self.min, median=self.median, max=self.max, met=self.met)
        return data


def timed(run: Callable[[], Any]) -> float:
    """Seconds one call takes. The collector is emptied first, so a full collection
    left over from the previous repetition does not land in this one; it stays
    enabled while timing, as in real use."""
    gc.collect()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def paired(runs: Sequence[Callable[[], Any]], repeat: int = REPEAT) -> list[list[float]]:
    """Time several callables in turn, ``repeat`` rounds; returns seconds per callable.

    Interleaving the contenders (a, b, a, b, ...) spreads machine noise evenly over
    them, which matters on a shared machine.
    """
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for slot, run in zip(times, runs):
            slot.append(timed(run))
    return times


def fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:,.1f}x" if value < 100 else f"{value:,.0f}x"
    if unit == "events/s":
        return f"{value:,.0f}"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit.startswith("us"):
        return f"{value:,.3f}" if value < 1 else f"{value:,.2f}"
    return f"{value:,.3g}"


def table(figures: Sequence[Figure]) -> str:
    """The results as a Markdown table (readable in a terminal too)."""
    head = ["figure", "unit", "min", "median", "max", "target", "result"]
    rows = []
    for f in figures:
        target = f"{f.bound} {fmt(f.target, f.unit)}" if f.target is not None else ""
        rows.append([f.label, f.unit, fmt(f.min, f.unit), fmt(f.median, f.unit),
                     fmt(f.max, f.unit), target, f.verdict() or f.note])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = {2, 3, 4}

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i not in right else "-" * (w + 1) + ":"
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), rule, *(line(r) for r in rows)])


def machine() -> dict[str, Any]:
    """Where the figures came from."""
    cpu = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for text in Path("/proc/meminfo").read_text().splitlines():
            if text.startswith("MemTotal"):
                memory = f"{int(text.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10,
                                check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                                "reconcile"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10,
                               check=False).stdout.strip()
        if commit and dirty:
            commit += " (engine modified)"
    except (OSError, subprocess.SubprocessError):
        commit = ""
    import orjson

    try:
        load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "orjson": orjson.__version__,
        "commit": commit,
        "load": load,  # other processes on the machine make timings noisy
    }


def log(message: str) -> None:
    """Progress for people, on stderr (stdout carries the table)."""
    print(message, file=sys.stderr, flush=True)
