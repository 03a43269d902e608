"""The client against the demo server's ``--like-clowder`` mode, and the review fixes.

``--like-clowder`` behaves like the real clowder-ai server in each way a user met
there: history filtered by user, no ``join_room`` acknowledgement, drafts with only
their turn id, stored callbacks without their turn, live callbacks without it
(``--stock``), a restart that loses threads, a callback posted mid-turn while the
agent keeps working. Real sockets on 127.0.0.1; every wait is for a condition.
"""

from __future__ import annotations

import asyncio
import io
import time

import pytest

pytest.importorskip("socketio")
aiohttp = pytest.importorskip("aiohttp")

from tests.test_client import (
    TIMEOUT,
    _true,
    control,
    demo,
    replay,
    truth,
    view,
    wait_finished,
    wait_for,
)

from reconcile import Reason, ReconcileError, Reconciler, Status
from reconcile.client import (
    DEFAULT_USER,
    ChatClient,
    ClientClosed,
    HistoryError,
    Lagged,
    NoticeKind,
    Recorder,
)
from reconcile.cli.record import interruption_lines
from reconcile.client._connection import _packet_class
from reconcile.client.view import refusal_summary, render_screen

__all__ = ["demo"]  # the fixture, imported so pytest finds it here

CLOWDER = ("--like-clowder",)


def client_for(url: str, threads: list[str], user: str = DEFAULT_USER, **options) -> ChatClient:
    options.setdefault("reconnect_delay", 0.1)
    options.setdefault("reconnect_delay_max", 0.5)
    options.setdefault("resync_delay", 0.3)
    return ChatClient(url, user, threads=threads, **options)


def screen(client: ChatClient) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), record=True, width=160, color_system=None)
    console.print(render_screen(client))
    return console.export_text()


# ---------------------------------------------------------------------- joining


def test_default_user_joins_without_an_ack_and_sees_each_turn_once(demo):
    """Joining after a run: the first page comes at once (no ack to wait for), each
    turn shows once, and the turn-less stored callback is listed as unplaced."""
    server = demo(*CLOWDER)

    async def main() -> ChatClient:
        async with aiohttp.ClientSession() as session:
            await control(session, server.url, "/api/demo/start", "POST",
                          scenario="late_callback")
            await wait_finished(session, server.url)
            client = client_for(server.url, ["t1"])
            started = time.monotonic()
            async with client:
                await client.wait_ready(TIMEOUT)
                ready_after = time.monotonic() - started
                await client.wait_idle(quiet=0.1, timeout=TIMEOUT)
        # The old client waited a 1 s join timeout on a server that never acks.
        assert ready_after < 0.9, ready_after
        return client

    client = asyncio.run(main())
    assert client.user_id == "default-user"
    texts = [b.text for b in client.bubbles("t1")]
    assert texts == ["Looking into it", "Second question: key bubbles by the turn id, answering now."]
    (unplaced,) = client.unplaced("t1")
    assert unplaced.text == "The bug is in parse(): it reads the parent id."
    assert unplaced.reason is Reason.CALLBACK_WITHOUT_INVOCATION and unplaced.cat == "opus"
    assert not client.notices
    shown = screen(client)
    assert "unplaced (1)" in shown and unplaced.text in shown


def test_wrong_user_id_gets_a_notice_when_history_is_empty_but_the_thread_is_live(demo):
    server = demo(*CLOWDER)

    async def main() -> ChatClient:
        async with aiohttp.ClientSession() as session:
            async with client_for(server.url, ["t1"], user="someone-else") as client:
                await client.wait_ready(TIMEOUT)
                await control(session, server.url, "/api/demo/start", "POST",
                              scenario="callback_first")
                await wait_finished(session, server.url)
                await wait_for(lambda: _true(bool(client.notices)), "the notice")
        return client

    client = asyncio.run(main())
    (notice,) = client.notices
    assert notice.kind is NoticeKind.HISTORY_EMPTY and notice.thread == "t1"
    assert "'someone-else'" in notice.text and "default-user" in notice.text
    assert "someone-else" in screen(client) and "history of t1 is empty" in screen(client)


def test_events_before_the_first_page_are_applied_then_the_page_nothing_lost_or_doubled(demo):
    """The history answer is slow (300 ms): the run's first events reach the client
    before its first page. They are applied as they come, the page after them."""
    server = demo(*CLOWDER, "--history-delay-ms", "300")

    async def main() -> tuple[ChatClient, list]:
        applied: list = []
        async with aiohttp.ClientSession() as session:
            client = client_for(server.url, ["t1"])
            client.on_event(lambda message, reason: applied.append(reason))
            async with client:
                await wait_for(lambda: _true(client.connected), "the connection")
                await control(session, server.url, "/api/demo/start", "POST",
                              scenario="mid_stream")
                await client.wait_ready(TIMEOUT)
                await wait_finished(session, server.url)
                log = replay(await control(session, server.url, "/api/demo/trace"))
                await client.wait_idle(quiet=0.2, timeout=TIMEOUT)
        return client, applied, log

    client, applied, log = asyncio.run(main())
    first_page = applied.index("join")
    assert None in applied[:first_page], "socket events came before the first page"
    # Nothing lost, nothing doubled: the same bubbles as the server's own log.
    assert view(client.reconciler, "t1") == view(log, "t1")
    assert [b.text for b in client.bubbles("t1")].count(
        "Posted mid-stream: the test sleeps 10 ms.") == 1


# ---------------------------------------------------------------------- late join


def test_late_joiner_follows_the_servers_draft_until_the_stored_message(demo):
    """Joined mid-turn: the turn's chunks bind to nothing (the server breaks section
    10 rule 3), so the client refreshes history about every interval and shows the
    newest draft; the stored message ends it."""
    server = demo(*CLOWDER, "--tick", "40")
    seen: list[str] = []

    async def main() -> ChatClient:
        async with aiohttp.ClientSession() as session:
            await control(session, server.url, "/api/demo/start", "POST",
                          scenario="working_after_callback")

            async def midway() -> bool:
                return (await control(session, server.url, "/api/demo/status"))["events"] >= 16

            await wait_for(midway, "the turn to be well under way")
            client = client_for(server.url, ["t1"], draft_interval=0.2, draft_interval_max=0.4)
            async with client:
                await client.wait_ready(TIMEOUT)
                following = False
                while (await control(session, server.url, "/api/demo/status"))[
                    "state"
                ] != "finished":
                    following = following or client.is_following_drafts("t1")
                    seen.extend(client.display_text(b) for b in client.bubbles("t1")
                                if b.status is Status.STREAMING)
                    await asyncio.sleep(0.05)
                await client.wait_idle(quiet=0.2, timeout=TIMEOUT)
                assert following
                assert not client.is_following_drafts("t1"), "it stops after the turn"
        return client

    client = asyncio.run(main())
    assert any(c.reason is Reason.UNBOUND_EVENT for c in client.reconciler.rejected)
    drafts = list(dict.fromkeys(seen))
    assert len(drafts) >= 3, "the bubble followed the server's draft"
    assert all(a in b or b.startswith(a) for a, b in zip(drafts, drafts[1:])), drafts
    (bubble,) = client.bubbles("t1")
    assert bubble.status is Status.DONE and bubble.text.endswith("check59 ")
    assert client.reconciler.running_turns("t1") == ()
    assert [u.text for u in client.unplaced("t1")] == ["Refactor done: parse() is split in two."]


# ---------------------------------------------------------------------- live


def test_stock_server_callbacks_are_unplaced_and_summarised(demo):
    server = demo(*CLOWDER, "--stock")

    async def main() -> ChatClient:
        async with aiohttp.ClientSession() as session:
            async with client_for(server.url, ["t1"]) as client:
                await client.wait_ready(TIMEOUT)
                await control(session, server.url, "/api/demo/start", "POST",
                              scenario="late_callback")
                status = await wait_finished(session, server.url)
                await wait_for(lambda: _true(client.socket_events >= status["events"]),
                               "every event")
                await client.wait_idle(quiet=0.2, timeout=TIMEOUT)
        return client

    client = asyncio.run(main())
    assert [b.text for b in client.bubbles("t1")] == [
        "Looking into it", "Second question: key bubbles by the turn id, answering now."]
    (unplaced,) = client.unplaced("t1")  # refused live, and again stored: listed once
    assert unplaced.text == "The bug is in parse(): it reads the parent id."
    summary = refusal_summary(client)
    assert summary[0].startswith("refused: 1 unplaced callback (refused ")
    assert any(unplaced.text in line and "callback_without_invocation" in line
               for line in summary[1:])
    rows = [line for line in screen(client).splitlines() if unplaced.text in line]
    assert len(rows) == 1 and "callback_without_invocation" in rows[0]  # not in a bubble


def test_mid_turn_callback_shows_done_and_working_then_a_restart_interrupts_it(demo):
    server = demo(*CLOWDER, "--tick", "40")
    notices: list = []
    sink = io.StringIO()

    async def main() -> tuple[ChatClient, str, str]:
        async with aiohttp.ClientSession() as session:
            client = client_for(server.url, ["t1"])
            client.on_notice(notices.append)
            client.on_event(Recorder(sink))
            async with client:
                await client.wait_ready(TIMEOUT)
                await control(session, server.url, "/api/demo/start", "POST",
                              scenario="working_after_callback")

                def done_and_working() -> bool:
                    bubbles = client.bubbles("t1")
                    return bool(bubbles) and bubbles[0].status is Status.DONE and bool(
                        client.running("t1"))

                await wait_for(lambda: _true(done_and_working()), "a done bubble, still working")
                mid_turn = screen(client)
                await control(session, server.url, "/api/demo/restart", "POST", down_ms=300)
                await wait_for(lambda: _true(client.resets("t1") == 1), "the reset")
                await wait_for(lambda: _true(client.connected), "the reconnection")
                await client.wait_idle(quiet=0.2, timeout=TIMEOUT)
                after = screen(client)
        return client, mid_turn, after

    client, mid_turn, after = asyncio.run(main())
    # The interruption is the client's decision, not an event: the recording lacks
    # it, its replay shows the turn running, and record's summary says where.
    replayed = Reconciler()
    replayed.feed(sink.getvalue().splitlines())
    (closed,) = client.interrupted("t1")
    (running,) = replayed.running_turns("t1")
    assert running.turn == closed.turn
    lines = interruption_lines(client)
    assert "not in the trace" in lines[0] and "still running" in lines[0]
    assert lines[1:] == [f"  thread t1, turn {closed.turn} (opus): interrupted after line "
                         f"{closed.line}"]
    import json

    page = json.loads(sink.getvalue().splitlines()[closed.line - 1])
    assert page["event"] == "history" and page["reason"] == "reconnect"  # the empty page
    row = next(line for line in mid_turn.splitlines() if "Refactor done" in line)
    assert "done" in row and "callback" in row
    assert "opus is working… (" in mid_turn
    assert [n.kind for n in notices] == [NoticeKind.RESET]
    assert client.reconciler.running_turns("t1") == ()
    (closed,) = client.interrupted("t1")
    assert closed.cat == "opus" and str(closed.how) == "interrupted"
    assert all(b.status is not Status.STREAMING for b in client.bubbles("t1"))
    assert "server reset" in after and "interrupted" in after and "working" not in after


# ---------------------------------------------------------------------- review fixes


def test_changes_and_wait_ready_after_close_return_at_once():
    async def main() -> None:
        client = ChatClient("http://127.0.0.1:9", threads=["t1"])
        await client.start()
        waiting = asyncio.create_task(client.wait_ready())
        await asyncio.sleep(0)
        await client.close()
        with pytest.raises(ClientClosed):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(ClientClosed):
            await asyncio.wait_for(client.wait_ready(), 5)
        got = [c async for c in client.changes()]  # would hang before the fix
        assert got == []
        assert issubclass(ClientClosed, ReconcileError)
        assert issubclass(HistoryError, ReconcileError)

    asyncio.run(asyncio.wait_for(main(), 10))


def _agent(**fields):
    return {"type": "text", "threadId": "t1", "catId": "opus", "origin": "stream",
            "invocationId": "P", **fields}


def _announce(turn="T1"):
    return _agent(type="system_info", content='{"type": "invocation_created", '
                  f'"invocationId": "{turn}"}}')


def _recorded_client() -> tuple[ChatClient, io.StringIO]:
    client = ChatClient("http://127.0.0.1:9", threads=["t1"])
    sink = io.StringIO()
    client.on_event(Recorder(sink))
    return client, sink


def _replays_exactly(client: ChatClient, sink: io.StringIO) -> Reconciler:
    replayed = Reconciler()
    replayed.feed(sink.getvalue().splitlines())
    assert replayed.to_dict() == client.reconciler.to_dict()
    assert replayed.lines == client.reconciler.lines
    return replayed


def test_binary_and_multi_argument_socket_events_keep_the_recording_exact():
    client, sink = _recorded_client()
    client._on_socket_event("agent_message", (_announce(),))
    client._on_socket_event("agent_message", (b"\x00\xffbinary",))  # refused, recorded
    client._on_socket_event("agent_message", (_agent(content="He"), "second arg"))
    client._on_socket_event("agent_message", (_agent(content="llo", blob=b"\x01"),))
    client._on_socket_event("agent_message", (_agent(origin="callback", content="lost?", invocationId=None),))
    replayed = _replays_exactly(client, sink)
    (bubble,) = client.bubbles("t1")
    assert bubble.text == "Hello", "the first of several arguments is the payload"
    reasons = [(r.line, str(r.reason)) for r in replayed.rejected]
    assert reasons == [(2, "malformed_event"), (5, "callback_without_invocation")]
    assert '"args":["second arg"]' in sink.getvalue().splitlines()[2]
    assert client.unplaced("t1")[0].text == "lost?"


def test_an_integer_of_5000_digits_on_the_socket_crashes_nothing():
    huge = "9" * 5000
    packet = _packet_class()(encoded_packet=(
        '2["agent_message",{"type":"text","threadId":"t1","catId":"opus",'
        f'"content":"x","invocationId":"P","seq":{huge},"toolInput":{{"n":{huge}}}}}]'
    ))
    event, payload = packet.data
    client, sink = _recorded_client()
    client._on_socket_event(event, (payload,))
    replayed = _replays_exactly(client, sink)
    assert [str(r.reason) for r in replayed.rejected] == ["malformed_event"]  # seq: a string
    (notice,) = client.notices
    assert notice.kind is NoticeKind.UNREADABLE_NUMBER and "4,300 digits" in notice.text


def test_a_slow_consumer_gets_lagged_then_the_newest_changes():
    async def main() -> list:
        client = ChatClient("http://127.0.0.1:9", threads=["t1"], queue_size=3)
        got: list = []

        async def consume() -> None:
            async for change in client.changes():
                got.append(change)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)  # the iterator is registered
        client._on_socket_event("agent_message", (_announce(),))
        for index in range(10):
            client._on_socket_event("agent_message", (_agent(content=f"c{index} "),))
        await client.close()
        await asyncio.wait_for(consumer, 5)
        return got

    got = asyncio.run(main())
    assert isinstance(got[0], Lagged) and got[0].missed >= 8
    assert len(got) == 4 and not any(isinstance(c, Lagged) for c in got[1:])


def test_backoff_keeps_growing_when_the_server_drops_each_connection_at_once():
    import socketio
    from aiohttp import web

    async def main() -> tuple[float, ...]:
        sio = socketio.AsyncServer(async_mode="aiohttp")
        app = web.Application()
        sio.attach(app)

        @sio.event
        async def connect(sid, environ, auth=None):
            asyncio.get_running_loop().call_later(0.01, lambda: asyncio.ensure_future(
                sio.disconnect(sid)))

        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        client = ChatClient(f"http://127.0.0.1:{port}", threads=["t1"],
                            reconnect_delay=0.05, reconnect_delay_max=0.4,
                            reconnect_stable=5.0)
        try:
            async with client:
                await wait_for(lambda: _true(len(client.reconnect_delays) >= 5),
                               "five reconnections")
                assert client.connects >= 2, "each connection was accepted, then dropped"
        finally:
            await runner.cleanup()
        return client.reconnect_delays

    delays = asyncio.run(main())
    assert all(b > a for a, b in zip(delays[:4], delays[1:4])), delays
    assert delays[4] >= 0.4 * 0.75, delays  # reached the cap instead of starting over


# ---------------------------------------------------------------------- real-server findings


class _Connected:
    """Stands in for the socket: connected, emits nothing (history is faked)."""

    connected = True
    status = "connected"
    connects = 1
    disconnects = 0
    delays = ()
    last_error = None

    async def emit(self, *args) -> None:
        return None

    async def close(self) -> None:
        return None


class _Store:
    """A thread's stored messages as the faked history endpoint answers them."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def fetch(self, session, url, user_id, thread, **options) -> list[list[dict]]:
        return [[dict(m) for m in self.messages]]


def _draft(text: str, turn: str = "T1") -> dict:
    return {"id": f"draft-{turn}", "type": "assistant", "catId": "opus", "content": text,
            "timestamp": 1_000, "isDraft": True, "origin": "stream",
            "extra": {"stream": {"invocationId": turn}}}


def _stored(text: str, turn: str = "T1") -> dict:
    return {"id": f"s-{turn}", "type": "assistant", "catId": "opus", "content": text,
            "timestamp": 1_000, "origin": "stream", "extra": {"stream": {"invocationId": turn}}}


def _offline_client(**options) -> ChatClient:
    client = ChatClient("http://127.0.0.1:9", threads=["t1"], **options)
    client._connection = _Connected()
    return client


def test_draft_refresh_keeps_its_pace_when_a_resync_saw_the_change_first(monkeypatch):
    """Late join on a server without section 10 rule 3: a quiet-timer resync that
    applies the new draft first must not make the next draft refresh think the
    draft stopped; backoff starts only when no fetch saw a change. The refreshes
    stop as soon as the turn's stored message arrives."""
    store = _Store()
    monkeypatch.setattr("reconcile.client._client.fetch_history", store.fetch)

    async def main() -> None:
        # Long timers: the test drives every fetch itself.
        client = _offline_client(draft_interval=50, draft_interval_max=400, resync_delay=100)
        state = client._followed["t1"]
        try:
            store.messages = [_draft("c0 ")]
            await client.sync("t1", "join")
            (bubble,) = client.bubbles("t1")
            client._on_socket_event("agent_message", (_agent(content="c1 "),))
            assert client.reconciler.rejected[-1].reason is Reason.UNBOUND_EVENT
            assert client.is_following_drafts("t1")

            store.messages = [_draft("c0 c1 ")]
            await client.sync("t1", "draft")
            assert client.display_text(bubble) == "c0 c1 " and state.draft_interval == 50

            client._on_socket_event("agent_message", (_agent(content="c2 "),))
            store.messages = [_draft("c0 c1 c2 ")]
            await client.sync("t1", "resync")  # the quiet timer saw the change
            client._on_socket_event("agent_message", (_agent(content="c3 "),))
            await client.sync("t1", "draft")  # nothing new for this fetch, yet it moved
            assert client.display_text(bubble) == "c0 c1 c2 "
            assert state.draft_interval == 50, "no backoff while the draft changes"

            client._on_socket_event("agent_message", (_agent(content="c4 "),))
            await client.sync("t1", "draft")  # really unchanged since the last refresh
            assert state.draft_interval == 100
            client._on_socket_event("agent_message", (_agent(content="c5 "),))
            store.messages = [_draft("c0 c1 c2 c3 c4 ")]
            await client.sync("t1", "draft")
            assert state.draft_interval == 50, "back to the fast pace once it moves"

            client._on_socket_event("agent_message", (_agent(type="done"),))
            store.messages = [_stored("c0 c1 c2 c3 c4 c5 ")]
            await client.sync("t1", "turn_end")
            assert bubble.status is Status.DONE and bubble.text == "c0 c1 c2 c3 c4 c5 "
            assert not client.is_following_drafts("t1"), "no refresh after the stored message"
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_no_draft_refresh_once_a_callback_placed_the_running_turn(monkeypatch):
    store = _Store()
    monkeypatch.setattr("reconcile.client._client.fetch_history", store.fetch)

    async def main() -> None:
        client = _offline_client(draft_interval=50, resync_delay=100)
        try:
            store.messages = [_draft("c0 ")]
            await client.sync("t1", "join")
            client._on_socket_event("agent_message", (_agent(
                origin="callback", content="Done early.", invocationId="T1", messageId="m1"),))
            (bubble,) = client.bubbles("t1")
            assert bubble.status is Status.DONE and client.running("t1")
            client._on_socket_event("agent_message", (_agent(content="c1 "),))  # unbound
            assert client.reconciler.rejected[-1].reason is Reason.UNBOUND_EVENT
            assert not client.is_following_drafts("t1"), "the draft would change nothing shown"
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_working_time_counts_from_the_turns_server_start_when_it_is_plausible():
    client = ChatClient("http://127.0.0.1:9", threads=["t1", "t2", "t3"])
    now = int(time.time() * 1000)
    for thread, started in (("t1", now - 5_000), ("t2", now + 60_000),
                            ("t3", now - 2 * 86_400_000)):
        client._on_socket_event("agent_message", ({**_announce(f"T-{thread}"),
                                                   "threadId": thread, "timestamp": started},))
    ((turn, elapsed),) = client.running("t1")
    assert turn.since == now - 5_000
    assert 5 <= elapsed < 60, "from the server's start, not from when this client saw it"
    for thread in ("t2", "t3"):  # a clock in the future, or a day away: not ours
        ((_, elapsed),) = client.running(thread)
        assert 0 <= elapsed < 5


def test_watch_shows_server_text_as_it_is_and_notes_drafts_only_for_drafts():
    from rich.console import Console

    from reconcile.cli.record import exit_summary
    from reconcile.cli.watch import print_summary
    from reconcile.client.view import render_threads

    client = ChatClient("http://127.0.0.1:9", threads=["t1"])
    tricky = "[opus] callback for basic [/b] :thumbs_up:"
    client._on_socket_event("agent_message", (_announce(),))
    client._on_socket_event("agent_message", (_agent(content="word " * 200),))
    client._on_socket_event("agent_message", (_agent(type="done"),))
    client._on_socket_event("agent_message", (_agent(
        origin="callback", content=tricky, invocationId=None, messageId="m1"),))
    client._on_socket_event("agent_message", (_agent(
        catId="[bold]cat[/bold]", invocationId="P2", type="system_info",
        content='{"type": "invocation_created", "invocationId": "[/b]T2"}'),))
    client._on_socket_event("agent_message", (_agent(catId="[bold]cat[/bold]", invocationId="P2",
                                                     content="[/i] hi"),))
    console = Console(file=io.StringIO(), record=True, width=200, color_system=None)
    console.print(render_threads(client, ["t1"], text_limit=80))  # a live frame: cut texts
    print_summary(console, exit_summary(client))
    shown = console.export_text()
    assert "draft from history" not in shown, "a text cut to fit is not a draft"
    assert shown.count(tricky) == 2  # the unplaced list and the exit summary
    assert "[bold]cat[/bold]" in shown and "[/b]T2" in shown and "[/i] hi" in shown


def test_client_log_records_go_to_the_front_end_and_notices_are_not_repeated(caplog):
    import logging

    from reconcile.client import NOTICE_LOG_MARK, routed_logs

    shown: list[str] = []
    logger = logging.getLogger("reconcile.client")
    with caplog.at_level(logging.WARNING), routed_logs(shown.append):
        logger.warning("history of %s: %s", "t1", "HTTP 500")
        logger.warning("a notice", extra={NOTICE_LOG_MARK: True})
    assert shown == ["warning: history of t1: HTTP 500"]
    assert not caplog.records, "nothing reached the terminal while routed"
    assert logger.propagate
    logger.warning("after")
    assert [r.getMessage() for r in caplog.records] == ["after"]


def test_repeated_refusals_of_one_stored_callback_count_once_for_the_user(demo):
    """The stock server: one callback is refused live and again on every refreshed
    page. The engine refuses each arrival; the user sees one unplaced callback and
    how often it was refused."""
    server = demo(*CLOWDER, "--stock")

    async def main() -> ChatClient:
        async with aiohttp.ClientSession() as session:
            async with client_for(server.url, ["t1"]) as client:
                await client.wait_ready(TIMEOUT)
                await control(session, server.url, "/api/demo/start", "POST",
                              scenario="late_callback")
                await wait_finished(session, server.url)
                await client.wait_idle(quiet=0.2, timeout=TIMEOUT)
                for _ in range(3):  # three refreshes: the stored callback each time
                    await client.sync("t1", "resync")
        return client

    client = asyncio.run(main())
    refusals = [r for r in client.reconciler.rejected
                if r.reason is Reason.CALLBACK_WITHOUT_INVOCATION]
    assert len(refusals) >= 4
    (unplaced,) = client.unplaced("t1")
    assert unplaced.refused == len(refusals) and unplaced.line == refusals[0].line
    header = screen(client).splitlines()[0]
    assert "1 unplaced callback," in header and " 0 refused" in header
    summary = refusal_summary(client)
    assert summary[0] == f"refused: 1 unplaced callback (refused {len(refusals)} times)"
    assert f"refused {len(refusals)} times): {unplaced.text}" in summary[1]


def test_a_message_stored_and_sent_before_the_server_put_the_socket_in_the_room(demo):
    """The server answers the first history page before it handles join_room: a
    whole turn is stored and broadcast in between, reaching the client neither way.
    The fetch the client makes once the joined thread is quiet recovers it."""
    server = demo("--join-delay-ms", "1500")

    async def main() -> tuple[ChatClient, Reconciler, dict]:
        async with aiohttp.ClientSession() as session:
            async with client_for(server.url, ["t1"]) as client:
                await client.wait_ready(TIMEOUT)
                await control(session, server.url, "/api/demo/start", "POST",
                              scenario="callback_first")
                status = await wait_finished(session, server.url)
                log, history = await truth(session, server.url, ["t1"])
                await wait_for(lambda: _true(view(client.reconciler, "t1") == history["t1"]),
                               "the client to catch up")
                await client.wait_idle(quiet=0.1, timeout=TIMEOUT)
        return client, log, status

    client, log, status = asyncio.run(main())
    assert client.socket_events < status["events"], "the run happened before the join"
    assert view(client.reconciler, "t1") == view(log, "t1")


def test_record_prints_each_notice_once(demo, tmp_path):
    """``reconcile record`` with a wrong user id: the notice once on stderr (it was
    printed a second time by the client's log record)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.test_client import ROOT

    server = demo(*CLOWDER)
    trace = tmp_path / "session.jsonl"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "reconcile", "record", "--url", server.url, "--thread", "t1",
         "--user", "someone-else", "-o", str(trace)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    async def drive() -> None:
        async with aiohttp.ClientSession() as session:
            await wait_for(lambda: _true(trace.exists() and '"join"' in trace.read_text()),
                           "the join page")
            await control(session, server.url, "/api/demo/start", "POST",
                          scenario="callback_first")
            await wait_finished(session, server.url)
            # The page after the turn's done ("verify", or "turn_end" while the
            # thread is still suspect after its join) is empty again: the notice.
            await wait_for(lambda: _true('"verify"' in trace.read_text()
                                         or '"turn_end"' in trace.read_text()),
                           "the page after the turn")

    try:
        asyncio.run(drive())
        recorder.send_signal(signal.SIGINT)
        out, err = recorder.communicate(timeout=TIMEOUT)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    assert recorder.returncode == 0, err
    assert err.count("history of t1 is empty") == 1, err
    assert "record: history of t1 is empty" in err
    assert "notice: history of t1 is empty" in out  # the summary lists it too


def test_watch_shows_notices_in_its_frame_and_writes_nothing_under_it(demo, caplog):
    """While watch's live frame is up, the client's log records (a notice's too)
    must not reach the terminal: a line written under the frame leaves stale rows
    at its top. The notice is in the frame instead."""
    import logging

    from rich.console import Console

    from reconcile.client.view import watch

    server = demo(*CLOWDER)
    console = Console(file=io.StringIO(), record=True, width=160, height=40,
                      force_terminal=True, color_system=None)

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            client = client_for(server.url, ["t1"], user="someone-else")
            stop = asyncio.Event()
            watching = asyncio.create_task(watch(client, console, stop, refresh=20))
            await client.wait_ready(TIMEOUT)
            await control(session, server.url, "/api/demo/start", "POST",
                          scenario="callback_first")
            await wait_finished(session, server.url)
            await wait_for(lambda: _true(bool(client.notices)), "the notice")
            await asyncio.sleep(0.2)  # a frame or two with the notice; no assertion on time
            stop.set()
            await watching

    with caplog.at_level(logging.WARNING, logger="reconcile.client"):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.name == "reconcile.client"]
    shown = console.export_text()
    assert shown.count("history of t1 is empty") >= 2, "in live frames and the final one"
    assert logging.getLogger("reconcile.client").propagate
