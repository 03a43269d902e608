"""``reconcile audit``: lines per second on one process, on every core, and on a
two-worker Dask ``LocalCluster``, on the same corpus, measured in one run.

    python -m benchmarks.bench_audit            # about a minute on 2 cores
    python -m benchmarks.bench_audit --quick    # a smoke run: small corpus, 1 round

The corpus: 48 simulated sessions (``generate(seed, turns=400, threads=3, faults=0.01)``,
about 6 700 lines each, 320 000 in all), a quarter of them gzip-compressed, written
to a temporary directory. Each round runs the three contenders in turn (paired, so
the noise of a shared machine spreads over them) through :func:`reconcile.audit.audit`,
the function the command runs: finding the files, checking, merging. The process
pool is started inside the timed run (that is what a command pays); the Dask
cluster is started once before, as a real cluster would be running already.

Figures: lines per second of each (median over rounds), the ratios to one process
(per round, then min / median / max), and CPU time beside wall time: the CPU the
checks used (per-file thread time, summed over workers) against the wall time of the
run; and the per-core rate, lines per CPU second of the one-process run, from which
the sizing for 10^10 events a day is printed (docs/audit.md). Target: on a machine
with at least two cores, all cores reach >= 1.7x one process. The three reports
must be equal (the run stops if not).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

from reconcile.audit import audit, default_workers
from reconcile.testing.simulate import generate

from ._harness import Figure, log, machine, table

FILES = 48
TURNS = 400
ROUNDS = 5
TARGET = 1.7
EVENTS_PER_DAY = 10**10


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i & 7
    return total


def ceiling(cores: int, spin: int = 3_000_000) -> float:
    """The speed-up the machine gives right now to ``cores`` busy processes over one:
    the same pure-Python loops, run by a pool of one process and a pool of ``cores``.
    On an idle machine it is close to ``cores``; other jobs pull it down, and the
    audit's ratio cannot beat it."""
    from concurrent.futures import ProcessPoolExecutor

    def timed_pool(workers: int) -> float:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_spin, [1000] * workers))  # started before timing
            started = time.perf_counter()
            list(pool.map(_spin, [spin] * cores * 2))
            return time.perf_counter() - started

    return timed_pool(1) / timed_pool(cores)


def write_corpus(root: Path, files: int, turns: int) -> int:
    """The corpus; returns its line count."""
    total = 0
    for i in range(files):
        lines = generate(1000 + i, turns=turns, threads=3, faults=0.01)
        total += len(lines)
        data = "".join(line + "\n" for line in lines).encode()
        if i % 4 == 0:
            (root / f"s{i:03d}.jsonl.gz").write_bytes(gzip.compress(data, compresslevel=6))
        else:
            (root / f"s{i:03d}.jsonl").write_bytes(data)
    return total


def run(files: int = FILES, turns: int = TURNS, rounds: int = ROUNDS) -> list[Figure]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        Client = LocalCluster = None  # noqa: N806
    cores = default_workers()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        root = Path(tmp)
        log(f"audit: writing {files} sessions of {turns} turns")
        lines = write_corpus(root, files, turns)
        paths = [str(root)]
        cluster = client = None
        if LocalCluster is not None:
            log("audit: starting a 2-worker Dask LocalCluster (processes, 1 thread each)")
            started = time.perf_counter()
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
            log(f"audit: cluster up in {time.perf_counter() - started:.1f} s (not timed)")
        contenders = {
            "one process": lambda: audit(paths, workers=1),
            f"all cores ({cores} processes)": lambda: audit(paths, workers=cores),
        }
        if client is not None:
            contenders["Dask LocalCluster, 2 workers"] = lambda: audit(paths, scheduler=client)
        walls: dict[str, list[float]] = {name: [] for name in contenders}
        cpus: dict[str, list[float]] = {name: [] for name in contenders}
        concurrency: dict[str, list[float]] = {name: [] for name in contenders}
        reports = {}
        ceilings: list[float] = []
        try:
            for number in range(rounds):
                for name, contender in contenders.items():
                    started = time.perf_counter()
                    result = contender()
                    walls[name].append(time.perf_counter() - started)
                    cpus[name].append(result["timing"]["cpu_seconds"])
                    concurrency[name].append(result["timing"]["concurrency"] or 0.0)
                    reports[name] = result["report"]
                ceilings.append(ceiling(cores))
                log(f"audit: round {number + 1}/{rounds}: " + ", ".join(
                    f"{name} {walls[name][-1]:.2f} s" for name in contenders)
                    + f"; machine ceiling {ceilings[-1]:.2f}x")
        finally:
            if client is not None:
                client.close()
                cluster.close()
    first = next(iter(reports.values()))
    if any(report != first for report in reports.values()):
        raise SystemExit("audit: the runners gave different reports")
    assert first["lines"] == lines

    names = list(contenders)
    base = names[0]
    figures = []
    for name in names:
        rates = [lines / w for w in walls[name]]
        cpu_note = (f"CPU {statistics.median(cpus[name]):.2f} s of checks per "
                    f"{statistics.median(walls[name]):.2f} s wall, "
                    f"{statistics.median(concurrency[name]):.2f} files at once")
        figures.append(Figure(f"audit_rate_{names.index(name)}", f"audit lines/s, {name}",
                              "events/s", rates, note=cpu_note,
                              extra={"wall_seconds": walls[name], "cpu_seconds": cpus[name]}))
    per_cpu = [lines / c for c in cpus[base]]
    figures.append(Figure("audit_per_core", "audit lines per CPU second (one core)",
                          "events/s", per_cpu,
                          note="the per-core rate: CPU time, so steadier than wall time"))
    for name in names[1:]:
        ratios = [b / w for b, w in zip(walls[base], walls[name])]
        target = TARGET if name.startswith("all cores") and cores >= 2 else None
        figures.append(Figure(f"audit_ratio_{names.index(name)}", f"{name} / one process",
                              "x", ratios, target=target, bound=">="))
    figures.append(Figure("audit_ceiling", f"machine now: {cores} busy loops / 1 (ceiling)",
                          "x", ceilings,
                          note="what other jobs leave; the ratios above cannot beat it"))
    return figures


def sizing(per_core: float, events_per_day: int = EVENTS_PER_DAY) -> str:
    """How many cores a day's events need at the measured per-core rate."""
    mean = events_per_day / 86_400
    cores = mean / per_core
    return (
        f"{events_per_day:.0e} events/day = {mean:,.0f} events/s on average; at "
        f"{per_core:,.0f} lines/s per core that is {cores:.1f} cores busy all day, "
        f"or {cores * 24 / 2:.0f} cores to audit a day's traces in 2 hours"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, one round")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"default {ROUNDS}")
    args = parser.parse_args()
    if args.quick:
        figures = run(files=8, turns=60, rounds=1)
    else:
        figures = run(rounds=args.rounds)
    print(table(figures))
    per_core = next(f for f in figures if f.key == "audit_per_core").median
    print()
    print(sizing(per_core))
    info = machine()
    print(f"\n{info['cpu']}, {info['cores']} cores, {info['python']}, {info['load']}",
          file=sys.stdout)


if __name__ == "__main__":
    main()
