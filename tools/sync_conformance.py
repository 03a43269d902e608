#!/usr/bin/env python3
"""Keep tests/data/conformance in sync with ../shared/conformance.

usage: python tools/sync_conformance.py [--check]

Copies every case folder (trace.jsonl + expected.json) from the shared corpus into
the vendored copy the test suite uses, so the suite passes on a machine without
../shared. With --check it only compares and exits 1 when the copies differ
(tests/test_conformance.py runs the same comparison when ../shared is present).
"""

from __future__ import annotations

import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "conformance"
VENDORED = ROOT / "tests" / "data" / "conformance"


def differences(shared: Path = SHARED, vendored: Path = VENDORED) -> list[str]:
    """Case files that are missing, extra or different in the vendored copy."""
    out = []
    names = {p.name for p in shared.iterdir() if p.is_dir()}
    mine = {p.name for p in vendored.iterdir() if p.is_dir()} if vendored.exists() else set()
    out += [f"missing case {n}" for n in sorted(names - mine)]
    out += [f"extra case {n}" for n in sorted(mine - names)]
    for name in sorted(names & mine):
        for f in ("trace.jsonl", "expected.json"):
            a, b = shared / name / f, vendored / name / f
            if not b.exists() or not filecmp.cmp(a, b, shallow=False):
                out.append(f"{name}/{f} differs")
    return out


def main(argv: list[str]) -> int:
    if not SHARED.is_dir():
        print(f"no shared corpus at {SHARED}", file=sys.stderr)
        return 2
    diff = differences()
    if "--check" in argv:
        print("\n".join(diff) or "in sync")
        return 1 if diff else 0
    if VENDORED.exists():
        shutil.rmtree(VENDORED)
    shutil.copytree(SHARED, VENDORED)
    print(f"copied {len(list(VENDORED.iterdir()))} cases into {VENDORED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
