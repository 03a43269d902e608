#!/usr/bin/env python3
"""Keep the test suite's vendored copies in sync with the shared folder beside the project.

Two copies are kept, so the suite passes on a machine that has only this repository:

* tests/data/conformance: every case folder (trace.jsonl + expected.json) of the
  shared conformance corpus, copied whole;
* tests/data/real-server: the captures recorded against the real server (the
  ``.jsonl`` traces and the ``.txt`` screens). Only those files are copied: the
  README and the ``*.expected.json`` files there are this project's own, written
  for the suite, and are left alone.

tests/test_conformance.py and tests/test_real_server_captures.py run the same
comparison as ``--check`` when the shared folder is present, and fail on drift.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _find_shared() -> Path:
    """``shared`` beside the project (or beside the folder holding its worktrees)."""
    candidates = [ROOT.parent / "shared", ROOT.parent.parent / "shared"]
    return next((c for c in candidates if (c / "conformance").is_dir()), candidates[0])


SHARED_ROOT = _find_shared()
SHARED = SHARED_ROOT / "conformance"
VENDORED = ROOT / "tests" / "data" / "conformance"
SHARED_CAPTURES = SHARED_ROOT / "real-server"
VENDORED_CAPTURES = ROOT / "tests" / "data" / "real-server"
#: What a capture is: the files copied from the shared real-server folder.
CAPTURE_SUFFIXES = (".jsonl", ".txt")


def differences(shared: Path = SHARED, vendored: Path = VENDORED) -> list[str]:
    """Case files that are missing, extra or different in the vendored corpus."""
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


def captures(folder: Path) -> set[str]:
    """Names of the capture files in ``folder`` (traces and screens)."""
    if not folder.is_dir():
        return set()
    return {
        p.name for p in folder.iterdir()
        if p.is_file() and p.suffix in CAPTURE_SUFFIXES and not p.name.endswith(".expected.json")
    }


def capture_differences(
    shared: Path = SHARED_CAPTURES, vendored: Path = VENDORED_CAPTURES
) -> list[str]:
    """Capture files that are missing, extra or different in the vendored copy."""
    names, mine = captures(shared), captures(vendored)
    out = [f"missing capture {n}" for n in sorted(names - mine)]
    out += [f"extra capture {n}" for n in sorted(mine - names)]
    out += [
        f"capture {n} differs" for n in sorted(names & mine)
        if not filecmp.cmp(shared / n, vendored / n, shallow=False)
    ]
    return out


def sync_corpus() -> str:
    if VENDORED.exists():
        shutil.rmtree(VENDORED)
    shutil.copytree(SHARED, VENDORED)
    return f"copied {len(list(VENDORED.iterdir()))} cases into {VENDORED.relative_to(ROOT)}"


def sync_captures() -> str:
    VENDORED_CAPTURES.mkdir(parents=True, exist_ok=True)
    for name in captures(VENDORED_CAPTURES) - captures(SHARED_CAPTURES):
        (VENDORED_CAPTURES / name).unlink()
    names = sorted(captures(SHARED_CAPTURES))
    for name in names:
        shutil.copyfile(SHARED_CAPTURES / name, VENDORED_CAPTURES / name)
    return (f"copied {len(names)} captures into {VENDORED_CAPTURES.relative_to(ROOT)} "
            "(check each *.expected.json and the README there by hand)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/sync_conformance.py",
        description=__doc__.split("\n\n")[0],
        epilog="Without options, copies both; exit 2 when the shared folder is absent.",
    )
    parser.add_argument("--check", action="store_true",
                        help="only compare; print the differences and exit 1 if there are any")
    parser.add_argument("--only", choices=("corpus", "captures"),
                        help="sync or check one of the two copies")
    parser.add_argument("--shared", type=Path, default=SHARED_ROOT, metavar="DIR",
                        help=f"the shared folder (default {SHARED_ROOT})")
    return parser


def main(argv: list[str]) -> int:
    global SHARED, SHARED_CAPTURES
    args = build_parser().parse_args(argv)
    SHARED, SHARED_CAPTURES = args.shared / "conformance", args.shared / "real-server"
    parts = ("corpus", "captures") if args.only is None else (args.only,)
    sources = {"corpus": SHARED, "captures": SHARED_CAPTURES}
    for part in parts:
        if not sources[part].is_dir():
            print(f"no shared folder at {sources[part]}", file=sys.stderr)
            return 2
    if args.check:
        diff = []
        if "corpus" in parts:
            diff += differences(SHARED, VENDORED)
        if "captures" in parts:
            diff += capture_differences(SHARED_CAPTURES, VENDORED_CAPTURES)
        print("\n".join(diff) or "in sync")
        return 1 if diff else 0
    if "corpus" in parts:
        print(sync_corpus())
    if "captures" in parts:
        print(sync_captures())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
