"""The events every benchmark runs on. Fixed seeds: every run measures the same work.

* :func:`trace_file`: a realistic racy trace from the simulator (figures 1 and 2).
* :func:`prefill_events` + :func:`live_batch`: N finished bubbles in one thread, then
  a realistic live batch in the same thread (figures 3 and 4). The prefill is made
  directly (two small events per bubble) because the simulator would take minutes
  to produce 10^6 turns; the batch comes from the simulator.
* :func:`long_bubble_events`: one turn receiving K chunks (figure 3).
* :func:`finished_bubble_lines`: lines that leave N finished bubbles (figure 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from reconcile.testing.simulate import generate

SEED = 20260101
THREAD = "main"
AGENTS = ("opus", "codex", "gemini")
T0 = 1767225600000

#: The realistic trace of figures 1 and 2: ~170 000 lines, ~400 bytes each.
TRACE_SHAPE = dict(turns=10_000, threads=4, agents=4)

#: The live batch of figures 3 and 4: ~150 turns in the thread that holds the N
#: bubbles. Lossless and without seq so that the peers, which know nothing of seq
#: and history, do the same work as the engine.
BATCH_SHAPE = dict(turns=150, threads=1, agents=len(AGENTS), thread_ids=(THREAD,),
                   seq=0.0, loss=0.0, redeliver=0.0, history=0.0, faults=0.0)


def trace_file(directory: Path) -> Path:
    """Write (once) and return the realistic trace of figures 1 and 2."""
    path = directory / f"trace-{SEED}.jsonl"
    if not path.exists():
        lines = generate(SEED, **TRACE_SHAPE)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return path


def decoded(path: Path) -> list[dict[str, Any]]:
    """Every line of a trace, decoded once (for engine-only figures)."""
    with open(path, "rb") as stream:
        return [orjson.loads(line) for line in stream]


def prefill_events(n: int) -> Iterator[dict[str, Any]]:
    """Events that leave ``n`` finished bubbles in thread ``main``, oldest first.

    Each bubble is a turn announced under its own parent and answered by a callback
    with a message id, so every index of the engine (turns, latest turn per parent,
    open turn per agent, message ids, display order) holds n entries. Generated
    lazily: at 10^6 bubbles a list of the events would itself weigh gigabytes.
    """
    start = T0 - 10 * n - 1000  # all before the live batch
    for i in range(n):
        cat = AGENTS[i % len(AGENTS)]
        ts = start + 10 * i
        turn = f"pre-t{i}"
        yield {"event": "agent_message", "data": {
            "type": "system_info", "threadId": THREAD, "catId": cat, "invocationId": f"pre-p{i}",
            "content": '{"type": "invocation_created", "invocationId": "%s"}' % turn,
            "timestamp": ts}}
        yield {"event": "agent_message", "data": {
            "type": "text", "threadId": THREAD, "catId": cat, "origin": "callback",
            "invocationId": turn, "messageId": f"pre-m{i}", "content": "An earlier answer.",
            "timestamp": ts + 5}}


def prefill_bubbles(n: int) -> Iterator[dict[str, Any]]:
    """The same n bubbles as plain records, for peers that load a thread in one go."""
    start = T0 - 10 * n - 1000
    for i in range(n):
        yield {"cat": AGENTS[i % len(AGENTS)], "turn": f"pre-t{i}", "message_id": f"pre-m{i}",
               "text": "An earlier answer.", "timestamp": start + 10 * i + 5}


def live_batch(rep: int) -> list[dict[str, Any]]:
    """The measured live events, decoded. Same shape every repetition; the ids are
    namespaced per repetition so repeated runs never collide."""
    lines = generate(SEED, **BATCH_SHAPE, id_prefix=f"r{rep}-", start_ms=T0)
    return [orjson.loads(line) for line in lines]


def long_bubble_events(chunks: int) -> list[dict[str, Any]]:
    """One turn receiving ``chunks`` stream chunks of 4 characters, then done."""
    announce = {"event": "agent_message", "data": {
        "type": "system_info", "threadId": THREAD, "catId": "opus", "invocationId": "P",
        "content": '{"type": "invocation_created", "invocationId": "T"}', "timestamp": T0}}
    chunk = {"event": "agent_message", "data": {
        "type": "text", "threadId": THREAD, "catId": "opus", "content": "abc ",
        "origin": "stream", "invocationId": "P", "timestamp": T0 + 1}}
    done = {"event": "agent_message", "data": {
        "type": "done", "threadId": THREAD, "catId": "opus", "invocationId": "P",
        "isFinal": True, "timestamp": T0 + 2}}
    # One chunk dict repeated: the engine never mutates its input, and a list of
    # 10^5 distinct dicts would only measure the allocator.
    return [announce, *([chunk] * chunks), done]


def finished_bubble_lines(n: int) -> list[bytes]:
    """Lines leaving ``n`` finished bubbles: each turn is announced, streams two
    chunks and ends with done; every other turn is then replaced by its callback."""
    lines = []
    for i in range(n):
        cat = AGENTS[i % len(AGENTS)]
        ts = T0 + 10 * i
        base = {"threadId": THREAD, "catId": cat, "invocationId": f"p{i}"}
        lines.append(orjson.dumps({"event": "agent_message", "data": {
            **base, "type": "system_info", "timestamp": ts,
            "content": '{"type": "invocation_created", "invocationId": "t%d"}' % i}}))
        for part in ("Finished answer ", f"number {i}."):
            lines.append(orjson.dumps({"event": "agent_message", "data": {
                **base, "type": "text", "content": part, "timestamp": ts + 1}}))
        lines.append(orjson.dumps({"event": "agent_message", "data": {
            **base, "type": "done", "isFinal": True, "timestamp": ts + 2}}))
        if i % 2:
            lines.append(orjson.dumps({"event": "agent_message", "data": {
                "threadId": THREAD, "catId": cat, "type": "text", "origin": "callback",
                "invocationId": f"t{i}", "messageId": f"m{i}", "content": f"Final answer {i}.",
                "timestamp": ts + 3}}))
    return lines
