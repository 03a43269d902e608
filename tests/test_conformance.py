"""Every public conformance case, through the CLI's JSON output and the library API."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconcile import Reconciler
from reconcile.cli import main

from .helpers import CONFORMANCE, case_dirs, trace_lines, without_details
from .model import replay

CASES = case_dirs()


def _sync_tool():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    try:
        import sync_conformance
    finally:
        sys.path.pop(0)
    return sync_conformance


SHARED = _sync_tool().SHARED


def first_difference(expected: dict, got: dict) -> str | None:
    """The comparison rules of PROTOCOL section 9 (same as shared/tools/conformance.py)."""
    et, gt = expected["threads"], got.get("threads", {})
    if list(et) != list(gt):
        return f"threads {list(et)} != {list(gt)}"
    for h, ebs in et.items():
        gbs = gt[h]
        if len(ebs) != len(gbs):
            return f"thread {h}: {len(ebs)} bubbles expected, got {len(gbs)}"
        for i, (eb, gb) in enumerate(zip(ebs, gbs)):
            for k, v in eb.items():
                if gb.get(k, "<missing>") != v:
                    return f"thread {h} bubble {i} field {k}: expected {v!r}, got {gb.get(k)!r}"
    er = expected.get("rejected", [])
    gr = [{"line": r["line"], "reason": r["reason"]} for r in got.get("rejected", [])]
    if er != gr:
        return f"rejected: expected {er}, got {gr}"
    return None


def expected_of(case: Path) -> dict:
    return json.loads((case / "expected.json").read_text(encoding="utf-8"))


def test_the_corpus_is_vendored():
    assert len(CASES) >= 22
    for case in CASES:
        assert (case / "trace.jsonl").is_file()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside the project")
def test_vendored_corpus_is_in_sync_with_shared():
    assert _sync_tool().differences(SHARED, CONFORMANCE) == [], (
        "run python tools/sync_conformance.py")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_through_the_library(case):
    r = Reconciler()
    r.feed(trace_lines(case / "trace.jsonl"))
    r._check()
    assert first_difference(expected_of(case), r.to_dict()) is None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_through_cli_json(case):
    out = io.StringIO()
    status = main(["replay", "--json", str(case / "trace.jsonl")], out=out)
    assert status == 0
    assert first_difference(expected_of(case), json.loads(out.getvalue())) is None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_through_the_reference_model(case):
    # The oracle of the stateful tests must itself pass the corpus.
    assert first_difference(expected_of(case), replay(trace_lines(case / "trace.jsonl"))) is None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_engine_equals_model_on_every_field(case):
    lines = trace_lines(case / "trace.jsonl")
    r = Reconciler()
    r.feed(lines)
    assert without_details(r.to_dict()) == without_details(replay(lines))


def test_cli_as_a_subprocess_like_the_conformance_tool():
    case = CASES[0]
    p = subprocess.run(
        [sys.executable, "-m", "reconcile", "replay", "--json", str(case / "trace.jsonl")],
        capture_output=True, text=True, check=True,
    )
    assert first_difference(expected_of(case), json.loads(p.stdout)) is None
