#!/usr/bin/env python
"""A demo multi-agent chat server that speaks the clowder-ai wire, with racy callbacks.

Run it, then watch a thread live from a second terminal::

    python examples/demo_server.py --port 8765 --scenario late_callback
    reconcile watch --url http://127.0.0.1:8765 --thread t1

It needs the client extra (``pip install -e '.[client]'``: python-socketio, aiohttp).

The wire (clowder-ai's ``agent_message``; ``docs/protocol.md``)
---------------------------------------------------------------
* socket.io (python-socketio on aiohttp). The handshake auth is ``{"userId": ...}``;
  the socket joins ``user:{userId}`` and then whatever rooms it asks for with
  ``join_room`` (``thread:{id}``, ...; acknowledged with ``{"ok": true}``).
* ``agent_message`` events go to room ``thread:{id}``: ``intent_mode`` for each user
  message (parent id P), then per agent turn T: ``system_info`` with
  ``{"type": "invocation_created", "invocationId": T}`` (envelope ``invocationId`` P),
  stream ``text`` chunks, ``thinking``, ``tool_use``/``tool_result`` (all carrying P),
  an ``invocation_metrics`` payload and ``done`` (carrying P). Callbacks are
  ``text`` with ``origin: "callback"``, ``messageId`` and ``invocationId`` = T (the
  turn id, as issue #454 asks), posted on their own timers, so they land mid-stream,
  after ``done``, after newer turns, in a background thread, or before the stream.
* Every ``agent_message`` carries ``timestamp`` (ms, strictly increasing across the
  server) and a per-thread ``seq`` under a ``seqEpoch`` fixed per server process
  (``--no-seq`` leaves them out, like the stock server).
* ``GET /api/messages?threadId=..&limit=..&before=ts:id`` (header ``X-Cat-Cafe-User``)
  answers ``{"messages": [...], "hasMore": bool}``: the newest ``limit`` stored
  messages before the cursor, oldest first. Stored: each user message (no
  ``catId``); each callback (``origin: "callback"``, ``id`` = its messageId,
  ``extra.stream.invocationId`` = T, the post-#454 behaviour); each finished turn
  that produced output (``id: s-T``, ``origin: "stream"``, the whole streamed text,
  ``extra.stream.invocationId`` = T), stored *before* its ``done`` is sent, as
  clowder's route-serial does. The first page also holds a draft
  (``id: draft-T``, ``isDraft: true``) for each turn in progress, unless a stored
  message of the page carries T.

Like the real server: ``--like-clowder``
----------------------------------------
The real clowder-ai server differs from the above in ways a client must survive;
``--like-clowder`` (with ``--stock`` for the server as shipped) does the same:

* history is filtered by user: ``X-Cat-Cafe-User`` (absent: ``default-user``)
  other than ``--owner`` (default ``default-user``) gets empty pages, no error;
* ``join_room`` is never acknowledged;
* no ``seq``/``seqEpoch``;
* drafts carry only their turn id (no ``extra.stream.parentInvocationId``), so a
  client that joins mid-turn cannot bind the turn's chunks (they carry the parent);
* stored callbacks carry no turn (no ``extra.stream.invocationId``); live callbacks
  carry the turn id (the #454 fix) or, with ``--stock``, none;
* ``POST /api/demo/restart?down_ms=M`` is a restart of a memory store: every client
  dropped and refused for M ms, every thread and running turn lost;
* scenario ``working_after_callback``: a callback posted mid-turn while the agent
  keeps working (a tool, many more chunks) until its ``done``.

In this mode the three views below no longer agree (that is the point): a joined
client refuses the turn-less stored callbacks, and a stock server's callbacks are
refused live.

Control endpoints (for tests and demos)
---------------------------------------
* ``POST /api/demo/start?scenario=NAME&seed=N&drop_after=K&refuse_ms=M&wait_rejoin=1``:
  start a run (409 while one runs). ``drop_after`` disconnects every client right
  after the K-th ``agent_message`` of the run (server-side ``sio.disconnect``) and
  refuses reconnections for ``refuse_ms`` milliseconds while the agents go on, so
  the client surely misses events. With ``wait_rejoin``, the run then pauses until
  a client joins a room again (at most 10 s), so turns the client saw begin are
  still streaming when it is back: the hard case for a reconnecting client.
* ``POST /api/demo/disconnect?user=U&refuse_ms=M``: drop clients now.
* ``GET /api/demo/status``: ``{"state": "idle"|"running"|"finished", ...}``.
* ``GET /api/demo/trace``: every event the server emitted, as JSON Lines (PROTOCOL
  section 1), in emission order. ``--trace FILE`` also writes it as it goes.
* ``GET /api/demo/scenarios``: the scenario names, threads and descriptions.

Why a client, the event log and the stored history agree
--------------------------------------------------------
After a run ends (every turn finished, every callback delivered), three views give
the same bubbles (same agent, turn, origin, text, status and message id, in the same
order): a client that received the stream, the replay of ``/api/demo/trace``, and a
replay of the stored history. By construction:

* every turn is announced before its output, and one agent's turns in a thread never
  overlap, so every live event binds to its turn (``reconcile check`` is clean);
* a turn's bubble shows its callback text if it had a callback, else its whole
  stream; the stored messages say the same (callback by turn id; ``s-T`` text);
* timestamps are unique and increasing, and ``s-T`` (and ``draft-T``) carries the
  timestamp of T's *first* output, which is where a live client creates T's bubble;
  a callback is stored with its broadcast timestamp. So bubble order (by the
  creating event's timestamp) is the same live and from history;
* the server only emits what the engine shows from history too: no errors, cancels,
  hand-offs or explicit posts (their system lines have no stored counterpart).
  Thinking, tools and rich blocks are live-only detail: history carries them
  (``thinking``, ``toolEvents``) but PROTOCOL section 7 does not apply them.

Scenarios: ``late_callback``, ``late_callback_same``, ``background_thread``,
``callback_first`` (the four regression races of the conformance corpus, cases
03-06), ``mid_stream``, ``two_agents``, ``long_stream`` (for disconnect tests),
``working_after_callback`` and ``random`` (seeded with ``--seed``: several threads and
agents at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web

ROOM_PATTERN = re.compile(r"^(thread:|worktree:|preview:global$|workspace:global$|user:)")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


class Clock:
    """Epoch milliseconds, strictly increasing: no two events share a timestamp."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        self._last = max(int(time.time() * 1000), self._last + 1)
        return self._last


class Store:
    """The server's durable messages and its drafts, per thread."""

    def __init__(self) -> None:
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.drafts: dict[str, dict[str, dict[str, Any]]] = {}

    def append(self, thread: str, message: dict[str, Any]) -> None:
        self.messages.setdefault(thread, []).append(message)

    def set_draft(self, thread: str, turn: str, message: dict[str, Any]) -> None:
        self.drafts.setdefault(thread, {})[turn] = message

    def drop_draft(self, thread: str, turn: str) -> None:
        self.drafts.get(thread, {}).pop(turn, None)

    def page(
        self, thread: str, limit: int, before: tuple[int, str] | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """The newest ``limit`` messages before ``before``, oldest first; drafts on page 1."""
        items = sorted(self.messages.get(thread, ()), key=_sort_key)
        if before is not None:
            items = [m for m in items if _sort_key(m) < before]
        has_more = len(items) > limit
        page = items[len(items) - limit :] if limit < len(items) else items
        if before is None:
            covered = {_turn_of(m) for m in page}
            drafts = [d for t, d in self.drafts.get(thread, {}).items() if t not in covered]
            page = sorted(page + drafts, key=_sort_key)
        return [dict(m) for m in page], has_more


def _sort_key(message: dict[str, Any]) -> tuple[int, str]:
    return message["timestamp"], message["id"]


def _turn_of(message: dict[str, Any]) -> str | None:
    stream = (message.get("extra") or {}).get("stream") or {}
    return stream.get("invocationId")


class AgentTurn:
    """One agent's turn T under parent P in a thread: what a scenario drives."""

    def __init__(self, run: Run, thread: str, cat: str, parent: str, turn_id: str) -> None:
        self.run = run
        self.server = run.server
        self.thread = thread
        self.cat = cat
        self.parent = parent
        self.id = turn_id
        self.parts: list[str] = []
        self.thinking: list[str] = []
        self.tools: list[dict[str, Any]] = []
        self.first_ts: int | None = None  # timestamp of the first stream-side output
        self.posts = 0

    def _envelope(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "catId": self.cat, **fields}

    def _output(self, ts: int) -> None:
        """Bookkeeping for a stream-side output event at ``ts`` (runs before it is sent)."""
        if self.first_ts is None:
            self.first_ts = ts
        self.server.store.set_draft(
            self.thread,
            self.id,
            {
                "id": f"draft-{self.id}",
                "type": "assistant",
                "catId": self.cat,
                "content": "".join(self.parts),
                "timestamp": self.first_ts,
                "isDraft": True,
                "origin": "stream",
                "extra": {"stream": {"invocationId": self.id}},
            },
        )

    async def announce(self) -> None:
        payload = json.dumps({"type": "invocation_created", "invocationId": self.id})
        await self.server.agent(
            self.thread, self._envelope("system_info", content=payload, invocationId=self.parent)
        )

    async def say(self, *chunks: str, ticks: float = 1) -> None:
        """Stream chunks, one per ``ticks``."""
        for index, chunk in enumerate(chunks):
            if index:
                await self.run.pause(ticks)

            def before_send(ts: int, chunk: str = chunk) -> None:
                self.parts.append(chunk)
                self._output(ts)

            await self.server.agent(
                self.thread,
                self._envelope("text", content=chunk, origin="stream", invocationId=self.parent),
                before_send=before_send,
            )

    async def think(self, text: str) -> None:
        payload = json.dumps({"type": "thinking", "catId": self.cat, "text": text})

        def before_send(ts: int) -> None:
            self.thinking.append(text)
            self._output(ts)

        await self.server.agent(
            self.thread,
            self._envelope("system_info", content=payload, invocationId=self.parent),
            before_send=before_send,
        )

    async def use_tool(self, name: str, tool_input: dict[str, Any], result: str) -> None:
        def before_use(ts: int) -> None:
            self.tools.append({"type": "tool_use", "toolName": name, "toolInput": tool_input})
            self._output(ts)

        await self.server.agent(
            self.thread,
            self._envelope("tool_use", toolName=name, toolInput=tool_input,
                           invocationId=self.parent),
            before_send=before_use,
        )
        await self.run.pause(1)

        def before_result(ts: int) -> None:
            self.tools.append({"type": "tool_result", "toolName": name, "content": result})
            self._output(ts)

        await self.server.agent(
            self.thread,
            self._envelope("tool_result", toolName=name, content=result,
                           invocationId=self.parent),
            before_send=before_result,
        )

    async def finish(self, is_final: bool = True) -> None:
        """Store the streamed text (if the turn produced anything), then send ``done``."""
        metrics = json.dumps(
            {"type": "invocation_metrics", "kind": "invocation_complete",
             "invocationId": self.id, "durationMs": 42}
        )
        await self.server.agent(
            self.thread, self._envelope("system_info", content=metrics, invocationId=self.parent)
        )

        def store(ts: int) -> None:
            if self.first_ts is None:
                return  # no output, nothing stored (clowder: silent_completion)
            message = {
                "id": f"s-{self.id}",
                "type": "assistant",
                "catId": self.cat,
                "content": "".join(self.parts),
                "origin": "stream",
                "timestamp": self.first_ts,
                "extra": {"stream": {"invocationId": self.id}},
            }
            if self.thinking:
                message["thinking"] = "\n\n".join(self.thinking)
            if self.tools:
                message["toolEvents"] = list(self.tools)
            self.server.store.append(self.thread, message)
            self.server.store.drop_draft(self.thread, self.id)

        await self.server.agent(
            self.thread,
            self._envelope("done", isFinal=is_final, invocationId=self.parent),
            before_send=store,
        )

    async def post(self, text: str, message_id: str | None = None) -> str:
        """A callback: store it, then broadcast it with the turn id. Returns its id.

        Passing the ``message_id`` of an earlier post redelivers it (stored once).
        """
        if message_id is None:
            self.posts += 1
            message_id = f"m-{self.id}" if self.posts == 1 else f"m-{self.id}-{self.posts}"
            new = True
        else:
            new = False

        clowder = self.server.like_clowder

        def store(ts: int) -> None:
            if new:
                stored = {
                    "id": message_id,
                    "type": "assistant",
                    "catId": self.cat,
                    "content": text,
                    "origin": "callback",
                    "timestamp": ts,
                }
                if not clowder:  # clowder stores a callback without its turn
                    stored["extra"] = {"stream": {"invocationId": self.id}}
                self.server.store.append(self.thread, stored)

        envelope = self._envelope("text", content=text, origin="callback", messageId=message_id)
        if not (clowder and self.server.stock):  # the stock server broadcasts no turn id
            envelope["invocationId"] = self.id
        await self.server.agent(self.thread, envelope, before_send=store)
        return message_id

    def post_later(self, ticks: float, text: str, message_id: str | None = None) -> None:
        """A callback on its own timer, ``ticks`` from now (like an HTTP callback)."""
        self.run.later(ticks, lambda: self.post(text, message_id))


class Run:
    """One run of a scenario: ids, pacing, and the callbacks still pending."""

    def __init__(self, server: DemoServer, number: int, tick: float, seed: int) -> None:
        self.server = server
        self.number = number
        self.tick = tick
        self.seed = seed
        self.rng = random.Random(seed)
        self.pending: list[asyncio.Task] = []
        self._parents = 0
        self._turns = 0

    async def pause(self, ticks: float = 1) -> None:
        await asyncio.sleep(max(ticks, 0) * self.tick)

    def later(self, ticks: float, action: Callable[[], Awaitable[Any]]) -> None:
        async def fire() -> None:
            await self.pause(ticks)
            await action()

        self.pending.append(asyncio.create_task(fire()))

    async def ask(self, thread: str, text: str, cats: list[str]) -> str:
        """A user message: stored, then ``intent_mode`` with a new parent id."""
        self._parents += 1
        parent = f"r{self.number}-p{self._parents}"
        self.server.store.append(
            thread,
            {"id": f"u-{parent}", "type": "user", "catId": None, "content": text,
             "timestamp": self.server.clock()},
        )
        await self.server.emit(
            "intent_mode",
            {"threadId": thread, "mode": "execute", "targetCats": cats, "invocationId": parent},
            thread,
        )
        return parent

    async def turn(self, thread: str, cat: str, parent: str, name: str = "") -> AgentTurn:
        """A new announced turn (``invocation_created``)."""
        self._turns += 1
        turn = AgentTurn(self, thread, cat, parent, f"r{self.number}-{name or cat}-{self._turns}")
        await turn.announce()
        return turn

    async def settle(self) -> None:
        """Wait for every callback timer (a run ends with all callbacks delivered)."""
        while self.pending:
            pending, self.pending = self.pending, []
            await asyncio.gather(*pending)


# ---------------------------------------------------------------------- scenarios


async def late_callback(run: Run) -> None:
    """Turn A's callback, with other text than it streamed, lands during turn B."""
    p1 = await run.ask("t1", "Why does the parser fail?", ["opus"])
    a = await run.turn("t1", "opus", p1, "a")
    await run.pause()
    await a.say("Looking ", "into ", "it")
    await a.finish()
    a.post_later(3.5, "The bug is in parse(): it reads the parent id.")
    await run.pause(2)
    p2 = await run.ask("t1", "And the fix?", ["opus"])
    b = await run.turn("t1", "opus", p2, "b")
    await b.say("Second question: ", "key bubbles ", "by the turn id, ", "answering now.")
    await run.pause(3)
    await b.finish()


async def late_callback_same(run: Run) -> None:
    """Two turns stream the same words; A's callback (same text) arrives after B's
    chunks, B's own callback after B's done. Text never decides identity."""
    p1 = await run.ask("t1", "Can you do it?", ["opus"])
    a = await run.turn("t1", "opus", p1, "a")
    await a.say("Sure, ", "done.")
    await a.finish()
    a.post_later(7, "Sure, done.")
    await run.pause(2)
    p2 = await run.ask("t1", "And again?", ["opus"])
    b = await run.turn("t1", "opus", p2, "b")
    await b.say("Sure, ", "done.")
    await run.pause(8)
    await b.finish()
    b.post_later(3, "Sure, done.")


async def background_thread(run: Run) -> None:
    """A late callback for thread t2 (background) while t1 (foreground) streams."""
    p1 = await run.ask("t2", "Restart the workers", ["codex"])
    a = await run.turn("t2", "codex", p1, "bg-a")
    await a.say("partial ", "bg")
    await a.finish()
    a.post_later(9, "Background result: 4 of 4 workers healthy.")
    px = await run.ask("t1", "Summarise the design", ["codex"])
    x = await run.turn("t1", "codex", px, "fg-x")
    await x.say("foreground ", "work ")

    async def next_bg_turn() -> None:
        p2 = await run.ask("t2", "Now the queue", ["codex"])
        b = await run.turn("t2", "codex", p2, "bg-b")
        await b.say("next ", "bg ", "turn", ticks=2)
        await run.pause(6)
        await b.finish()

    await asyncio.gather(next_bg_turn(), _keep_talking(run, x, ["in ", "progress."], 4))
    await x.finish()


async def _keep_talking(run: Run, turn: AgentTurn, chunks: list[str], ticks: float) -> None:
    for chunk in chunks:
        await run.pause(ticks)
        await turn.say(chunk)


async def callback_first(run: Run) -> None:
    """The callback overtakes the whole stream; the late chunks are superseded."""
    p1 = await run.ask("t1", "Quick answer please", ["gemini"])
    t = await run.turn("t1", "gemini", p1, "g")
    t.post_later(0, "Callback came first.")
    await run.pause(3)
    await t.say("Callback ", "came ", "first.")
    await t.finish()


async def mid_stream(run: Run) -> None:
    """Thinking, a callback mid-stream, more chunks, a tool and a rich block."""
    p1 = await run.ask("t1", "Find the flaky test", ["opus"])
    t = await run.turn("t1", "opus", p1, "m")
    await t.think("Check the timing assumptions first.")
    await run.pause()
    await t.say("[opus] Hello ")
    message_id = await t.post("Posted mid-stream: the test sleeps 10 ms.")
    block = {"type": "rich_block", "block": {"id": f"blk-{t.id}", "kind": "card", "v": 1},
             "messageId": message_id}
    await run.server.agent("t1", t._envelope("system_info", content=json.dumps(block)))
    await t.say("Done ", "streaming.")
    await t.use_tool("search", {"q": "sleep"}, "tests/test_timing.py:12")
    await t.finish()


async def two_agents(run: Run) -> None:
    """Two agents under one parent id stream interleaved; callbacks after both."""
    p1 = await run.ask("t1", "@opus @sonnet review this", ["opus", "sonnet"])
    o = await run.turn("t1", "opus", p1, "o")
    s = await run.turn("t1", "sonnet", p1, "s")
    for so, oo in (("[s] Hello ", "[o] Hello "), ("from ", "from "), ("sonnet", "opus")):
        await s.say(so)
        await run.pause()
        await o.say(oo)
        await run.pause()
    await s.finish(is_final=False)
    s.post_later(4, "Sonnet: looks good.")
    await run.pause(2)
    await o.finish()
    o.post_later(1, "Opus: two nits, see inline.")


async def long_stream(run: Run) -> None:
    """Long streams in two threads with late callbacks: room for a disconnect."""
    p1 = await run.ask("t1", "Write the report", ["opus"])
    a = await run.turn("t1", "opus", p1, "a")
    await a.say(*(f"intro{i} " for i in range(8)))
    await a.finish()
    a.post_later(22, "Report intro, final version.")

    async def background() -> None:
        q = await run.ask("t2", "Watch the deploy", ["gemini"])
        d = await run.turn("t2", "gemini", q, "d")
        await d.say(*(f"deploy{i} " for i in range(20)), ticks=3)
        await d.finish()

    async def main_thread() -> None:
        p2 = await run.ask("t1", "Now the details", ["opus", "codex"])
        b = await run.turn("t1", "opus", p2, "b")
        await b.think("Long answer ahead.")
        body = asyncio.create_task(b.say(*(f"word{i} " for i in range(45))))
        await run.pause(12)
        c = await run.turn("t1", "codex", p2, "c")
        await c.say(*(f"codex{i} " for i in range(12)), ticks=2)
        await c.finish(is_final=False)
        c.post_later(5, "Codex: the numbers check out.")
        await body
        await b.finish()
        b.post_later(3, "Details, final version.")

    await asyncio.gather(background(), main_thread())


async def working_after_callback(run: Run) -> None:
    """One turn posts its callback early and keeps working (a tool, many more
    chunks) until its done: the bubble is done long before the agent is."""
    p1 = await run.ask("t1", "Refactor the parser", ["opus"])
    t = await run.turn("t1", "opus", p1, "w")
    await t.think("Plan first, then split parse().")
    await t.say(*(f"step{i} " for i in range(8)))
    await t.post("Refactor done: parse() is split in two.")
    await t.use_tool("pytest", {"k": "parser"}, "12 passed")
    await t.say(*(f"check{i} " for i in range(60)))
    await t.finish()


_WORDS = tuple(
    (
        "the turn id is the key so a late callback lands where its turn began and "
        "nothing is guessed from text or time parser socket history draft stream agent "
        "bubble thread replay reconnect seq gap order identity"
    ).split()
)
_CATS = ("opus", "codex", "gemini", "sonnet")


async def random_run(run: Run) -> None:
    """Seeded: 3 threads, 2-3 user messages each, 1-2 agents per message, random
    chunks, thinking, tools, callbacks at random times (some after newer turns),
    second posts and redelivered callbacks. The plan depends on the seed only; the
    interleaving depends on real timers, as on a real server."""

    async def thread_worker(thread: str) -> None:
        rng = random.Random(f"{run.seed}-{thread}")
        for number in range(rng.randint(2, 3)):
            cats = rng.sample(_CATS, rng.choice((1, 1, 2)))
            parent = await run.ask(thread, f"question {number + 1} in {thread}", cats)
            await asyncio.gather(
                *(agent_turn(thread, cat, parent, random.Random(rng.random())) for cat in cats)
            )
            await run.pause(rng.randint(0, 3))

    async def agent_turn(thread: str, cat: str, parent: str, rng: random.Random) -> None:
        turn = await run.turn(thread, cat, parent)
        chunks = [rng.choice(_WORDS) + " " for _ in range(rng.choice((0, 2, 4, 6, 9, 12)))]
        length = len(chunks) + 4
        if rng.random() < 0.75:
            text = f"[{cat}] " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9)))
            delay = rng.uniform(0, length * 1.6)
            turn.post_later(delay, text)
            if rng.random() < 0.15:  # the agent posts twice in one turn
                turn.post_later(delay + rng.uniform(1, 6), text + " (and one more thing)")
            elif rng.random() < 0.15:  # a redelivery of the same message (retry, outbox)
                turn.post_later(delay + rng.uniform(1, 6), text, f"m-{turn.id}")
        if rng.random() < 0.4:
            await turn.think(" ".join(rng.choice(_WORDS) for _ in range(5)))
        for index, chunk in enumerate(chunks):
            await turn.say(chunk)
            await run.pause(rng.choice((0, 1, 1, 2)))
            if index == 1 and rng.random() < 0.3:
                await turn.use_tool("grep", {"pattern": rng.choice(_WORDS)}, "3 matches")
        await turn.finish(is_final=False)

    await asyncio.gather(*(thread_worker(t) for t in ("t1", "t2", "t3")))


Scenario = Callable[[Run], Awaitable[None]]

#: name -> (coroutine, threads it uses)
SCENARIOS: dict[str, tuple[Scenario, tuple[str, ...]]] = {
    "late_callback": (late_callback, ("t1",)),
    "late_callback_same": (late_callback_same, ("t1",)),
    "background_thread": (background_thread, ("t1", "t2")),
    "callback_first": (callback_first, ("t1",)),
    "mid_stream": (mid_stream, ("t1",)),
    "two_agents": (two_agents, ("t1",)),
    "long_stream": (long_stream, ("t1", "t2")),
    "random": (random_run, ("t1", "t2", "t3")),
    "working_after_callback": (working_after_callback, ("t1",)),
}


# ---------------------------------------------------------------------- server


class DemoServer:
    """The socket.io + HTTP server, its store, its event log and its runs."""

    def __init__(
        self,
        *,
        scenario: str = "late_callback",
        seed: int = 1,
        tick: float = 0.1,
        seq: bool = True,
        start: str = "on-join",
        loop: bool = False,
        trace_path: str | None = None,
        verbose: bool = False,
        like_clowder: bool = False,
        stock: bool = False,
        owner: str = "default-user",
        history_delay: float = 0.0,
        join_delay: float = 0.0,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.seed = seed
        self.tick = tick
        #: --like-clowder: behave like the real clowder-ai server (module docstring).
        self.like_clowder = like_clowder
        self.stock = stock
        self.owner = owner
        #: Seconds each history request waits before reading the store (tests: events
        #: then reach a joining client before its first page).
        self.history_delay = history_delay
        self.join_delay = join_delay
        self.use_seq = seq and not like_clowder
        self.start_mode = start
        self.loop = loop
        self.verbose = verbose
        self.clock = Clock()
        self.store = Store()
        self.trace: list[dict[str, Any]] = []
        self.epoch = uuid.uuid4().hex[:8]
        self._seq: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._trace_file = (
            open(trace_path, "w", encoding="utf-8") if trace_path else None  # noqa: SIM115
        )
        self.users: dict[str, str] = {}  # sid -> userId
        self.refuse_until = 0.0
        self.drops: list[dict[str, Any]] = []
        self.runs = 0
        self.state = "idle"
        self.run_task: asyncio.Task | None = None
        self.current: Run | None = None
        self._run_agent_messages = 0
        self._drop_after: int | None = None
        self._refuse_ms = 0
        self._wait_rejoin = False
        self._rejoined: asyncio.Event | None = None  # set while a run waits for a rejoin
        self._start_scheduled = False
        #: --drop-after / --refuse-ms: used by runs that do not say otherwise.
        self.default_drop_after: int | None = None
        self.default_refuse_ms = 0
        self.default_wait_rejoin = False

        self.sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
        self.app = web.Application()
        self.sio.attach(self.app)
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("join_room", self._on_join_room)
        self.sio.on("leave_room", self._on_leave_room)
        self.app.router.add_get("/api/messages", self._get_messages)
        self.app.router.add_post("/api/demo/start", self._post_start)
        self.app.router.add_post("/api/demo/disconnect", self._post_disconnect)
        self.app.router.add_post("/api/demo/restart", self._post_restart)
        self.app.router.add_get("/api/demo/status", self._get_status)
        self.app.router.add_get("/api/demo/trace", self._get_trace)
        self.app.router.add_get("/api/demo/scenarios", self._get_scenarios)

    # ---------------------------------------------------------------- emitting

    async def emit(self, event: str, data: dict[str, Any], thread: str) -> None:
        """Log and send one non-agent event to the thread's room."""
        async with self._lock:
            await self._send(event, data, thread)

    async def agent(
        self,
        thread: str,
        fields: dict[str, Any],
        before_send: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Stamp, log and send one ``agent_message``; ``before_send(ts)`` stores first.

        One lock around stamp, store, log and send: the log order is the send order,
        seq and timestamps increase along it, and nothing is stored out of order.
        """
        async with self._lock:
            if self._rejoined is not None and time.monotonic() >= self.refuse_until:
                # wait_rejoin: hold every agent until a dropped client is back.
                try:
                    await asyncio.wait_for(self._rejoined.wait(), 10.0)
                except TimeoutError:
                    pass
                self._rejoined = None
            ts = self.clock()
            data = {**fields, "threadId": thread, "timestamp": ts}
            if self.use_seq:
                self._seq[thread] = self._seq.get(thread, 0) + 1
                data["seq"] = self._seq[thread]
                data["seqEpoch"] = self.epoch
            if before_send is not None:
                before_send(ts)
            await self._send("agent_message", data, thread)
            self._run_agent_messages += 1
            if self._drop_after is not None and self._run_agent_messages == self._drop_after:
                await self._drop(None, self._refuse_ms, f"after event {self._drop_after}")
                if self._wait_rejoin:
                    self._rejoined = asyncio.Event()
            return data

    async def _send(self, event: str, data: dict[str, Any], thread: str) -> None:
        entry = {"event": event, "data": data}
        self.trace.append(entry)
        if self._trace_file is not None:
            self._trace_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._trace_file.flush()
        if self.verbose:
            print(_describe(entry), flush=True)
        await self.sio.emit(event, data, room=f"thread:{thread}")

    async def _drop(self, user: str | None, refuse_ms: int, why: str) -> int:
        sids = [sid for sid, uid in list(self.users.items()) if user is None or uid == user]
        self.refuse_until = time.monotonic() + refuse_ms / 1000
        for sid in sids:
            await self.sio.disconnect(sid)
        self.drops.append({"at_event": len(self.trace), "clients": len(sids), "why": why})
        if self.verbose:
            print(f"-- dropped {len(sids)} client(s) {why}; refusing for {refuse_ms} ms",
                  flush=True)
        return len(sids)

    # ---------------------------------------------------------------- runs

    def start_run(
        self, scenario: str | None = None, seed: int | None = None,
        drop_after: int | None = None, refuse_ms: int = 0, wait_rejoin: bool | None = None,
    ) -> Run:
        """Start a run of ``scenario`` (default: the server's) in the background."""
        if self.run_task is not None and not self.run_task.done():
            raise RuntimeError("a run is in progress")
        name = scenario or self.scenario
        if name not in SCENARIOS:
            raise KeyError(name)
        self.runs += 1
        run = Run(self, self.runs, self.tick, self.seed + self.runs - 1 if seed is None else seed)
        self.current = run
        self.scenario = name
        self._run_agent_messages = 0
        self._drop_after = self.default_drop_after if drop_after is None else drop_after
        self._refuse_ms = refuse_ms or self.default_refuse_ms
        self._wait_rejoin = self.default_wait_rejoin if wait_rejoin is None else wait_rejoin
        self._rejoined = None
        self.state = "running"
        self.run_task = asyncio.create_task(self._run(run, SCENARIOS[name][0]))
        return run

    async def _run(self, run: Run, scenario: Scenario) -> None:
        try:
            await scenario(run)
            await run.settle()
        except Exception:  # pragma: no cover - a bug in a scenario
            self.state = "failed"
            raise
        self.state = "finished"
        if self.verbose:
            print(f"-- run {run.number} ({self.scenario}) finished: {len(self.trace)} events",
                  flush=True)
        if self.loop:
            # Started from a timer, once this task is done (start_run refuses to start
            # a run while one is in progress).
            asyncio.get_running_loop().call_later(max(20 * self.tick, 1.0), self.start_run)

    # ---------------------------------------------------------------- socket handlers

    async def _on_connect(self, sid: str, environ: dict, auth: Any = None) -> bool:
        if time.monotonic() < self.refuse_until:
            raise socketio.exceptions.ConnectionRefusedError("server busy, retry later")
        user = auth.get("userId") if isinstance(auth, dict) else None
        user = user if isinstance(user, str) and user else "anonymous"
        self.users[sid] = user
        if user != "anonymous":
            await self.sio.enter_room(sid, f"user:{user}")
        return True

    async def _on_disconnect(self, sid: str, *args: Any) -> None:
        self.users.pop(sid, None)

    async def _on_join_room(self, sid: str, room: Any) -> dict[str, Any] | None:
        if not isinstance(room, str) or not ROOM_PATTERN.match(room):
            return None if self.like_clowder else {"ok": False, "error": "invalid room"}
        if self.join_delay > 0:
            # A busy server: a history request sent after join_room is answered
            # before the socket is in the room, so what is stored and broadcast in
            # between reaches the client neither way.
            await asyncio.sleep(self.join_delay)
        await self.sio.enter_room(sid, room)
        if self._rejoined is not None and room.startswith("thread:"):
            self._rejoined.set()
        if (
            self.start_mode == "on-join"
            and self.runs == 0
            and room.removeprefix("thread:") in SCENARIOS[self.scenario][1]
            and not self._start_scheduled
        ):
            # Give the client a moment to fetch history before the first event.
            self._start_scheduled = True
            asyncio.get_running_loop().call_later(0.5, self.start_run)
        if self.like_clowder:
            return None  # clowder never acknowledges join_room
        return {"ok": True, "room": room}

    async def _on_leave_room(self, sid: str, room: Any) -> dict[str, Any]:
        if isinstance(room, str):
            await self.sio.leave_room(sid, room)
        return {"ok": True}

    # ---------------------------------------------------------------- HTTP handlers

    async def _get_messages(self, request: web.Request) -> web.Response:
        user = request.headers.get("X-Cat-Cafe-User")
        if self.like_clowder:
            user = user or "default-user"
        elif not user:
            return web.json_response({"error": "X-Cat-Cafe-User header required"}, status=401)
        thread = request.query.get("threadId")
        if not thread:
            return web.json_response({"error": "threadId required"}, status=400)
        try:
            limit = int(request.query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return web.json_response({"error": "limit must be an integer"}, status=400)
        limit = min(max(limit, 1), MAX_LIMIT)
        before = None
        if "before" in request.query:
            ts, _, message_id = request.query["before"].partition(":")
            try:
                before = (int(ts), message_id)
            except ValueError:
                return web.json_response({"error": "before must be ts:id"}, status=400)
        if self.history_delay > 0:
            await asyncio.sleep(self.history_delay)
        if self.like_clowder and user != self.owner:
            # clowder returns only the requesting user's messages: another user id
            # gets empty pages, without an error.
            return web.json_response({"messages": [], "hasMore": False})
        messages, has_more = self.store.page(thread, limit, before)
        return web.json_response({"messages": messages, "hasMore": has_more})

    async def _post_start(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            seed = int(query["seed"]) if "seed" in query else None
            drop_after = int(query["drop_after"]) if "drop_after" in query else None
            refuse_ms = int(query.get("refuse_ms", 0))
            wait_rejoin = bool(int(query["wait_rejoin"])) if "wait_rejoin" in query else None
        except ValueError:
            return web.json_response(
                {"error": "seed, drop_after, refuse_ms, wait_rejoin: integers"}, status=400
            )
        try:
            run = self.start_run(
                query.get("scenario"), seed, drop_after, refuse_ms, wait_rejoin
            )
        except KeyError:
            return web.json_response(
                {"error": f"unknown scenario; one of {', '.join(SCENARIOS)}"}, status=400
            )
        except RuntimeError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response(
            {"run": run.number, "scenario": self.scenario, "seed": run.seed,
             "threads": list(SCENARIOS[self.scenario][1])},
            status=202,
        )

    async def _post_disconnect(self, request: web.Request) -> web.Response:
        try:
            refuse_ms = int(request.query.get("refuse_ms", 0))
        except ValueError:
            return web.json_response({"error": "refuse_ms must be an integer"}, status=400)
        async with self._lock:
            dropped = await self._drop(request.query.get("user"), refuse_ms, "on request")
        return web.json_response({"dropped": dropped})

    async def _post_restart(self, request: web.Request) -> web.Response:
        """Like a restart of a server with a memory store: every client dropped and
        refused for ``down_ms``, every thread and running turn lost."""
        try:
            down_ms = int(request.query.get("down_ms", 500))
        except ValueError:
            return web.json_response({"error": "down_ms must be an integer"}, status=400)
        if self.run_task is not None and not self.run_task.done():
            self.run_task.cancel()
        for task in self.current.pending if self.current else ():
            task.cancel()
        async with self._lock:
            self.store = Store()
            self._seq = {}
            self.epoch = uuid.uuid4().hex[:8]
            dropped = await self._drop(None, down_ms, "restart (memory store lost)")
        self.state = "restarted"
        return web.json_response({"dropped": dropped})

    async def _get_status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "state": self.state,
                "scenario": self.scenario,
                "runs": max(self.runs, 0),
                "events": len(self.trace),
                "threads": list(SCENARIOS[self.scenario][1]),
                "clients": len(self.users),
                "drops": self.drops,
                "seqEpoch": self.epoch if self.use_seq else None,
            }
        )

    async def _get_trace(self, request: web.Request) -> web.Response:
        body = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.trace)
        return web.Response(text=body, content_type="application/x-ndjson")

    async def _get_scenarios(self, request: web.Request) -> web.Response:
        return web.json_response(
            {name: {"threads": list(threads), "about": (fn.__doc__ or "").strip()}
             for name, (fn, threads) in SCENARIOS.items()}
        )

    async def shutdown(self) -> None:
        """Disconnect every client (an open websocket would hold the HTTP shutdown)."""
        for sid in list(self.users):
            try:
                await asyncio.wait_for(self.sio.disconnect(sid), 1.0)
            except Exception as exc:  # noqa: BLE001 - shutting down anyway
                print(f"demo server: disconnecting {sid}: {exc!r}", file=sys.stderr)

    def close(self) -> None:
        if self._trace_file is not None:
            self._trace_file.close()
            self._trace_file = None


def _describe(entry: dict[str, Any]) -> str:
    """One short line per emitted event, for the server's terminal."""
    data = entry["data"]
    thread = data.get("threadId", "?")
    if entry["event"] != "agent_message":
        return f"{thread:<4} {entry['event']:<14} {data.get('invocationId', '')}"
    kind = data.get("type")
    cat = data.get("catId", "")
    detail = ""
    if kind == "text":
        origin = "callback" if data.get("origin") == "callback" else "stream"
        detail = f"{origin:<8} {data.get('content', '')!r}"
        if origin == "callback":
            detail += f" turn={data.get('invocationId')} id={data.get('messageId')}"
    elif kind == "system_info":
        try:
            payload = json.loads(data.get("content", ""))
            detail = payload.get("type", "")
            if detail == "invocation_created":
                detail += f" turn={payload.get('invocationId')}"
        except (ValueError, AttributeError):
            detail = repr(data.get("content"))
    elif kind in ("tool_use", "tool_result"):
        detail = str(data.get("toolName"))
    seq = data.get("seq", "")
    return f"{thread:<4} {seq!s:>4} {cat:<7} {kind:<12} {detail}"


async def serve(
    host: str = "127.0.0.1", port: int = 8765, **options: Any
) -> tuple[web.AppRunner, DemoServer, int]:
    """Start a demo server in the running loop; returns (runner, server, bound port)."""
    demo = DemoServer(**options)
    runner = web.AppRunner(demo.app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, demo, bound


async def _main(args: argparse.Namespace) -> int:
    runner, demo, port = await serve(
        args.host,
        args.port,
        scenario=args.scenario,
        seed=args.seed,
        tick=args.tick / 1000,
        seq=not args.no_seq,
        start=args.start,
        loop=args.loop,
        trace_path=args.trace,
        verbose=not args.quiet,
        like_clowder=args.like_clowder,
        stock=args.stock,
        owner=args.owner,
        history_delay=args.history_delay_ms / 1000,
        join_delay=args.join_delay_ms / 1000,
    )
    threads = ", ".join(SCENARIOS[args.scenario][1])
    print(
        f"demo server: listening on http://{args.host}:{port} "
        f"(scenario {args.scenario}, threads {threads}, start {args.start})",
        flush=True,
    )
    if not args.quiet:
        print(f"  watch it: reconcile watch --url http://{args.host}:{port} "
              + " ".join(f"--thread {t}" for t in SCENARIOS[args.scenario][1]), flush=True)
    demo.default_drop_after, demo.default_refuse_ms = args.drop_after, args.refuse_ms
    demo.default_wait_rejoin = args.wait_rejoin
    if args.start == "now":
        demo.start_run()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if demo.run_task is not None and not demo.run_task.done():
        demo.run_task.cancel()
    for task in demo.current.pending if demo.current else ():
        task.cancel()
    await demo.shutdown()
    await runner.cleanup()
    demo.close()
    if not args.quiet:
        print(f"demo server: stopped after {len(demo.trace)} events", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="A demo chat server (clowder-ai wire) with racy callbacks.",
        epilog="Scenarios: " + ", ".join(SCENARIOS),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--scenario", default="late_callback", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=1, help="seed of the random scenario")
    parser.add_argument("--tick", type=float, default=150.0,
                        help="milliseconds per scenario step (default 150: watchable)")
    parser.add_argument("--start", choices=("on-join", "now", "on-request"), default="on-join",
                        help="when to start: when a client joins a scenario thread (default), "
                        "at once, or on POST /api/demo/start")
    parser.add_argument("--loop", action="store_true", help="run the scenario again and again")
    parser.add_argument("--trace", metavar="FILE", help="also write every emitted event here")
    parser.add_argument("--drop-after", type=int, metavar="K",
                        help="drop every client after the K-th agent_message of a run")
    parser.add_argument("--refuse-ms", type=int, default=0, metavar="MS",
                        help="after a drop, refuse reconnections for this long")
    parser.add_argument("--wait-rejoin", action="store_true",
                        help="after a drop, pause the run until a client rejoins")
    parser.add_argument("--no-seq", action="store_true", help="no seq/seqEpoch (stock server)")
    parser.add_argument("--like-clowder", action="store_true",
                        help="behave like the real clowder-ai server: history filtered by "
                        "user, no join_room acknowledgement, no seq, stored callbacks "
                        "without their turn (see the module docstring)")
    parser.add_argument("--stock", action="store_true",
                        help="with --like-clowder: live callbacks carry no turn id either "
                        "(clowder as shipped; without it, as fixed by its issue #454)")
    parser.add_argument("--owner", default="default-user",
                        help="with --like-clowder: the user whose history the threads are "
                        "(default: default-user)")
    parser.add_argument("--history-delay-ms", type=int, default=0, metavar="MS",
                        help="answer each history request this much later (a slow store)")
    parser.add_argument("--join-delay-ms", type=int, default=0, metavar="MS",
                        help="put a socket in the room it asked for this much later")
    parser.add_argument("--quiet", action="store_true", help="print only the listening line")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except OSError as exc:
        print(f"demo server: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
