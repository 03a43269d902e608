"""Seeded, realistic, racy traces in the protocol's wire format.

``reconcile simulate`` writes what a multi-agent chat server (clowder-ai style) would
broadcast to one client socket, with every race the protocol exists for: parallel
agents under one parent id, callbacks mid-stream, after ``done``, after newer turns of
the same agent and before the stream, explicit posts and second posts, redelivered
callbacks, ``seq`` duplicates and gaps (answered by a history fetch), errors, cancels,
tools, thinking, rich blocks, background threads and non-ASCII text cut into many small
deltas and a few long ones. A generated trace is a test case: its expected final state
comes from the naive reference model (:func:`expected`), not from the engine.

This is an edge module, like the CLI: it uses ``random.Random(seed)`` and nothing else
that varies, so the same seed and shape give the same bytes on every machine. The
engine core stays free of randomness.

    lines = generate(7, Shape(turns=200, threads=3))   # list[str], one JSON object each
    document = expected(lines)                         # PROTOCOL section 9, from the model
    counts = census(lines)                             # which races the trace contains

Theory of operation
-------------------
Three passes.

1. **Plan** (server side, relative times). Each thread gets a sequence of user
   messages (parents). A parent is answered by several agents at once (parallel) or
   by a chain of agents one after another (serial, the same agent possibly twice).
   Each agent run is a turn: a list of steps at millisecond offsets from its start:
   the ``invocation_created`` announcement first, then thinking, stream chunks, tool
   pairs, rich blocks, posts, and an ending (``done``, ``error`` + ``done``, a cancel,
   or, rarely, a silent cancel that broadcasts nothing).
2. **Schedule** (absolute times). Threads run concurrently; inside a thread parents
   are sequential and each turn of an agent starts after its previous turn ended, so
   stream-side events always bind the way a real server's do. Only callbacks (and the
   rich blocks and redeliveries that follow them) may be late: a "late" callback is
   placed inside one of the next turns of the same agent.
3. **Deliver** (one socket, in time order). Per thread ``seq``/``seqEpoch`` stamping
   where the thread's server does it, lost chunks (a gap the client answers with a
   ``history`` fetch), events delivered twice with their old ``seq``, and, only when
   asked with ``faults``, protocol violations.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from reconcile import LocalProtocolError

__all__ = ["Shape", "generate", "iter_lines", "expected", "census", "AGENTS", "FEATURES",
           "WINDOW_TURNS"]

#: Agent names, in the order a trace with ``agents=N`` uses them.
AGENTS = ("opus", "codex", "gemini", "sonnet", "kimi", "qwen", "haiku", "grok")

#: Every count :func:`census` reports (each one is a feature a trace may contain).
FEATURES = (
    "lines",
    "events",
    "ignored_events",
    "threads",
    "background_threads",
    "parents",
    "parallel_parents",
    "same_agent_twice_in_parent",
    "turns",
    "stream_chunks",
    "small_chunks",
    "long_chunks",
    "non_ascii_chunks",
    "stream_without_origin",
    "turn_invocation_id",
    "callbacks",
    "callback_before_announce",
    "callback_before_stream",
    "callback_mid_stream",
    "callback_end_of_stream",
    "callback_after_done",
    "callback_after_newer_turn",
    "redelivered_callbacks",
    "second_posts",
    "explicit_posts",
    "seq_events",
    "seq_duplicates",
    "seq_gaps",
    "seq_epochs",
    "history",
    "errors",
    "cancels",
    "tool_use",
    "tool_result",
    "thinking",
    "rich_blocks",
    "held_rich_blocks",
    "handoffs",
    "system_lines",
    "missing_timestamp",
    "malformed_lines",
)


class ShapeError(LocalProtocolError, ValueError):
    """An option of :class:`Shape` is out of range (a ``ValueError`` too)."""


@dataclasses.dataclass(frozen=True)
class Shape:
    """What to generate. Rates are probabilities in [0, 1]; defaults look like a busy
    real server (few losses, no protocol violations)."""

    turns: int = 50  # agent turns in the whole trace
    threads: int = 3  # thread 0 is the busiest; the others are background threads
    agents: int = 3  # distinct agents (AGENTS, then cat9, cat10, ...)
    chunks: float = 12.0  # mean stream chunks per turn (many small, a few long)
    parallel: float = 0.35  # share of user messages answered by several agents at once
    callbacks: float = 0.7  # share of turns whose agent posts a callback
    late: float = 0.2  # share of callbacks delivered after newer turns of the agent
    seq: float = 0.6  # share of threads whose server stamps seq/seqEpoch
    dual_ids: float = 0.4  # share of threads on a newer server (turnInvocationId)
    loss: float = 0.01  # share of stream chunks of seq threads lost in transit
    redeliver: float = 0.02  # share of seq events delivered twice
    history: float = 0.6  # chance a seq gap is followed by a history fetch
    faults: float = 0.0  # share of events turned into protocol violations
    start_ms: int = 1767225600000  # server clock at the first event
    thread_ids: tuple[str, ...] | None = None  # default: main, bg-1, bg-2, ...
    id_prefix: str = ""  # prepended to parent, turn and message ids

    def check(self) -> None:
        """Raise :class:`ShapeError` (a ``ValueError``) naming the first option out of
        range."""
        if self.turns < 0:
            raise ShapeError("turns must be >= 0")
        if self.threads < 1:
            raise ShapeError("threads must be >= 1")
        if self.agents < 1:
            raise ShapeError("agents must be >= 1")
        if not (self.chunks >= 1.0 and math.isfinite(self.chunks)):
            raise ShapeError("chunks (the mean per turn) must be >= 1")
        for name in (
            "parallel", "callbacks", "late", "seq", "dual_ids", "loss", "redeliver",
            "history", "faults",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ShapeError(f"{name} must be between 0 and 1, got {value}")
        if self.thread_ids is not None:
            if len(self.thread_ids) != self.threads:
                raise ShapeError("thread_ids must name exactly `threads` threads")
            if len(set(self.thread_ids)) != len(self.thread_ids):
                raise ShapeError("thread_ids must be distinct")


# --------------------------------------------------------------------------- text

# Fragments of what agents say: prose, code, CJK, RTL, emoji (some of them ZWJ
# sequences and flags, which a delta may cut in half, as real servers do), quotes,
# backslashes and newlines that JSON must escape.
_FRAGMENTS = (
    "The event carries two ids,", "and the client mixes them up.", "Let me check",
    "the stream first:", "invocationId is the parent on stream events", "and the turn on",
    "callbacks.", "Key bubbles by turn id.", "I'll read the file", "`src/chat/store.ts`",
    "before proposing a fix.", "Done — 4 of 4 workers healthy.", "Queue depth is 12",
    "and falling.", "```python\nfor line in trace:\n    r.receive_line(line)\n```",
    "\n\n", "\n", "- [x] reproduce the race\n- [ ] write the test\n",
    "我们先检查一下事件的顺序。", "回调到达得太晚了，", "但它替换的是自己的气泡。",
    "ストリームの途中でコールバックが届きました。", "了解です！",
    "Größenordnung: über 10⁶ Blasen", "naïve café façade", "¿Qué pasó con el turno?",
    "مرحبا بالعالم", "שלום", "Привет, мир", "🐱", "🐱‍💻", "👩🏽‍💻", "🇯🇵", "✅", "⚠️",
    "→", "“quoted”", "'single'", "\"double\"", "a\\b", "C:\\Users\\cat", "\t", "≈ 3 µs",
    "{\"not\": \"a payload\"}", "<b>bold?</b>", "100%", "e = mc²", "x̃ (combining)",
)

_CANCELLED = "⏹ 已取消"
_WARNINGS = (
    "⚠️ Shared-state preflight: 2 files changed outside the session",
    "🚫 Shared-state files are locked by another agent",
    "Context is 82% full; older tool results will be compacted.",
)
_ERRORS = (
    "error_during_execution", "error_max_turns", "CLI timed out after 300 s",
    "provider overloaded (529)", "模型调用失败",
)
_TOOLS = ("Read", "Edit", "Bash", "Grep", "WebSearch", "TodoWrite")


def _build_corpus() -> str:
    # A fixed text the chunks are sliced from: fast (a slice per chunk) and the same
    # on every machine. Its own fixed seed keeps it independent of the trace seed.
    rng = random.Random(0x5EED)
    parts = []
    size = 0
    while size < 60_000:
        fragment = rng.choice(_FRAGMENTS)
        parts.append(fragment)
        parts.append(" ")
        size += len(fragment) + 1
    return "".join(parts)


_CORPUS = _build_corpus()


# --------------------------------------------------------------------------- plan


class _Turn:
    """One planned agent run: its ids, its steps and where it sits in time."""

    __slots__ = (
        "thread", "agent", "parent", "id", "steps", "start", "length", "final",
        "ending", "callback_late", "text", "done_at", "forgotten",
    )

    def __init__(self, thread: int, agent: str, parent: str, turn_id: str) -> None:
        self.thread = thread
        self.agent = agent
        self.parent = parent
        self.id = turn_id
        self.steps: list[list[Any]] = []  # [offset_ms, kind, value]
        self.start = 0  # absolute ms, set by the schedule
        self.length = 0  # ms from start to the last stream-side step
        self.final = False  # its done carries isFinal: true
        self.ending = "done"
        self.callback_late: int | None = None  # newer turns to wait, or None
        self.text = ""  # the whole stream text (what the server stores)
        self.done_at = 0
        self.forgotten = False  # too old for a history page (see _Stored)


class _Parent:
    __slots__ = ("id", "thread", "mode", "turns", "start", "length", "user_text")

    def __init__(self, parent_id: str, thread: int, mode: str) -> None:
        self.id = parent_id
        self.thread = thread
        self.mode = mode  # "parallel" or "serial"
        self.turns: list[_Turn] = []
        self.start = 0
        self.length = 0
        self.user_text = ""


class _Generator:
    def __init__(self, seed: int, shape: Shape) -> None:
        self.rng = random.Random(seed)
        self.shape = shape
        self.counter = 0  # id counter, so ids are unique within a trace
        names = list(AGENTS[: shape.agents])
        names += [f"cat{i}" for i in range(len(AGENTS) + 1, shape.agents + 1)]
        self.agent_names = names
        if shape.thread_ids is not None:
            self.thread_ids = list(shape.thread_ids)
        else:
            self.thread_ids = ["main"] + [f"bg-{i}" for i in range(1, shape.threads)]
        rng = self.rng
        self.thread_seq = [rng.random() < shape.seq for _ in self.thread_ids]
        self.thread_dual = [rng.random() < shape.dual_ids for _ in self.thread_ids]
        # lognormal chunk counts with the requested mean: a long tail of long turns
        self.sigma = 0.8
        self.mu = math.log(shape.chunks) - self.sigma**2 / 2
        # delivery state, kept across windows (set by the first deliver)
        self.stored: _Stored | None = None
        self.seq: list[int] = []
        self.epoch: list[str | None] = []
        self.gap_seen: list[bool] = []

    # ------------------------------------------------------------------ ids

    def new_id(self, kind: str) -> str:
        self.counter += 1
        return f"{self.shape.id_prefix}{kind}{self.counter:05d}-{self.rng.getrandbits(24):06x}"

    # ------------------------------------------------------------------ text

    def chunk_size(self) -> int:
        r = self.rng.random()
        if r < 0.80:  # token-sized deltas (~1.7 chars on one real server)
            return 1 + int(self.rng.expovariate(1 / 3.0))
        if r < 0.96:
            return self.rng.randint(8, 80)
        return self.rng.randint(200, 3000)  # a pasted file, a code block

    def text(self, size: int) -> str:
        start = self.rng.randrange(0, len(_CORPUS) - size - 1)
        return _CORPUS[start : start + size]

    def sentence(self) -> str:
        return self.text(self.rng.randint(20, 160)).strip() or "ok"

    # ------------------------------------------------------------------ plan

    def plan(self, turns: int) -> list[list[_Parent]]:
        """Parents per thread, each with its turns and their relative steps."""
        rng, shape = self.rng, self.shape
        weights = [2.0] + [1.0] * (shape.threads - 1)  # thread 0 is the active one
        per_thread: list[list[_Parent]] = [[] for _ in self.thread_ids]
        left = turns
        while left > 0:
            thread = rng.choices(range(shape.threads), weights)[0]
            parent = _Parent(self.new_id("p"), thread, "serial")
            parent.user_text = self.sentence()
            n_agents = len(self.agent_names)
            if n_agents > 1 and rng.random() < shape.parallel:
                parent.mode = "parallel"
                count = min(left, rng.randint(2, min(4, n_agents)))
                agents = rng.sample(self.agent_names, count)
            else:
                count = min(left, 1 if rng.random() < 0.6 else rng.randint(2, 4))
                agents = [rng.choice(self.agent_names) for _ in range(count)]
            for agent in agents:
                parent.turns.append(self.plan_turn(thread, agent, parent.id))
            left -= count
            self.lay_out(parent)
            per_thread[thread].append(parent)
        return per_thread

    def plan_turn(self, thread: int, agent: str, parent: str) -> _Turn:
        """Steps of one turn at offsets from its start (the announcement is at 0)."""
        rng, shape = self.rng, self.shape
        turn = _Turn(thread, agent, parent, self.new_id("t"))
        steps = turn.steps
        t = 0
        steps.append([t, "announce", None])
        if rng.random() < 0.2:
            t += rng.randint(1, 20)
            steps.append([t, "metrics", None])
        for _ in range(rng.choice((0, 0, 1, 1, 2)) if rng.random() < 0.4 else 0):
            t += rng.randint(20, 400)
            steps.append([t, "thinking", self.sentence() if rng.random() < 0.9 else ""])
        n = max(1, min(int(rng.lognormvariate(self.mu, self.sigma)), int(shape.chunks * 40)))
        ending = rng.random()
        if ending < 0.04:
            turn.ending = "error"
        elif ending < 0.08:
            turn.ending = "cancel"
        elif ending < 0.09:
            turn.ending = "silent_cancel"  # cancelAll: the server broadcasts nothing
        if turn.ending != "done" and n > 1:
            n = rng.randint(1, n)  # stopped part way
        tools = rng.randint(1, 3) if rng.random() < 0.3 else 0
        tool_at = sorted(rng.randrange(0, n) for _ in range(tools))
        blocks = 1 if rng.random() < 0.08 else 0
        block_at = rng.randrange(0, n) if blocks else -1
        chunks: list[str] = []
        chunk_steps: list[list[Any]] = []
        for i in range(n):
            while tool_at and tool_at[0] == i:
                tool_at.pop(0)
                name = rng.choice(_TOOLS)
                t += rng.randint(10, 200)
                tool_input = {"file_path": f"src/mod{rng.randint(1, 99)}.py"}
                steps.append([t, "tool_use", (name, tool_input)])
                t += rng.randint(150, 3000)
                steps.append([t, "tool_result", (name, self.text(rng.randint(10, 400)))])
            if i == block_at:
                t += rng.randint(5, 100)
                steps.append([t, "block", self.new_id("blk")])
            t += 1 + int(rng.expovariate(1 / 40.0))
            chunk = self.text(self.chunk_size())
            chunks.append(chunk)
            step = [t, "chunk", chunk]
            steps.append(step)
            chunk_steps.append(step)
        turn.text = "".join(chunks)
        if rng.random() < 0.04:
            t += rng.randint(10, 200)
            steps.append([t, "info", rng.choice(_WARNINGS)])
        # Endings. A stopped turn streams no more; its callback may still come.
        t += rng.randint(10, 300)
        if turn.ending == "error":
            steps.append([t, "error", rng.choice(_ERRORS)])
            t += rng.randint(1, 30)
            steps.append([t, "done", None])
        elif turn.ending == "cancel":
            steps.append([t, "cancel_line", None])
            t += rng.randint(1, 30)
            steps.append([t, "cancel_done", None])
        elif turn.ending == "done":
            if rng.random() < 0.5:
                steps.append([t, "usage", None])
                t += rng.randint(1, 10)
            steps.append([t, "done", None])
        turn.length = t
        turn.done_at = t
        self.plan_posts(turn, chunk_steps)
        return turn

    def plan_posts(self, turn: _Turn, chunk_steps: list[list[Any]]) -> None:
        """Callbacks, second posts, explicit posts and their rich blocks."""
        rng, shape = self.rng, self.shape
        steps = turn.steps
        if rng.random() < 0.06:  # an explicit post_message during the turn
            at = rng.randint(0, max(turn.length - 1, 0))
            message_id = self.new_id("m") if rng.random() < 0.9 else None
            steps.append([at, "explicit", (message_id, self.sentence())])
        if turn.ending == "silent_cancel" or rng.random() >= shape.callbacks:
            return
        text = turn.text if (turn.text and rng.random() < 0.55) else self.sentence()
        message_id = self.new_id("m") if rng.random() < 0.95 else None
        r = rng.random()
        first_chunk = chunk_steps[0][0] if chunk_steps else turn.length
        if r < shape.late:
            at = turn.length  # placed after the schedule, inside a newer turn
            turn.callback_late = 1 if rng.random() < 0.7 else 2
        elif r < shape.late + 0.10:
            # callback first: before the first chunk, rarely even before the announcement
            if rng.random() < 0.2:
                at = -rng.randint(1, 50)
            else:
                at = rng.randint(0, max(first_chunk - 1, 0))
        elif r < shape.late + 0.35 and len(chunk_steps) >= 2:
            i = rng.randrange(0, len(chunk_steps) - 1)
            at = chunk_steps[i][0] + (chunk_steps[i + 1][0] - chunk_steps[i][0]) // 2
        elif r < shape.late + 0.55:
            at = max(turn.length - rng.randint(0, 5), 0)  # just before done
        else:
            at = turn.done_at + rng.randint(20, 3000)  # after done
        callback = [at, "callback", (message_id, text)]
        steps.append(callback)
        extras = []
        if message_id is not None and rng.random() < 0.1:
            # a rich block extracted from the post; sometimes it overtakes the post
            delta = rng.randint(5, 300) if rng.random() < 0.7 else -rng.randint(1, 50)
            extras.append([delta, "block_msg", (message_id, self.new_id("blk"))])
        if rng.random() < 0.08:
            extras.append([rng.randint(200, 8000), "redeliver", (message_id, text)])
        if rng.random() < 0.08:
            extras.append([rng.randint(50, 1500), "second", (self.new_id("m"), self.sentence())])
        for extra in extras:
            extra.append(callback)  # offsets relative to the callback, resolved later
            steps.append(extra)

    def lay_out(self, parent: _Parent) -> None:
        """Relative start of each turn within its parent, and the parent's length."""
        rng = self.rng
        t = rng.randint(30, 300)
        if parent.mode == "parallel":
            end = 0
            for turn in parent.turns:
                turn.start = t + rng.randint(0, 400)
                end = max(end, turn.start + turn.length)
        else:
            for turn in parent.turns:
                turn.start = t
                t += turn.length + rng.randint(50, 800)
            end = t
        live = [turn for turn in parent.turns if turn.ending in ("done", "error")]
        if live:
            max(live, key=lambda turn: turn.start + turn.length).final = True
        parent.length = end

    # ------------------------------------------------------------------ schedule

    def schedule(self, per_thread: list[list[_Parent]], start_ms: int) -> list[list[Any]]:
        """Absolute times from ``start_ms``; returns entries [time, order, thread, kind,
        turn, value]."""
        rng, shape = self.rng, self.shape
        busy = [sum(p.length for p in parents) for parents in per_thread]
        span = int(max(busy, default=0) * 1.3) + 2000
        entries: list[list[Any]] = []
        later: dict[tuple[int, str], list[_Turn]] = {}  # (thread, agent) -> turns in order
        for thread, parents in enumerate(per_thread):
            # Spread the thread's idle time over the gaps between its parents, so every
            # thread runs across the whole span (background threads overlap the main one).
            free = max(span - busy[thread], len(parents) * 500)
            gaps = [rng.expovariate(1.0) for _ in range(len(parents) + 1)]
            total = sum(gaps) or 1.0
            t = start_ms + int(rng.random() * 1500)
            for parent, gap in zip(parents, gaps):
                t += 400 + int(free * gap / total)
                parent.start = t
                entries.append([t, 0, thread, "intent", parent, None])
                if rng.random() < 0.3:
                    entries.append([t + 1, 0, thread, "queue", parent, None])
                for turn in parent.turns:
                    turn.start += t
                    later.setdefault((thread, turn.agent), []).append(turn)
                t += parent.length
                if thread > 0 and parent.length > 30_000:
                    beat = t - parent.length + 30_000
                    entries.append([beat, 0, thread, "heartbeat", parent, None])
                if parent.mode == "serial" and len(parent.turns) > 1 and rng.random() < 0.3:
                    first = parent.turns[0]
                    at = first.start + first.length + 5
                    entries.append([at, 0, thread, "handoff", first, None])
        for runs in later.values():
            for index, turn in enumerate(runs):
                if turn.callback_late is not None:
                    self.place_late(turn, runs[index + 1 :])
        for parents in per_thread:
            for parent in parents:
                for turn in parent.turns:
                    for step in turn.steps:
                        at = turn.start + step[0]
                        if len(step) == 4:  # relative to its callback
                            at = turn.start + step[3][0] + step[0]
                        entries.append([at, 0, turn.thread, step[1], turn, step[2]])
        entries.sort(key=lambda e: e[0])  # stable: plan order breaks ties
        for order, entry in enumerate(entries):
            entry[1] = order
        return entries

    def place_late(self, turn: _Turn, newer: Sequence[_Turn]) -> None:
        """Move the callback of ``turn`` inside one of the next turns of its agent."""
        callback = next(step for step in turn.steps if step[1] == "callback")
        wait = turn.callback_late or 1
        if len(newer) >= wait:
            target = newer[wait - 1]
            at = target.start + self.rng.randint(1, max(target.length, 1))
        else:  # no newer turn: long after the thread went quiet
            at = turn.start + turn.length + self.rng.randint(5_000, 60_000)
        callback[0] = at - turn.start

    # ------------------------------------------------------------------ deliver

    def deliver(self, entries: list[list[Any]]) -> list[str]:
        """The lines of one window of entries. What the server keeps between windows
        (seq counters and epochs, stored messages) lives on; redeliveries still due
        come at the window's end, history fetches still due are dropped."""
        rng, shape = self.rng, self.shape
        out: list[str] = []
        if self.stored is None:  # the first window: same draws as a one-window trace
            self.seq = [0] * len(self.thread_ids)
            self.epoch = [self.new_id("ep") if on else None for on in self.thread_seq]
            self.gap_seen = [False] * len(self.thread_ids)
            self.stored = _Stored(len(self.thread_ids))
        seq, epoch, gap_seen, stored = self.seq, self.epoch, self.gap_seen, self.stored
        pending: list[tuple[int, int, str]] = []  # (due index, thread, line) redeliveries
        history_due: list[tuple[int, int]] = []  # (due index, thread)
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        for at, _, thread, kind, owner, value in entries:
            while pending and pending[0][0] <= len(out):
                out.append(pending.pop(0)[2])
            while history_due and history_due[0][0] <= len(out):
                h = history_due.pop(0)[1]
                out.append(dumps(stored.page(self.thread_ids[h], h, at)))
            message = self.envelope(at, thread, kind, owner, value)
            stored.record(kind, owner, value, message, at)
            if message.get("event") != "agent_message":
                out.append(dumps(message))
                continue
            data = message["data"]
            if self.thread_seq[thread]:
                if rng.random() < 0.002:  # the server restarted: new epoch, seq from 1
                    epoch[thread] = self.new_id("ep")
                    seq[thread] = 0
                    pending = [p for p in pending if p[1] != thread]
                seq[thread] += 1
                data["seq"] = seq[thread]
                data["seqEpoch"] = epoch[thread]
                if kind == "chunk" and rng.random() < shape.loss:
                    gap_seen[thread] = True  # lost in transit: the seq is used up
                    continue
                if gap_seen[thread]:
                    gap_seen[thread] = False
                    if rng.random() < shape.history:
                        history_due.append((len(out) + 1 + rng.randint(0, 3), thread))
            line = dumps(message)
            if shape.faults and rng.random() < shape.faults:
                line = self.fault(kind, owner, message, out)
            out.append(line)
            if self.thread_seq[thread] and rng.random() < shape.redeliver:
                pending.append((len(out) + rng.randint(0, 4), thread, line))
        out.extend(line for _, _, line in pending)
        return out

    def envelope(self, at: int, thread: int, kind: str, owner: Any, value: Any) -> dict[str, Any]:
        """The wire form of one planned step (a fresh dict)."""
        rng = self.rng
        h = self.thread_ids[thread]
        if kind == "intent":
            agents = list(dict.fromkeys(turn.agent for turn in owner.turns))
            return {"event": "intent_mode", "data": {
                "threadId": h, "mode": "execute", "targetCats": agents, "invocationId": owner.id}}
        if kind == "queue":
            return {"event": "queue_updated", "data": {
                "threadId": h, "queue": [], "action": "processing"}}
        if kind == "heartbeat":
            return {"event": "heartbeat", "data": {"threadId": h, "timestamp": at}}
        turn: _Turn = owner
        dual = self.thread_dual[thread]
        data: dict[str, Any] = {"type": "text", "threadId": h, "catId": turn.agent}
        ids = {"invocationId": turn.parent}
        if dual:
            ids["turnInvocationId"] = turn.id
        if kind == "announce":
            data["type"] = "system_info"
            data["content"] = json.dumps({"type": "invocation_created", "invocationId": turn.id})
            data["invocationId"] = turn.parent
        elif kind == "chunk":
            data["content"] = value
            if rng.random() < 0.7:
                data["origin"] = "stream"  # parallel routes leave it out
            data.update(ids)
        elif kind == "thinking":
            data["type"] = "system_info"
            data["content"] = json.dumps(
                {"type": "thinking", "catId": turn.agent, "text": value}, ensure_ascii=False)
            data.update(ids)
        elif kind in ("tool_use", "tool_result"):
            data["type"] = kind
            data["toolName"] = value[0]
            if kind == "tool_use":
                data["toolInput"] = value[1]
            else:
                data["content"] = value[1]
            data.update(ids)
        elif kind == "block":
            data["type"] = "system_info"
            data["content"] = json.dumps(
                {"type": "rich_block", "block": {"id": value, "kind": "card", "v": 1}})
            data.update(ids)
        elif kind == "block_msg":
            data["type"] = "system_info"  # from a callback: no invocationId at all
            data["content"] = json.dumps({
                "type": "rich_block", "block": {"id": value[1], "kind": "diff", "v": 1},
                "messageId": value[0]})
        elif kind in ("callback", "redeliver", "second", "explicit"):
            message_id, text = value
            data["content"] = text
            data["origin"] = "callback"
            if dual:
                data["invocationId"] = turn.parent
                data["turnInvocationId"] = turn.id
            else:
                data["invocationId"] = turn.id
            if message_id is not None:
                data["messageId"] = message_id
            if kind == "explicit":
                data["extra"] = {"isExplicitPost": True}
        elif kind == "error":
            data["type"] = "error"
            data["error"] = value
            if rng.random() < 0.8:  # the global catch error carries no invocationId
                data.update(ids)
        elif kind == "done":
            data["type"] = "done"
            data["isFinal"] = turn.final
            data.update(ids)
        elif kind == "cancel_line":
            data["type"] = "system_info"
            data["content"] = _CANCELLED
        elif kind == "cancel_done":
            data["type"] = "done"
            data["isFinal"] = True
        elif kind == "usage":
            data["type"] = "system_info"
            data["content"] = json.dumps({"type": "invocation_usage", "catId": turn.agent,
                                          "usage": {"inputTokens": rng.randint(100, 90000),
                                                    "outputTokens": rng.randint(10, 4000)}})
            data.update(ids)
        elif kind == "metrics":
            data["type"] = "system_info"
            data["content"] = json.dumps({"type": "invocation_metrics", "kind": "session_started",
                                          "sessionId": f"s-{turn.id}", "invocationId": turn.id})
            data.update(ids)
        elif kind == "info":
            data["type"] = "system_info"
            data["content"] = value
        elif kind == "handoff":
            data["type"] = "a2a_handoff"
            data["content"] = f"{turn.agent} → next"
            data["invocationId"] = turn.parent
        else:  # pragma: no cover - a planning bug
            raise AssertionError(kind)
        # Legacy paths leave the timestamp out; parallel agents run in separate
        # processes, so their clocks disagree by a few ms.
        if rng.random() >= 0.01 or kind in ("announce", "done"):
            data["timestamp"] = at - (rng.randint(0, 30) if rng.random() < 0.2 else 0)
        return {"event": "agent_message", "data": data}

    def fault(self, kind: str, owner: Any, message: dict[str, Any], out: list[str]) -> str:
        """A protocol violation in place of (or right after) this event."""
        rng = self.rng
        data = dict(message["data"])
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        choices = ["truncated", "surrogate", "field"]
        if kind in ("callback", "second", "redeliver"):
            choices += ["no_turn_id"] * 3
        elif kind == "chunk":
            choices += ["unbound"] * 3
        elif kind == "done":
            choices += ["after_done"] * 3
        choice = rng.choice(choices)
        if choice == "truncated":
            line = dumps(message)
            return line[: max(1, len(line) // 2)]
        if choice == "surrogate":  # an unpaired surrogate escape is not strict JSON
            return '{"event": "agent_message", "data": {"type": "text", "content": "\\ud800"}}'
        if choice == "field":  # a timestamp of the wrong type
            data["timestamp"] = str(data.get("timestamp", 0))
        elif choice == "no_turn_id":
            data.pop("invocationId", None)
            data.pop("turnInvocationId", None)
        elif choice == "unbound":
            data["invocationId"] = self.new_id("p")  # a parent nobody announced
            data.pop("turnInvocationId", None)
        else:  # stream text after done, right after the done itself
            out.append(dumps(message))
            data = {k: v for k, v in data.items() if k not in ("seq", "seqEpoch", "isFinal")}
            data.update(type="text", content=self.text(5), origin="stream")
        return dumps({"event": "agent_message", "data": data})


_PAGE = 40  # messages per history page


class _Stored:
    """What the server has stored per thread, for history pages after a gap."""

    def __init__(self, threads: int) -> None:
        self.turns: list[list[_Turn]] = [[] for _ in range(threads)]
        self.state: dict[_Turn, dict[str, Any]] = {}  # turn -> progress
        self.users: list[list[dict[str, Any]]] = [[] for _ in range(threads)]

    def record(self, kind: str, owner: Any, value: Any, message: dict[str, Any], at: int) -> None:
        if kind == "intent":
            users = self.users[owner.thread]
            users.append({
                "id": f"u-{owner.id}", "type": "user", "catId": None,
                "content": owner.user_text, "timestamp": at})
            if len(users) > 2 * _PAGE:
                del users[:-_PAGE]
            return
        if not isinstance(owner, _Turn):
            return
        state = self.state.get(owner)
        if state is None:
            if owner.forgotten:
                # Too old to be on a page (memory stays flat in the trace's length): a
                # late event of it changes nothing a page could show.
                return
            state = self.state[owner] = {"parts": [], "done": False, "posts": [], "ts": at}
            turns = self.turns[owner.thread]
            turns.append(owner)
            if len(turns) > 2 * _PAGE:
                for old in turns[:-_PAGE]:
                    del self.state[old]
                    old.forgotten = True
                del turns[:-_PAGE]
        if kind == "chunk":
            state["parts"].append(value)  # stored by the server even if lost in transit
        elif kind in ("done", "error", "cancel_done"):
            state["done"] = True
        elif kind in ("callback", "second", "explicit") and value[0] is not None:
            state["posts"].append((value[0], value[1], at))

    def page(self, thread_id: str, thread: int, at: int) -> dict[str, Any]:
        """The thread's last stored messages, oldest first, as a history event."""
        # A page holds the newest messages: looking at the last turns is enough, and
        # keeps a page O(1) however long the thread is.
        messages = self.users[thread][-_PAGE:]
        for turn in self.turns[thread][-_PAGE:]:
            state = self.state[turn]
            text = "".join(state["parts"])
            stream = {"invocationId": turn.id}
            if state["done"]:
                if text:
                    messages.append({"id": f"s-{turn.id}", "catId": turn.agent, "origin": "stream",
                                     "content": text, "timestamp": state["ts"],
                                     "extra": {"stream": stream}})
            elif text:
                messages.append({"id": f"draft-{turn.id}", "catId": turn.agent,
                                 "origin": "stream", "isDraft": True, "content": text,
                                 "timestamp": state["ts"], "extra": {"stream": stream}})
            for message_id, text, ts in state["posts"]:
                messages.append({"id": message_id, "catId": turn.agent, "origin": "callback",
                                 "content": text, "timestamp": ts, "extra": {"stream": stream}})
        messages.sort(key=lambda m: m["timestamp"])
        return {"event": "history", "data": {"threadId": thread_id, "messages": messages[-_PAGE:]}}


# --------------------------------------------------------------------------- API


#: Turns planned, scheduled and delivered at a time. A trace of at most this many turns
#: is one window; a longer one is a run of windows, each starting after the previous
#: one ended, so memory is flat in the number of turns (a late callback waits for a
#: newer turn of its agent within its window, or comes after the window's last turn).
WINDOW_TURNS = 2_000


def iter_lines(
    seed: int,
    shape: Shape | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> Iterator[str]:
    """Generate a trace lazily: the lines of :func:`generate`, one window at a time.

    Args:
        seed: the only source of variation; same seed and shape, same lines.
        shape: what to generate; keyword ``options`` override its fields.
        progress: called with (turns generated so far, turns in all) after each window.

    Raises:
        ValueError: an option is out of range (before the first line).
    """
    shape = dataclasses.replace(shape or Shape(), **options)
    shape.check()
    return _windows(_Generator(seed, shape), shape, progress)


def _windows(
    generator: _Generator, shape: Shape, progress: Callable[[int, int], None] | None
) -> Iterator[str]:
    start, done = shape.start_ms, 0
    while done < shape.turns:
        turns = min(WINDOW_TURNS, shape.turns - done)
        entries = generator.schedule(generator.plan(turns), start)
        if entries:
            start = entries[-1][0] + 1_000  # the next window starts after a quiet second
        lines = generator.deliver(entries)
        del entries
        yield from lines
        done += turns
        if progress:
            progress(done, shape.turns)


def generate(
    seed: int,
    shape: Shape | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> list[str]:
    """Generate a trace: one JSON object per line, without newlines.

    Args:
        seed: the only source of variation; same seed and shape, same lines.
        shape: what to generate; keyword ``options`` override its fields.
        progress: called with (turns generated so far, turns in all) as it goes.

    Returns:
        The trace lines, in delivery order (:func:`iter_lines` gives them lazily).

    Raises:
        ValueError: an option is out of range.
    """
    return list(iter_lines(seed, shape, progress=progress, **options))


def expected(lines: Iterable[str | bytes]) -> dict[str, Any]:
    """The protocol section 9 document for ``lines``, from the naive reference model.

    It shares no code with the engine, so it is an oracle for generated traces.
    Complexity: O(events x bubbles); keep traces small (a few thousand lines).
    """
    from .reference import replay

    return replay(list(lines))


# --------------------------------------------------------------------------- census


def census(lines: Iterable[str | bytes]) -> dict[str, int]:
    """Count the races and features a trace contains (any trace, not only generated).

    It reads the trace the way a careful person would, with just enough of the binding
    rules to place callbacks relative to their turn; see :data:`FEATURES`.
    Complexity: O(lines).
    """
    counts = dict.fromkeys(FEATURES, 0)
    threads: dict[str, dict[str, Any]] = {}
    chunks_after: dict[tuple[str, str], int] = {}  # (thread, turn) -> chunks since callback
    mid_candidates: list[tuple[str, str]] = []
    for raw in lines:
        counts["lines"] += 1
        try:
            message = json.loads(raw)
        except ValueError:
            counts["malformed_lines"] += 1
            continue
        if type(message) is not dict or type(message.get("data")) is not dict:
            counts["malformed_lines"] += 1
            continue
        counts["events"] += 1
        name, data = message.get("event"), message["data"]
        if name == "history":
            counts["history"] += 1
            continue
        if name != "agent_message":
            counts["ignored_events"] += 1
            continue
        h, cat, kind = data.get("threadId"), data.get("catId"), data.get("type")
        if not isinstance(h, str):
            continue
        th = threads.setdefault(h, {
            "turns": {}, "latest": {}, "open": {}, "order": {}, "seq": None,
            "callbacks": {}, "parents": {}, "messages": set(), "count": 0,
        })
        if "timestamp" not in data:
            counts["missing_timestamp"] += 1
        if data.get("turnInvocationId"):
            counts["turn_invocation_id"] += 1
        seq = data.get("seq")
        if type(seq) is int:
            counts["seq_events"] += 1
            key = json.dumps(data.get("seqEpoch"))
            last = th["seq"]
            if last is not None and last[0] == key:
                if seq <= last[1]:
                    counts["seq_duplicates"] += 1
                    continue
                if seq > last[1] + 1:
                    counts["seq_gaps"] += 1
            elif last is None or last[0] != key:
                counts["seq_epochs"] += 1
            th["seq"] = (key, seq)
        content = data.get("content")
        if kind == "system_info" and isinstance(content, str):
            payload = None
            if content.startswith("{"):
                try:
                    payload = json.loads(content)
                except ValueError:
                    payload = None
            if not isinstance(payload, dict):
                counts["system_lines"] += 1
                if content == _CANCELLED:
                    counts["cancels"] += 1
                continue
            sub = payload.get("type")
            if sub == "invocation_created" and isinstance(payload.get("invocationId"), str):
                turn_id = payload["invocationId"]
                counts["turns"] += 1
                th["count"] += 1
                th["turns"][turn_id] = {"agent": cat, "chunks": 0, "done": False,
                                        "index": len(th["order"].setdefault(cat, []))}
                th["order"][cat].append(turn_id)
                th["open"][cat] = turn_id
                parent = data.get("invocationId")
                if isinstance(parent, str):
                    th["latest"][cat, parent] = turn_id
                    agents = th["parents"].setdefault(parent, [])
                    if not agents:
                        counts["parents"] += 1
                    if cat in agents:
                        counts["same_agent_twice_in_parent"] += 1
                    elif len(agents) == 1:
                        counts["parallel_parents"] += 1  # counted once, at the 2nd agent
                    agents.append(cat)
            elif sub == "thinking":
                counts["thinking"] += 1
            elif sub == "rich_block":
                counts["rich_blocks"] += 1
                if payload.get("messageId") and payload["messageId"] not in th["messages"]:
                    counts["held_rich_blocks"] += 1
            continue
        if kind == "text" and data.get("origin") == "callback":
            turn_id = data.get("turnInvocationId") or data.get("invocationId")
            counts["callbacks"] += 1
            message_id = data.get("messageId")
            if isinstance(message_id, str):
                th["messages"].add(message_id)
            extra = data.get("extra")
            if isinstance(extra, dict) and extra.get("isExplicitPost") is True:
                counts["explicit_posts"] += 1
                continue
            seen = th["callbacks"].setdefault(turn_id, [])
            if (message_id, content) in seen:
                counts["redelivered_callbacks"] += 1
                continue
            if any(m != message_id for m, _ in seen):
                counts["second_posts"] += 1
                seen.append((message_id, content))
                continue
            seen.append((message_id, content))
            turn = th["turns"].get(turn_id)
            if turn is None:
                counts["callback_before_announce"] += 1
            elif turn["index"] + 1 < len(th["order"][turn["agent"]]):
                counts["callback_after_newer_turn"] += 1
            elif turn["done"]:
                counts["callback_after_done"] += 1
            elif turn["chunks"] == 0:
                counts["callback_before_stream"] += 1
            else:
                mid_candidates.append((h, turn_id))
                chunks_after[h, turn_id] = 0
            continue
        # stream-side events: bind like the protocol does (turn id, parent, open turn)
        turn_id = data.get("turnInvocationId")
        if not turn_id:
            parent = data.get("invocationId")
            turn_id = th["latest"].get((cat, parent)) if parent else th["open"].get(cat)
        turn = th["turns"].get(turn_id) if turn_id else None
        if kind == "text":
            counts["stream_chunks"] += 1
            if isinstance(content, str):
                size = len(content)
                counts["small_chunks"] += size <= 8
                counts["long_chunks"] += size >= 200
                counts["non_ascii_chunks"] += not content.isascii()
            if "origin" not in data:
                counts["stream_without_origin"] += 1
            if turn is not None:
                turn["chunks"] += 1
                if (h, turn_id) in chunks_after:
                    chunks_after[h, turn_id] += 1
        elif kind in ("tool_use", "tool_result"):
            counts[kind] += 1
        elif kind == "error":
            counts["errors"] += 1
        elif kind == "a2a_handoff":
            counts["handoffs"] += 1
        elif kind == "done":
            if turn is not None:
                turn["done"] = True
            if th["open"].get(cat) == turn_id:
                th["open"].pop(cat, None)
    for key in mid_candidates:
        if chunks_after.get(key):
            counts["callback_mid_stream"] += 1  # the stream went on after its callback
        else:
            counts["callback_end_of_stream"] += 1  # after the last chunk, before done
    counts["threads"] = len(threads)
    counts["background_threads"] = max(sum(1 for th in threads.values() if th["count"]) - 1, 0)
    return counts
