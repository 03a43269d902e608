"""Summarise a mutmut run: the mutation score of each engine module.

Run from the repository root after ``mutmut run --max-children 2`` (see docs/testing.md)::

    python tools/mutation.py              # a Markdown table, one row per module
    python tools/mutation.py --survivors  # also list every mutant the tests let live
    python tools/mutation.py --names      # only the survivors' names, one a line

Re-running only the survivors after adding tests (mutmut re-runs named mutants)::

    rm mutants/mutmut-stats.json          # new tests: map tests to functions again
    mutmut run --max-children 2 $(python tools/mutation.py --names)

mutmut keeps each mutant's verdict in ``mutants/<module path>.meta`` (a JSON file mapping
the mutant's name to the exit code of the test run against it). This script only reads
those files; it never runs the tests itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

# mutmut's own reading of a test run's exit code (mutmut.stats.status_by_exit_code)
KILLED = {1, 3}
SURVIVED = {0}
TIMEOUT = {36, 24, -24, 152, 255}
NO_TESTS = {5, 33}
NOT_CHECKED = {None}


def verdict(exit_code: int | None) -> str:
    """Name mutmut's verdict for a test run's exit code."""
    if exit_code in KILLED:
        return "killed"
    if exit_code in SURVIVED:
        return "survived"
    if exit_code in TIMEOUT:
        return "timeout"
    if exit_code in NO_TESTS:
        return "no tests"
    if exit_code in NOT_CHECKED:
        return "not checked"
    return "other"


def load(root: Path) -> dict[str, dict[str, int | None]]:
    """Map each mutated module (``reconcile._wire``) to its mutants' exit codes."""
    modules: dict[str, dict[str, int | None]] = {}
    for meta in sorted(root.glob("**/*.py.meta")):
        codes = json.loads(meta.read_text("utf-8")).get("exit_code_by_key", {})
        if not codes:
            continue
        module = ".".join(meta.relative_to(root).with_suffix("").with_suffix("").parts)
        modules[module] = codes
    return modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Summarise a mutmut run (read from mutants/): killed / total per module.",
    )
    parser.add_argument("--mutants", type=Path, default=Path("mutants"),
                        help="the folder mutmut wrote (default: mutants)")
    parser.add_argument("--survivors", action="store_true",
                        help="list the surviving mutants after the table")
    parser.add_argument("--names", action="store_true",
                        help="print only the surviving mutants' names (for `mutmut run`)")
    args = parser.parse_args(argv)
    modules = load(args.mutants)
    if not modules:
        print(f"no mutmut results under {args.mutants}/: run `mutmut run` first", file=sys.stderr)
        return 1
    if args.names:
        for codes in modules.values():
            for name, code in sorted(codes.items()):
                if verdict(code) in ("survived", "no tests"):
                    print(name)
        return 0
    # A timeout counts as a kill: the mutant made the tests run away, which a run notices.
    print("| module | killed | timeout | survived | no tests | not checked | total | score |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    overall: Counter[str] = Counter()
    for module, codes in modules.items():
        counts = Counter(verdict(code) for code in codes.values())
        overall.update(counts)
        print(_row(module, counts, len(codes)))
    print(_row("**all**", overall, sum(len(c) for c in modules.values())))
    if args.survivors:
        print()
        for module, codes in modules.items():
            for name, code in sorted(codes.items()):
                if verdict(code) in ("survived", "no tests"):
                    print(f"{verdict(code).replace(' ', '-')} {name}")
    return 0


def _row(name: str, counts: Counter[str], total: int) -> str:
    caught = counts["killed"] + counts["timeout"]
    score = f"{100 * caught / total:.1f} %" if total else "-"
    return (f"| {name} | {counts['killed']} | {counts['timeout']} | {counts['survived']} "
            f"| {counts['no tests']} | {counts['not checked']} | {total} | {score} |")


if __name__ == "__main__":
    sys.exit(main())
