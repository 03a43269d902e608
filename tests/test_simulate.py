"""reconcile.simulate: generated traces are test cases (engine == naive reference model),
the generator is deterministic, the CLI writes what the module generates, and the
traces contain every race the simulator promises."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from reconcile import Reconciler
from reconcile.testing.reference import replay
from reconcile.cli import main
from reconcile.testing import simulate
from reconcile.testing.simulate import FEATURES, Shape, census, expected, generate

ROOT = Path(__file__).resolve().parents[1]

#: Traces compared with the reference model: BATCHES x PER_BATCH small traces.
BATCHES, PER_BATCH = 30, 100


def shape_for(seed: int) -> dict:
    """Varied small shapes, derived from the seed (the reference model is O(n^2))."""
    r = random.Random(seed * 7919 + 1)
    return dict(
        turns=r.randint(0, 14), threads=r.randint(1, 3), agents=r.randint(1, 4),
        chunks=r.choice([1, 2, 4, 8]), parallel=r.random(), callbacks=r.random(),
        late=r.random() * 0.6, seq=r.random(), dual_ids=r.random(),
        loss=r.choice([0, 0.05, 0.2]), redeliver=r.choice([0, 0.05, 0.2]),
        history=r.random(), faults=r.choice([0, 0, 0.05, 0.2]),
    )


def comparable(document: dict) -> dict:
    """Section 9 says refusal details are free text: compare line and reason only."""
    return {**document, "rejected": [(r["line"], r["reason"]) for r in document["rejected"]]}


def engine(lines) -> Reconciler:
    reconciler = Reconciler()
    reconciler.feed(lines)
    return reconciler


# ---------------------------------------------------------------- the oracle


@pytest.mark.parametrize("batch", range(BATCHES))
def test_engine_matches_the_reference_model_on_generated_traces(batch):
    for seed in range(batch * PER_BATCH, (batch + 1) * PER_BATCH):
        shape = shape_for(seed)
        lines = generate(seed, **shape)
        reconciler = engine(lines)
        assert comparable(reconciler.to_dict()) == comparable(replay(lines)), (
            f"engine and reference disagree; reproduce with: reconcile simulate --seed {seed} "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in shape.items())
        )
        if seed % 10 == 0:
            reconciler._check()


@pytest.mark.parametrize("seed", range(4))
def test_engine_matches_the_reference_model_on_a_busier_trace(seed):
    lines = generate(seed, turns=120, threads=4, agents=5, loss=0.03, redeliver=0.05)
    reconciler = engine(lines)
    reconciler._check()
    assert comparable(reconciler.to_dict()) == comparable(expected(lines))


# ---------------------------------------------------------------- determinism


def test_same_seed_same_lines_and_another_seed_other_lines():
    assert generate(42, turns=80) == generate(42, turns=80)
    assert generate(42, turns=80) != generate(43, turns=80)
    assert generate(42, Shape(turns=80, threads=2)) == generate(42, turns=80, threads=2)


def test_same_seed_same_bytes_in_other_processes():
    # Another hash seed must not change a byte (no iteration over sets of strings).
    code = (
        "import hashlib, sys; from reconcile.testing.simulate import generate; "
        "sys.stdout.write(hashlib.sha256('\\n'.join(generate(9, turns=60, threads=3))"
        ".encode()).hexdigest())"
    )
    here = hashlib.sha256("\n".join(generate(9, turns=60, threads=3)).encode()).hexdigest()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        digest = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, check=True).stdout
        assert digest == here


def test_shape_options_are_checked():
    for bad in (dict(turns=-1), dict(threads=0), dict(agents=0), dict(chunks=0.5),
                dict(loss=1.5), dict(faults=-0.1), dict(threads=2, thread_ids=("a",))):
        with pytest.raises(ValueError):
            generate(1, **bad)
    assert generate(1, turns=0) == []


# ---------------------------------------------------------------- the CLI


def call(*argv):
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_cli_writes_what_the_module_generates(tmp_path):
    trace, document = tmp_path / "t.jsonl", tmp_path / "e.json"
    status, _ = call("simulate", "--seed", "5", "--turns", "30", "--threads", "2",
                     "--loss", "0.05", "-o", str(trace), "--expected", str(document))
    assert status == 0
    lines = generate(5, turns=30, threads=2, loss=0.05)
    assert trace.read_bytes() == ("\n".join(lines) + "\n").encode("utf-8")
    assert json.loads(document.read_text(encoding="utf-8")) == replay(lines)
    status, out = call("simulate", "--seed", "5", "--turns", "30", "--threads", "2",
                       "--loss", "0.05")
    assert status == 0 and out == "\n".join(lines) + "\n"


def test_cli_expected_matches_replay_json(tmp_path):
    trace, document = tmp_path / "t.jsonl", tmp_path / "e.json"
    assert call("simulate", "--seed", "8", "--turns", "40", "-o", str(trace),
                "--expected", str(document))[0] == 0
    status, out = call("replay", "--json", str(trace))
    assert status == 0 and json.loads(out) == json.loads(document.read_text(encoding="utf-8"))


def test_cli_usage_errors_exit_2(capsys):
    assert call("simulate", "--turns", "-3")[0] == 2
    assert call("simulate", "--faults", "2")[0] == 2
    assert call("simulate", "--expected", "-")[0] == 2
    assert "needs -o FILE" in capsys.readouterr().err


def test_cli_census_lists_every_feature(tmp_path):
    status, out = call("simulate", "--seed", "2", "--turns", "20", "-o", str(tmp_path / "t"),
                       "--census")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()] == list(FEATURES)


def test_simulate_piped_into_check_is_clean():
    simulate = subprocess.run(
        [sys.executable, "-m", "reconcile", "simulate", "--seed", "1", "--turns", "50"],
        capture_output=True, check=True, cwd=ROOT)
    check = subprocess.run([sys.executable, "-m", "reconcile", "check", "-"],
                           input=simulate.stdout, capture_output=True, cwd=ROOT, check=False)
    assert check.returncode == 0, check.stdout.decode()
    # Clean; the threads of an older server send only the parent id on stream events,
    # which check reports as an advisory (PROTOCOL section 10 rule 3).
    summary = check.stdout.decode().rstrip().splitlines()[-1]
    assert ": clean" in summary and "refused" not in summary


# ---------------------------------------------------------------- long traces stream


def test_the_cli_help_defaults_are_the_shape_defaults():
    from reconcile.cli.simulate import SHAPE_DEFAULTS

    fields = {f: getattr(Shape(), f) for f in SHAPE_DEFAULTS}
    assert SHAPE_DEFAULTS == fields
    assert set(SHAPE_DEFAULTS) == {f.name for f in dataclasses.fields(Shape)} - {"thread_ids"}


def test_a_trace_of_many_windows_is_a_valid_test_case(monkeypatch):
    monkeypatch.setattr(simulate, "WINDOW_TURNS", 7)
    lines = generate(5, turns=40, threads=2, loss=0.05, history=1.0, redeliver=0.05)
    assert lines == list(simulate.iter_lines(5, turns=40, threads=2, loss=0.05,
                                             history=1.0, redeliver=0.05))
    engine = Reconciler()
    engine.feed(lines)
    assert not engine.rejected
    assert json.loads(json.dumps(engine.to_dict())) == replay(lines)
    monkeypatch.setattr(simulate, "WINDOW_TURNS", 2_000)
    assert lines != generate(5, turns=40, threads=2, loss=0.05, history=1.0, redeliver=0.05)


def test_a_trace_of_at_most_one_window_did_not_change():
    # The bytes of seed 11 before traces were generated in windows.
    lines = generate(11, turns=600, threads=4, agents=4)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    assert digest == "54791a8e3b289cf6248d7a163193b9efd4c6316bc21cb5cbebe48de47b7c19dc"


def test_memory_is_flat_in_the_number_of_turns(monkeypatch):
    import tracemalloc

    monkeypatch.setattr(simulate, "WINDOW_TURNS", 25)

    def peak(turns: int) -> int:
        tracemalloc.start()
        try:
            for _ in simulate.iter_lines(2, turns=turns, threads=2, chunks=2, history=1.0,
                                         loss=0.05):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # Past the first few hundred turns (the stored history pages fill up), the peak
    # stays where it is: four times the turns, about the same memory.
    small, large = peak(400), peak(1_600)
    assert large < 1.5 * small, (small, large)


def test_progress_counts_turns_to_the_total(monkeypatch):
    monkeypatch.setattr(simulate, "WINDOW_TURNS", 10)
    seen = []
    generate(1, turns=25, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(10, 25), (20, 25), (25, 25)]


def test_the_cli_shows_a_percentage_on_a_terminal(monkeypatch, tmp_path):
    from reconcile.cli import simulate as command

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(simulate, "WINDOW_TURNS", 10)
    monkeypatch.setattr(command, "PROGRESS_TURNS", 10)
    monkeypatch.setattr(sys, "stderr", err)
    status, _ = call("simulate", "--turns", "40", "-o", str(tmp_path / "t.jsonl"))
    assert status == 0
    assert " 25.0% of 40 turns" in err.getvalue() and "100.0% of 40 turns" in err.getvalue()


def test_expected_is_refused_for_traces_too_big_for_the_reference_model(capsys, tmp_path):
    status, _ = call("simulate", "--turns", "200000", "-o", str(tmp_path / "t"),
                     "--expected", str(tmp_path / "e"))
    assert status == 2 and "at most 20,000 turns" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------- what traces contain

FAULT_ONLY = {"malformed_lines"}


def test_a_generated_trace_contains_every_race_and_feature():
    lines = generate(11, turns=600, threads=4, agents=4)
    counts = census(lines)
    missing = [name for name in FEATURES if name not in FAULT_ONLY and counts[name] == 0]
    assert not missing, f"features never generated: {missing}"
    # "many small deltas, some long ones, non-ASCII text"
    assert counts["small_chunks"] > counts["stream_chunks"] / 2
    assert 0 < counts["long_chunks"] < counts["stream_chunks"] / 10
    assert counts["non_ascii_chunks"] > counts["stream_chunks"] / 10
    assert counts["turns"] == 600 and counts["threads"] == 4
    # What the engine makes of it: every race is exercised, nothing is refused.
    reconciler = engine(lines)
    stats = reconciler.stats
    assert stats.superseded > 0 and stats.duplicates > 0 and reconciler.gaps
    assert not reconciler.rejected
    bubbles = [b for h in reconciler.threads for b in reconciler.bubbles(h)]
    assert {b.origin.value for b in bubbles} == {"stream", "callback", "system"}
    assert {b.status.value for b in bubbles} >= {"done", "error"}
    assert any(b.blocks for b in bubbles) and any(b.tools for b in bubbles)
    assert any(b.thinking for b in bubbles)


def test_lines_are_utf8_json_objects_in_the_wire_format():
    lines = generate(3, turns=100)
    names = set()
    for line in lines:
        assert "\n" not in line
        message = json.loads(line.encode("utf-8"))
        names.add(message["event"])
        data = message["data"]
        if message["event"] == "agent_message":
            assert isinstance(data["threadId"], str) and isinstance(data["catId"], str)
    assert {"agent_message", "intent_mode"} <= names


def test_without_faults_traces_are_valid():
    for seed in range(40):
        lines = generate(seed, turns=60, threads=3, agents=4, loss=0.05, redeliver=0.05)
        assert engine(lines).rejected == (), seed


def test_faults_produce_every_refusal_reason():
    reasons = {r.reason.value for r in engine(generate(4, turns=300, faults=0.05)).rejected}
    assert reasons == {"malformed_line", "malformed_event", "callback_without_invocation",
                       "unbound_event", "stream_after_done"}


def test_ids_can_be_namespaced_and_threads_named():
    lines = generate(1, turns=10, threads=2, thread_ids=("alpha", "beta"), id_prefix="r7-")
    threads = {json.loads(x)["data"].get("threadId") for x in lines}
    assert threads == {"alpha", "beta"}
    document = engine(lines).to_dict()
    invocations = {b["invocation"] for h in document["threads"].values() for b in h}
    assert all(i.startswith("r7-") for i in invocations if i)
