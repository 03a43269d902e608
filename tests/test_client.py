"""The live client against the demo server, over real sockets on 127.0.0.1.

Each test starts ``examples/demo_server.py`` as a subprocess on a free port (in
``--start on-request`` mode, 15 ms per scenario step), drives a run through its
control endpoints, and stops it at the end. Nothing waits a fixed time for a
result: every wait is for a condition, with a generous timeout, so a slow, busy
machine only makes the tests slower.

The three views that must agree (see the demo server's docstring for why):
* the client's bubbles;
* the replay of the server's own event log (``/api/demo/trace``);
* the replay of the server's stored history (``/api/messages``).
History carries no tools, thinking or blocks into the engine (PROTOCOL section 7),
so comparisons that involve history use ``VIEW``; a client that saw every event is
compared with the event log in full, bubble ids included.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("socketio")
aiohttp = pytest.importorskip("aiohttp")

from reconcile import Reconciler, cli
from reconcile.cli import _common as cli_common
from reconcile.client import ChatClient, fetch_history, record
from reconcile.client.view import watch

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo_server.py"
TICK_MS = "15"
TIMEOUT = 30.0  # seconds for any one condition; far above what a run needs

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
VIEW = ("cat", "invocation", "origin", "text", "status", "message_id")
NAMED = (
    "late_callback",
    "late_callback_same",
    "background_thread",
    "callback_first",
    "mid_stream",
    "two_agents",
)

# ---------------------------------------------------------------------- the server


class DemoProcess:
    """``examples/demo_server.py`` in a subprocess; ``url`` once it listens."""

    def __init__(self, *extra: str) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(DEMO), "--port", "0", "--quiet", "--start", "on-request",
             "--tick", TICK_MS, *extra],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=ROOT,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if "listening on " not in line:
            self.stop()
            raise RuntimeError(f"demo server did not start: {line!r} {self.errors()}")
        self.url = line.split("listening on ", 1)[1].split()[0]

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture
def demo():
    """``demo(*args)`` starts a demo server; all are stopped after the test."""
    started: list[DemoProcess] = []

    def launch(*args: str) -> DemoProcess:
        server = DemoProcess(*args)
        started.append(server)
        return server

    yield launch
    for server in started:
        server.stop()


async def control(session: Any, url: str, path: str, method: str = "GET", **params: Any) -> Any:
    query = {k: str(v) for k, v in params.items() if v is not None}
    async with session.request(method, f"{url}{path}", params=query) as response:
        assert response.status < 300, await response.text()
        if "ndjson" in response.content_type:
            return [json.loads(line) for line in (await response.text()).splitlines()]
        return await response.json()


async def wait_for(predicate, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_finished(session: Any, url: str) -> dict:
    status: dict = {}

    async def finished() -> bool:
        status.update(await control(session, url, "/api/demo/status"))
        assert status["state"] != "failed"
        return status["state"] == "finished"

    await wait_for(finished, "the run to finish")
    return status


async def stored_history(session: Any, url: str, thread: str) -> list:
    async with session.get(
        f"{url}/api/messages",
        params={"threadId": thread, "limit": "200"},
        headers={"X-Cat-Cafe-User": "test"},
    ) as response:
        body = await response.json()
    assert body["hasMore"] is False
    return body["messages"]


# ---------------------------------------------------------------------- the views


def replay(events: list[dict]) -> Reconciler:
    reconciler = Reconciler()
    for event in events:
        reconciler.receive_message(event)
    reconciler._check()
    return reconciler


def view(reconciler: Reconciler, thread: str) -> list[tuple]:
    try:
        bubbles = reconciler.bubbles(thread)
    except KeyError:
        return []
    return [tuple(b.to_dict()[k] for k in VIEW) for b in bubbles]


def full(reconciler: Reconciler, thread: str) -> list[dict]:
    try:
        return [b.to_dict() for b in reconciler.bubbles(thread)]
    except KeyError:
        return []


async def truth(session: Any, url: str, threads: list[str]) -> tuple[Reconciler, dict]:
    """The event-log replay, and per thread the stored-history replay's view.

    Also checks the server against itself: a clean log, and log == history.
    """
    log = replay(await control(session, url, "/api/demo/trace"))
    assert log.rejected == (), "the demo server's own trace must be clean"
    history = {}
    for thread in threads:
        messages = await stored_history(session, url, thread)
        assert not any(m.get("isDraft") for m in messages), "a finished run has no drafts"
        history[thread] = view(
            replay([{"event": "history", "data": {"threadId": thread, "messages": messages}}]),
            thread,
        )
        assert view(log, thread) == history[thread], f"server log and history differ ({thread})"
    return log, history


def assert_no_duplicates(reconciler: Reconciler, thread: str) -> None:
    keys = [(b.invocation, b.message_id, b.origin) for b in reconciler.bubbles(thread)]
    primaries = [b.invocation for b in reconciler.bubbles(thread) if b.message_id is None]
    assert len(primaries) == len(set(primaries)), keys
    assert len(keys) == len(set(keys)), keys


async def converge(client: ChatClient, log: Reconciler, history: dict, threads: list[str]) -> None:
    """Wait (generously) until the client's view equals the server's truth, then
    check it holds once the client is idle. Only a slow machine makes this wait."""

    async def equal() -> bool:
        return client.is_idle(0.1) and all(
            view(client.reconciler, t) == view(log, t) == history[t] for t in threads
        )

    with contextlib.suppress(AssertionError):
        await wait_for(equal, "the client to converge")
    await client.wait_idle(quiet=0.2, timeout=TIMEOUT)
    for thread in threads:
        assert view(client.reconciler, thread) == view(log, thread) == history[thread]


def new_client(url: str, threads: list[str], **options: Any) -> ChatClient:
    options.setdefault("reconnect_delay", 0.1)
    options.setdefault("reconnect_delay_max", 0.5)
    options.setdefault("resync_delay", 0.3)
    return ChatClient(url, "tester", threads=threads, **options)


# ---------------------------------------------------------------------- scenarios


@pytest.mark.parametrize(
    "scenario, seed", [(name, None) for name in NAMED] + [("random", 3), ("random", 8)]
)
def test_client_bubbles_equal_server_log_and_history(demo, scenario, seed):
    server = demo()

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            scenarios = await control(session, server.url, "/api/demo/scenarios")
            threads = scenarios[scenario]["threads"]
            async with new_client(server.url, threads) as client:
                await client.wait_ready(TIMEOUT)
                await control(session, server.url, "/api/demo/start", "POST",
                              scenario=scenario, seed=seed)
                status = await wait_finished(session, server.url)
                # It follows every thread of the run, so it receives every event.
                await wait_for(lambda: _true(client.socket_events >= status["events"]),
                               "every event to reach the client")
                await client.wait_idle(quiet=0.1, timeout=TIMEOUT)
            log, history = await truth(session, server.url, threads)
        client.reconciler._check()
        assert client.reconciler.rejected == ()
        assert client.connects == 1 and client.reconciler.gaps == ()
        for thread in threads:
            assert view(log, thread), f"the scenario shows bubbles in {thread}"
            # Saw every event in order: equal to the log in full, bubble ids included.
            assert full(client.reconciler, thread) == full(log, thread)
            assert view(client.reconciler, thread) == history[thread]

    asyncio.run(main())


@pytest.mark.parametrize(
    "scenario, seed, drop_after, server_args",
    [
        ("long_stream", None, 25, ()),
        ("long_stream", None, 40, ("--no-seq",)),
        ("random", 5, 30, ()),
    ],
    ids=["long_stream-seq", "long_stream-no-seq", "random-seq"],
)
def test_forced_disconnect_mid_stream_recovers_server_truth(
    demo, scenario, seed, drop_after, server_args
):
    server = demo(*server_args)

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            threads = (await control(session, server.url, "/api/demo/scenarios"))[scenario][
                "threads"
            ]
            applied: list[str | None] = []  # None: a socket event; else a history reason
            async with new_client(server.url, threads) as client:
                client.on_event(lambda message, reason: applied.append(reason))
                await client.wait_ready(TIMEOUT)
                # The server drops every client right after event `drop_after`
                # (sio.disconnect: a server-side, "intentional" disconnect), refuses
                # reconnections for 300 ms while the agents keep streaming, then holds
                # the run until the client has rejoined, so turns it saw begin are
                # still streaming when it is back.
                await control(session, server.url, "/api/demo/start", "POST",
                              scenario=scenario, seed=seed, drop_after=drop_after,
                              refuse_ms=300, wait_rejoin=1)
                status = await wait_finished(session, server.url)
                log, history = await truth(session, server.url, threads)
                await converge(client, log, history, threads)
        assert status["drops"] and status["drops"][0]["clients"] == 1
        assert client.connects >= 2, "the client reconnected by itself"
        assert client.socket_events < status["events"], "the client really missed events"
        back = applied.index("reconnect")
        assert None in applied[back:], "live events came after the reconnect"
        client.reconciler._check()
        for thread in threads:
            assert_no_duplicates(client.reconciler, thread)

    asyncio.run(main())


def test_client_joining_mid_run_converges(demo):
    """A client that joins while turns stream gets drafts, then the final truth."""
    server = demo()

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            threads = ["t1", "t2"]
            await control(session, server.url, "/api/demo/start", "POST", scenario="long_stream")

            async def midway() -> bool:
                return (await control(session, server.url, "/api/demo/status"))["events"] >= 30

            await wait_for(midway, "the run to be under way")
            async with new_client(server.url, threads) as client:
                await client.wait_ready(TIMEOUT)
                await wait_finished(session, server.url)
                log, history = await truth(session, server.url, threads)
                await converge(client, log, history, threads)
        for thread in threads:
            assert_no_duplicates(client.reconciler, thread)

    asyncio.run(main())


def test_late_joiner_reads_paginated_history(demo):
    """After the run, a client with 3-message pages rebuilds everything from history."""
    server = demo()

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            await control(session, server.url, "/api/demo/start", "POST",
                          scenario="random", seed=2)
            await wait_finished(session, server.url)
            threads = ["t1", "t2", "t3"]
            pages = await fetch_history(session, server.url, "tester", "t2", limit=3)
            assert len(pages) > 1, "the thread spans several pages"
            async with new_client(server.url, threads, history_limit=3) as client:
                await client.wait_ready(TIMEOUT)
                await client.wait_idle(quiet=0.1, timeout=TIMEOUT)
            log, history = await truth(session, server.url, threads)
        assert client.socket_events == 0
        assert client.history_pages_applied > len(threads)
        for thread in threads:
            assert view(client.reconciler, thread) == view(log, thread) == history[thread]

    asyncio.run(main())


def test_client_follows_a_thread_later_and_observers_see_every_change(demo):
    server = demo()
    seen: list = []
    iterated: list = []

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            async with new_client(server.url, []) as client:
                client.on_change(seen.append)

                async def consume() -> None:
                    async for change in client.changes():
                        iterated.append(change)

                consumer = asyncio.create_task(consume())
                await client.wait_ready(TIMEOUT)  # connected, following nothing
                await client.follow("t1")  # joins, and returns with its history applied
                assert client.threads == ("t1",) and client.reconciler.threads == ("t1",)
                await control(session, server.url, "/api/demo/start", "POST",
                              scenario="late_callback")
                status = await wait_finished(session, server.url)
                await wait_for(lambda: _true(client.socket_events >= status["events"]),
                               "every event to reach the client")
            await asyncio.wait_for(consumer, TIMEOUT)  # ends when the client closes
        assert seen and seen == iterated
        texts = [b.text for b in client.bubbles("t1")]
        assert texts == [
            "The bug is in parse(): it reads the parent id.",
            "Second question: key bubbles by the turn id, answering now.",
        ]

    asyncio.run(main())


def test_client_keeps_retrying_until_the_server_appears(tmp_path):
    """Started before any server listens, the client connects once one does."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        async with new_client(f"http://127.0.0.1:{port}", ["t1"]) as client:
            await wait_for(lambda: _true(client.last_error is not None), "a failed attempt")
            assert client.status in ("connecting", "reconnecting") and not client.connected
            server = await asyncio.to_thread(
                DemoProcess, "--port", str(port)
            )  # argparse: the later --port wins
            try:
                await client.wait_ready(TIMEOUT)
                assert client.connected
            finally:
                await asyncio.to_thread(server.stop)  # the client must keep running meanwhile

    asyncio.run(main())


# ---------------------------------------------------------------------- record


def test_record_trace_replays_to_exactly_the_clients_bubbles(demo):
    """In process, across a forced disconnect: the trace replays to the same engine
    state as the client's (same bubble ids, refusals, gaps and counters)."""


    server = demo()
    sink = io.StringIO()

    async def main() -> ChatClient:
        async with aiohttp.ClientSession() as session:
            client = new_client(server.url, ["t1", "t2"])
            stop = asyncio.Event()
            recording = asyncio.create_task(record(client, sink, stop))
            await client.wait_ready(TIMEOUT)
            await control(session, server.url, "/api/demo/start", "POST",
                          scenario="long_stream", drop_after=30, refuse_ms=300, wait_rejoin=1)
            await wait_finished(session, server.url)
            log, history = await truth(session, server.url, ["t1", "t2"])
            await converge(client, log, history, ["t1", "t2"])
            stop.set()
            recorder = await recording
            assert recorder.history_pages >= 4  # join and reconnect, two threads
            return client

    client = asyncio.run(main())
    lines = sink.getvalue().splitlines()
    assert any('"reason":"reconnect"' in line for line in lines)
    replayed = Reconciler()
    replayed.feed(lines)
    assert replayed.to_dict() == client.reconciler.to_dict()


async def _true(value: bool) -> bool:
    return value


def test_record_command_stops_cleanly_on_ctrl_c(demo, tmp_path):
    server = demo()
    trace = tmp_path / "session.jsonl"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "reconcile", "record", "--url", server.url,
         "--thread", "t1", "--thread", "t2", "--user", "rec", "-o", str(trace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
    )

    def lines() -> list[dict]:
        if not trace.exists():
            return []
        return [json.loads(x) for x in trace.read_text().splitlines() if x.endswith("}")]

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            await wait_for(
                lambda: _true(sum(x["event"] == "history" for x in lines()) >= 2),
                "record to join both threads",
            )
            await control(session, server.url, "/api/demo/start", "POST",
                          scenario="background_thread")
            status = await wait_finished(session, server.url)
            await wait_for(
                lambda: _true(sum(x["event"] != "history" for x in lines()) >= status["events"]),
                "record to write every event",
            )
            log, history = await truth(session, server.url, ["t1", "t2"])
        recorder.send_signal(signal.SIGINT)
        out, err = recorder.communicate(timeout=TIMEOUT)
        assert recorder.returncode == 0, err
        assert "recorded" in out and "2 threads" in out
        replayed = cli_common.replay_file(str(trace))
        assert replayed.rejected == ()
        for thread in ("t1", "t2"):
            assert view(replayed, thread) == view(log, thread) == history[thread]

    try:
        asyncio.run(main())
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.communicate()


def test_record_and_watch_explain_a_missing_client_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "socketio", None)  # `import socketio` now fails
    for argv in (
        ["record", "--url", "http://127.0.0.1:9", "--thread", "t1", "-o", str(tmp_path / "x")],
        ["watch", "--url", "http://127.0.0.1:9", "--thread", "t1"],
    ):
        assert cli.main(argv) == cli_common.EXIT_USAGE
        assert "pip install 'reconcile-chat[client]'" in capsys.readouterr().err


def test_record_usage_errors(capsys, tmp_path):
    assert cli.main(["record", "--url", "ftp://x", "--thread", "t1", "-o", "-"]) == 2
    assert "http://" in capsys.readouterr().err
    missing_dir = tmp_path / "no" / "such" / "dir" / "t.jsonl"
    argv = ["record", "--url", "http://127.0.0.1:9", "--thread", "t1", "-o", str(missing_dir)]
    assert cli.main(argv) == 2
    assert "cannot write" in capsys.readouterr().err
    assert cli.main(["record", "--url", "http://127.0.0.1:9", "-o", "x"]) == 2  # no --thread


# ---------------------------------------------------------------------- watch


def test_watch_screen_shows_the_final_bubbles(demo):
    """rich's own capture as the terminal: the last frame shows every bubble's agent,
    status and final text."""
    from rich.console import Console



    server = demo()
    console = Console(
        file=io.StringIO(), record=True, width=160, height=40, force_terminal=True,
        color_system=None,
    )

    async def main() -> tuple[ChatClient, Reconciler]:
        async with aiohttp.ClientSession() as session:
            client = new_client(server.url, ["t1", "t2"])
            stop = asyncio.Event()
            watching = asyncio.create_task(watch(client, console, stop, refresh=20))
            await client.wait_ready(TIMEOUT)
            await control(session, server.url, "/api/demo/start", "POST",
                          scenario="background_thread")
            status = await wait_finished(session, server.url)
            await wait_for(lambda: _true(client.socket_events >= status["events"]),
                           "every event to reach the client")
            await client.wait_idle(quiet=0.1, timeout=TIMEOUT)
            stop.set()
            await watching
            log, _ = await truth(session, server.url, ["t1", "t2"])
            return client, log

    _, log = asyncio.run(main())
    screen = console.export_text()
    final = screen[screen.rindex("reconcile watch ") :]
    for thread in ("t1", "t2"):
        assert f"thread {thread} · {len(log.bubbles(thread))} bubbles" in final
        for bubble in log.bubbles(thread):
            row = next(line for line in final.splitlines() if bubble.text in line)
            assert bubble.cat in row and bubble.status.value in row
    assert "streaming" not in final
    # The live frames came before: the screen was redrawn while events arrived.
    assert screen.count("reconcile watch ") > 2


def test_watch_command_in_a_terminal_shows_live_bubbles_until_ctrl_c(demo):
    """``reconcile watch`` in a real pseudo-terminal: it draws live frames; once the
    bubble is on screen, Ctrl-C stops it and the final frame stays."""
    import fcntl
    import pty
    import struct
    import termios

    server = demo()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "reconcile", "watch", "--url", server.url, "--thread", "t1"],
        stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env, close_fds=True,
    )
    os.close(slave)
    screen = bytearray()

    def read(timeout: float) -> None:
        while select.select([master], [], [], timeout)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                return
            if not chunk:
                return
            screen.extend(chunk)
            timeout = 0

    def shown() -> str:  # the terminal output without control sequences
        return ANSI.sub("", screen.decode(errors="replace"))

    def wait_screen(predicate, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not predicate(shown()):
            assert watcher.poll() is None, shown()
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {shown()!r}"
            read(0.05)

    async def start_run() -> Reconciler:
        async with aiohttp.ClientSession() as session:
            await control(session, server.url, "/api/demo/start", "POST",
                          scenario="callback_first")
            await wait_finished(session, server.url)
            log, _ = await truth(session, server.url, ["t1"])
            return log

    try:
        wait_screen(lambda text: "connected" in text and "(no bubbles yet)" in text,
                    "the empty thread")
        log = asyncio.run(start_run())
        (bubble,) = log.bubbles("t1")
        wait_screen(lambda text: bubble.text in text, "the bubble")
        watcher.send_signal(signal.SIGINT)
        watcher.wait(TIMEOUT)
        read(0.2)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        os.close(master)
    assert watcher.returncode == 0, shown()
    text = shown()
    final = text[text.rindex("reconcile watch ") :]
    row = next(line for line in final.splitlines() if bubble.text in line)
    assert "gemini" in row and "callback" in row and "done" in row
    assert "1 threads, 1 bubbles, 0 refused" in final
