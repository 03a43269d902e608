"""Run every benchmark, print one table, write build/benchmarks/latest.json.

    python -m benchmarks.run                 # all figures, ~4 minutes on 2 cores
    python -m benchmarks.run --plot          # and draw build/benchmarks/scaling.png
    python -m benchmarks.run --update-docs   # and redraw the README's docs/scaling.png
    python -m benchmarks.run --quick         # a smoke run: small sizes, 2 repetitions
    python -m benchmarks.run --only peers,memory

Progress goes to stderr; the table (Markdown) and the machine it ran on to stdout.
Everything a run writes goes under build/ (ignored by git); only --update-docs changes a
tracked file, the picture the README shows.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from . import bench_decode, bench_engine, bench_memory, bench_peers, bench_scaling
from ._harness import REPEAT, RESULTS, ROOT, Figure, machine, table

ALL = ("decode", "engine", "scaling", "peers", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ALL),
                        help=f"comma-separated subset of {', '.join(ALL)}")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 2 repetitions: checks the harness, not the targets")
    parser.add_argument("--plot", action="store_true",
                        help=f"draw {(RESULTS / 'scaling.png').relative_to(ROOT)} (matplotlib)")
    parser.add_argument("--update-docs", action="store_true",
                        help="also redraw docs/scaling.png, the picture the README shows "
                             "(a tracked file: commit it with the README's table)")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    repeat = 2 if args.quick else REPEAT
    figures: list[Figure] = []
    series: dict[str, Any] = {}
    started = time.perf_counter()
    load_before = machine()["load"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if "decode" in chosen:
            figures += bench_decode.run(workdir)
        if "engine" in chosen:
            figures += bench_engine.run(workdir)
    if "scaling" in chosen:
        sizes = (10**3, 10**4) if args.quick else bench_scaling.SIZES
        found, more = bench_scaling.run(sizes, repeat)
        figures += found
        series.update(more)
    if "peers" in chosen:
        sizes = (10**3, 10**4) if args.quick else bench_peers.SIZES
        found, more = bench_peers.run(sizes, repeat)
        figures += found
        series.update(more)
    if "memory" in chosen:
        figures += bench_memory.run(10**4 if args.quick else bench_memory.N, repeat)
    elapsed = time.perf_counter() - started

    about = machine()
    about["load"] = f"{load_before} at start, {about['load']} at end"
    results = {
        "machine": about,
        "quick": args.quick,
        "repetitions": repeat,
        "seconds": round(elapsed, 1),
        "figures": [f.to_dict() for f in figures],
        # how many of the engine's bubbles each peer shows with the same text
        "agreement": series.pop("agreement", {}),
        "series": {k: {str(n): v for n, v in s.items()} for k, s in series.items()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")

    print(table(figures))
    print()
    print(f"Machine: {about['cpu']}, {about['cores']} cores, {about['memory']}, {about['os']}, "
          f"{about['python']}, orjson {about['orjson']}; commit {about['commit'] or '?'}; "
          f"{about['load']}")
    print(f"{repeat} repetitions per figure (min / median / max); targets apply to the median; "
          f"{elapsed:.0f} s in all. Results: {args.output}")
    missed = [f for f in figures if f.met is False]
    if missed:
        print("Missed: " + "; ".join(f"{f.label} ({f.verdict()})" for f in missed))
    if args.plot or args.update_docs:
        from .plot import PNG, draw

        print(f"Plot: {draw(results, RESULTS / 'scaling.png')}")
        if args.update_docs:
            print(f"Plot for the README: {draw(results, PNG)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
