"""The engine's fast path and batch path against the general path and the reference.

The fast path (one read per field, no big-integer scan on every line, a shortcut past
the transition table for a running turn's chunks) and the batch path (``feed``,
``check``: no change objects) must give exactly what the general path gives, which
runs section 2's steps one by one after decoding every line exactly. These tests run
both on generated traces (faults, history, seq, dual ids) and on every fixture, and
compare every returned change, every log and the final document; the reference model
(written apart from the engine) judges the final document too.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reconcile._agent_message as agent_message_module
import reconcile._callbacks as callbacks_module
import reconcile._core as core_module
import reconcile._history as history_module
from reconcile import (
    BubbleAdded,
    BubbleUpdated,
    Reconciler,
    check_lines,
)
from reconcile.cli import main
from reconcile.testing.reference import replay as reference_replay
from reconcile.testing.simulate import Shape, generate

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("conformance/*/trace.jsonl")) + sorted(
    DATA.glob("real-server/*.jsonl")
)


class GeneralPath(Reconciler):
    """The engine with every event on the general path: each line decoded exactly
    (the big-integer scan on every line) and section 2's steps run one by one."""

    def receive_message(self, message: Any, raw: bytes | str | None = None) -> Any:
        line = self._line = self._line + 1
        changes: list[Any] = []
        self._dispatch_slowly(message, line, changes, raw)
        return tuple(changes)

    def _message_batched(self, message: Any, raw: bytes | str | None = None) -> None:
        # The batch callers count the line before they hand an agent_message over.
        self._dispatch_slowly(message, self._line, None, raw)


def as_dict(value: Any) -> dict[str, Any]:
    """A change's or value's fields by name (``__slots__`` lists them, in order)."""
    return {name: getattr(value, name) for name in type(value).__slots__}


def describe(change: Any) -> tuple[Any, ...]:
    """A change as plain values, its bubble as a snapshot taken when it was returned."""
    fields = as_dict(change)
    if isinstance(change, (BubbleAdded, BubbleUpdated)):
        fields["bubble"] = change.bubble.to_dict()
    return (type(change).__name__, tuple(sorted(fields.items(), key=lambda kv: kv[0])))


def run_lines(engine: Reconciler, lines: list[bytes]) -> list[list[tuple[Any, ...]]]:
    return [[describe(c) for c in engine.receive_line(line)] for line in lines]


def final_state(engine: Reconciler) -> dict[str, Any]:
    return {
        "document": engine.to_dict(),
        "gaps": [as_dict(g) for g in engine.gaps],
        "rejected": [as_dict(r) for r in engine.rejected],
        "running": {h: [as_dict(t) for t in engine.running_turns(h)] for h in engine.threads},
        "lines": engine.lines,
    }


def assert_paths_agree(lines: list[bytes]) -> dict[str, Any]:
    """Fast and general path give the same changes, line by line, and the same final
    state; ``feed`` (no change objects) and ``receive_message`` the same state too."""
    fast, general = Reconciler(), GeneralPath()
    assert run_lines(fast, lines) == run_lines(general, lines)
    state = final_state(fast)
    assert final_state(general) == state
    fed = Reconciler()
    assert fed.feed(lines) == len(lines)
    assert final_state(fed) == state
    fed_general = GeneralPath()
    fed_general.feed(lines)
    assert final_state(fed_general) == state
    # Decoded messages (no line to decode again): both paths again.
    decoded = [decoded_or_none(line) for line in lines if line.strip()]
    decoded = [m for m in decoded if m is not None]
    by_message, by_message_general = Reconciler(), GeneralPath()
    assert [[describe(c) for c in by_message.receive_message(m)] for m in decoded] == [
        [describe(c) for c in by_message_general.receive_message(m)] for m in decoded
    ]
    assert final_state(by_message) == final_state(by_message_general)
    return state


def decoded_or_none(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:  # a malformed line of a trace with faults: no message to pass
        return None


SHAPES = [
    Shape(turns=6, threads=2, agents=2, faults=0.1),
    Shape(turns=8, threads=3, agents=3, seq=1.0, loss=0.1, redeliver=0.1, history=1.0),
    Shape(turns=8, threads=2, agents=3, dual_ids=1.0, faults=0.05, late=0.5),
    Shape(turns=10, threads=3, agents=2, seq=1.0, dual_ids=0.5, loss=0.05, redeliver=0.05,
          history=1.0, faults=0.05),
]


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_fast_and_batch_paths_agree_with_the_general_path_and_the_reference(shape: int) -> None:
    for seed in range(60):
        lines = [line.encode() for line in generate(seed, SHAPES[shape])]
        state = assert_paths_agree(lines)
        expected = reference_replay(lines)
        document = state["document"]
        assert document["threads"] == expected["threads"], seed
        assert document["stats"] == expected["stats"], seed
        assert document["gaps"] == expected["gaps"], seed
        assert [(r["line"], r["reason"]) for r in document["rejected"]] == [
            (r["line"], r["reason"]) for r in expected["rejected"]
        ], seed


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fast_and_batch_paths_agree_on_every_fixture(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    assert_paths_agree(lines)
    expected = reference_replay(lines)
    engine = Reconciler()
    engine.feed(lines)
    assert engine.to_dict()["threads"] == expected["threads"]


# ---------------------------------------------------------------- big integers


def line_of(data: dict[str, Any], event: str = "agent_message") -> bytes:
    return json.dumps({"event": event, "data": data}).encode()


ANNOUNCE = line_of({
    "type": "system_info", "threadId": "t", "catId": "opus", "invocationId": "P",
    "content": json.dumps({"type": "invocation_created", "invocationId": "T"}),
})
BIG = 10**19 + 7  # beyond 64 bits: orjson alone would decode it as a float


def both_paths(lines: list[bytes]) -> Reconciler:
    """Run ``lines`` through both paths, check they agree, return the fast engine."""
    assert_paths_agree(lines)
    engine = Reconciler()
    engine.feed(lines)
    return engine


def test_a_twenty_digit_timestamp_is_an_integer_on_the_fast_path() -> None:
    chunk = {"type": "text", "threadId": "t", "catId": "opus", "invocationId": "P",
             "content": "hi", "timestamp": BIG}
    engine = both_paths([ANNOUNCE, line_of(chunk)])
    assert not engine.rejected
    (bubble,) = engine.bubbles("t")
    assert bubble.sort_key[0] == BIG and type(bubble.sort_key[0]) is int


def test_a_twenty_digit_seq_counts_exactly() -> None:
    lines = [
        line_of({"type": "done", "threadId": "t", "catId": "opus", "seq": BIG + n})
        for n in (0, 1, 1, 3)
    ]
    engine = both_paths(lines)
    assert engine.stats.duplicates == 1
    (gap,) = engine.gaps
    assert (gap.after, gap.before) == (BIG + 1, BIG + 3)


def test_a_big_integer_in_tool_input_is_kept_exactly() -> None:
    tool = {"type": "tool_use", "threadId": "t", "catId": "opus", "invocationId": "P",
            "toolName": "grep", "toolInput": {"n": BIG, "m": -BIG}}
    engine = both_paths([ANNOUNCE, line_of(tool)])
    (bubble,) = engine.bubbles("t")
    assert bubble.tools[0]["input"] == {"n": BIG, "m": -BIG}
    assert type(bubble.tools[0]["input"]["n"]) is int


def test_a_big_integer_in_a_history_page_is_exact() -> None:
    page = {"threadId": "t", "messages": [
        {"id": "m1", "catId": "opus", "content": "stored", "timestamp": BIG},
    ]}
    engine = both_paths([line_of(page, "history")])
    (bubble,) = engine.bubbles("t")
    assert bubble.sort_key[0] == BIG and type(bubble.sort_key[0]) is int


def test_big_integer_epochs_are_compared_exactly() -> None:
    lines = [
        line_of({"type": "done", "threadId": "t", "catId": "opus", "seq": 1, "seqEpoch": BIG}),
        # An epoch one apart: a float would make the two equal (no new epoch).
        line_of({"type": "done", "threadId": "t", "catId": "opus", "seq": 1,
                 "seqEpoch": BIG + 1}),
    ]
    engine = both_paths(lines)
    assert engine.stats.duplicates == 0


def test_a_refusal_names_the_exact_integer_the_line_holds() -> None:
    bad = {"type": "text", "threadId": "t", "catId": "opus", "content": BIG}
    engine = both_paths([line_of(bad)])
    (refused,) = engine.rejected
    assert str(BIG) in refused.detail


def test_a_real_float_timestamp_is_still_refused() -> None:
    chunk = {"type": "text", "threadId": "t", "catId": "opus", "content": "x",
             "timestamp": 1.5}
    engine = both_paths([line_of(chunk)])
    (refused,) = engine.rejected
    assert refused.reason == "malformed_event" and "1.5" in refused.detail


def test_digits_inside_strings_change_nothing() -> None:
    chunk = {"type": "text", "threadId": "t", "catId": "opus", "invocationId": "P",
             "content": "call 12345678901234567890123 now", "metadata": {"n": BIG}}
    engine = both_paths([ANNOUNCE, line_of(chunk)])
    (bubble,) = engine.bubbles("t")
    assert bubble.text == "call 12345678901234567890123 now"


def test_str_subclasses_from_in_process_callers_take_the_general_path() -> None:
    class Name(str):
        pass

    engine = Reconciler()
    engine.receive_message(json.loads(ANNOUNCE))
    changes = engine.receive_message({"event": "agent_message", "data": {
        "type": Name("text"), "threadId": Name("t"), "catId": Name("opus"),
        "invocationId": Name("P"), "content": Name("hi"),
    }})
    assert [type(c).__name__ for c in changes] == ["BubbleAdded"]


# ---------------------------------------------------------------- the batch path


def test_feed_and_check_build_no_change_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a change object was built on the batch path")

    lines = [line.encode() for line in generate(3, SHAPES[3])]
    expected = Reconciler()
    expected.feed(lines)
    for module in (agent_message_module, callbacks_module, core_module, history_module):
        for name in ("BubbleAdded", "BubbleUpdated", "Superseded", "Duplicate",
                     "TurnOpened", "TurnClosed"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, forbidden)
    fed = Reconciler()
    fed.feed(lines)
    assert fed.to_dict() == expected.to_dict()
    assert check_lines(lines).stats == expected.stats.to_dict()


# ---------------------------------------------------------------- the transition table


def test_the_running_turn_shortcut_is_tied_to_its_table_row() -> None:
    """Changing the table's row that the stream-text shortcut skips stops the import."""
    program = (
        "import importlib\n"
        "import reconcile._agent_message as m, reconcile._turns as t\n"
        "key = (t.TurnState.RUNNING, t.TurnInput.STREAM_TEXT)\n"
        "t.TRANSITIONS[key] = (t.TurnState.RUNNING, t.Action.SUPERSEDE, t.Activity.NONE)\n"
        "importlib.reload(m)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode != 0
    assert "shortcut" in result.stderr


# ---------------------------------------------------------------- byte-identical output

# sha256 of `reconcile replay --json` / `check --json` on simulator traces, computed
# with the engine before the fast path existed (every line decoded exactly, each step
# one by one, change objects built for every event).
BEFORE = {
    ("plain-1", "replay"): "25c80c9c28f311c5db43989a2adb671e811771b76f90cb9f315d77caf4f95234",
    ("plain-1", "check"): "407b4dab4eb80dedfdab83d75c93b5aad0827d6a822ad564f6b40644aa14fe16",
    ("faults-2", "replay"): "7d4305a20e8f4037efcee5e26e6be34b353aa6c23fc73bfb14596dd234645df2",
    ("faults-2", "check"): "bc243b0098322c3de10b4a9c75ca5d138e16ebf519d1656945fb4b5c9d530b49",
    ("heavy-3", "replay"): "704a8615cf44cb7ddb8afaf04996fb589503cb0bbae4f26afb6f04c699769c0b",
    ("heavy-3", "check"): "5f1499b23415fc41140559af270774318f463d622ef19ae3afc8f54dfbc5e443",
    ("big-4", "replay"): "34702a7115fdff2aa1888d4a1586345558a4539290e21020741bcbfc6f5b64f6",
    ("big-4", "check"): "6b6ff80f4919e640625d1756469501888427ca14fbe67ef7a324620857c38e8c",
}
TRACES = {
    "plain-1": (1, Shape(turns=60)),
    "faults-2": (2, Shape(turns=60, faults=0.05)),
    "heavy-3": (3, Shape(turns=80, seq=1.0, dual_ids=0.5, loss=0.05, redeliver=0.05,
                         history=1.0, faults=0.03)),
    "big-4": (4, Shape(turns=300, threads=4, agents=4, faults=0.01)),
}


@pytest.mark.parametrize("name,command", sorted(BEFORE), ids=lambda v: str(v))
def test_json_output_is_byte_identical_to_before_the_fast_path(
    name: str, command: str, tmp_path: Path
) -> None:
    seed, shape = TRACES[name]
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(generate(seed, shape)) + "\n", encoding="utf-8")
    out = io.StringIO()
    main([command, "--json", str(trace)], out)
    assert hashlib.sha256(out.getvalue().encode()).hexdigest() == BEFORE[name, command]



def test_check_still_reads_a_thinking_payload_written_with_escapes() -> None:
    payload = '{"type": "thinkin\\u0067", "text": "hmm"}'
    lines = [ANNOUNCE, line_of({"type": "system_info", "threadId": "t", "catId": "opus",
                                "invocationId": "P", "content": payload})]
    (rule,) = [r for r in check_lines(lines).rules if r.key == "stream_without_turn_id"]
    assert rule.count == 1


# ---------------------------------------------------------------- check's observer


def recount(lines: list[bytes]) -> dict[str, int]:
    """Events per thread as section 10's observer counts them, written out plainly:
    every event with an object ``data`` and a string ``threadId`` whose line was not
    refused as malformed."""
    engine = Reconciler()
    counts: dict[str, int] = {}
    for raw in lines:
        before = len(engine.rejected)
        engine.receive_line(raw)
        reasons = {r.reason.value for r in list(engine.rejected)[before:]}
        if reasons & {"malformed_line", "malformed_event"}:
            continue
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        data = message.get("data") if isinstance(message, dict) else None
        if isinstance(data, dict) and isinstance(data.get("threadId"), str):
            counts[data["threadId"]] = counts.get(data["threadId"], 0) + 1
    return counts


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_check_counts_every_event_of_a_thread_once(shape: int) -> None:
    for seed in range(20):
        lines = [line.encode() for line in generate(seed, SHAPES[shape])]
        report = check_lines(lines)
        counted = {h: c.events for h, c in report.threads.items() if c.events}
        assert counted == recount(lines), seed
        # The report lists threads in the order their first counted event came.
        assert list(counted) == list(recount(lines)), seed


def test_a_refused_bound_chunk_is_still_counted_for_its_thread() -> None:
    lines = [
        ANNOUNCE,
        line_of({"type": "text", "threadId": "t", "catId": "opus", "content": "a",
                 "turnInvocationId": "T"}),
        line_of({"type": "done", "threadId": "t", "catId": "opus", "turnInvocationId": "T"}),
        line_of({"type": "text", "threadId": "t", "catId": "opus", "content": "late",
                 "turnInvocationId": "T"}),
    ]
    report = check_lines(lines)
    assert [r.reason.value for r in report.rejected] == ["stream_after_done"]
    assert report.threads["t"].events == 4
    assert report.rules == ()


def test_an_empty_history_after_bound_events_only_is_still_reported() -> None:
    chunk = line_of({"type": "text", "threadId": "t", "catId": "opus", "content": "a",
                     "turnInvocationId": "T"})
    empty = line_of({"threadId": "t", "messages": []}, event="history")
    (rule,) = check_lines([chunk, empty]).rules
    assert rule.key == "empty_history" and rule.lines == (2,)


def test_lines_with_and_without_their_newline_give_the_same_report() -> None:
    lines = [line.encode() for line in generate(2, Shape(turns=40, faults=0.1))]
    lines += [b"", b"   \r", b'{"event": "agent_message", "data": {"type": "te', b"[1, 2"]
    bare = check_lines(lines)
    terminated = check_lines([line + b"\n" for line in lines])
    assert terminated.to_dict() == bare.to_dict()
    assert any("line 1 column" in r.detail for r in terminated.rejected)


def test_a_malformed_line_read_from_a_file_words_its_position_on_that_line() -> None:
    engine = Reconciler()
    engine.feed([b'{"event": "agent_message", "data": \n', "[1,\n"])
    details = [r.detail for r in engine.rejected]
    assert len(details) == 2
    assert all("line 1 column" in d for d in details), details


def test_check_reads_a_trace_file_as_it_is_on_disk(tmp_path: Path) -> None:
    lines = [line.encode() for line in generate(3, Shape(turns=30, faults=0.1))]
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(b"\n".join(lines) + b"\n\n")  # a blank line at the end
    out = io.StringIO()
    main(["check", "--json", str(trace)], out)
    assert json.loads(out.getvalue()) == json.loads(
        json.dumps(check_lines(lines + [b""]).to_dict())
    )
