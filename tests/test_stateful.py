"""The engine and the naive reference model, run in lockstep by a state machine.

Hypothesis drives a multi-thread, multi-agent chat: turns are announced, stream,
finish, fail, get cancelled; callbacks arrive on time, late (after newer turns began)
or early (before any stream); events are redelivered with and without ``seq``; the
client switches threads and loads history pages. Every event goes to the engine
incrementally; after each step the engine's document must equal what the model
recomputes from the whole log, and the engine's own invariants (``_check``) must hold.
Each step's returned changes must also agree with what changed.
"""

from __future__ import annotations

import copy
import json
from typing import Any, NamedTuple

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from reconcile import (
    BubbleAdded,
    BubbleUpdated,
    Duplicate,
    Gap,
    Reconciler,
    Rejected,
    Superseded,
    TurnClosed,
    TurnEnd,
    TurnOpened,
)

from . import strategies as gen
from .helpers import ChangeView
from .model import activity, replay

EPOCHS = (None, "e1", "e2")


class TurnRef(NamedTuple):
    """What the machine knows about a turn it started: where, who, under which parent."""

    thread: str
    cat: str
    parent: str | None
    turn: str


def _bindings(ref: TurnRef) -> st.SearchStrategy[dict[str, Any]]:
    """The ways a stream-side event of ``ref`` can name its turn (section 3)."""
    options = [{"turnInvocationId": ref.turn}, {}]
    if ref.parent is not None:
        options.append({"invocationId": ref.parent})
    return st.sampled_from(options)


class Lockstep(RuleBasedStateMachine):
    turns = Bundle("turns")

    def __init__(self) -> None:
        super().__init__()
        self.engine = Reconciler()
        self.view = ChangeView(self.engine)  # a UI fed only by the change stream
        self.items: list[Any] = []  # what the model replays: events and interruptions
        self.activity: list[tuple[Any, ...]] = []  # TurnOpened / TurnClosed, in order
        self.log: list[Any] = []
        self.current = "t1"
        self.seq: dict[str, tuple[Any, int]] = {}  # thread -> (epoch, last seq stamped)
        self.sent_callbacks: list[dict[str, Any]] = []
        self.refs: list[TurnRef] = []

    # ------------------------------------------------------------------ feeding

    def _stamp(self, data: st.DataObject, event: dict[str, Any]) -> dict[str, Any]:
        """Give an agent_message a timestamp (not always increasing, sometimes none)
        and, sometimes, the thread's next seq, a skipped one (a gap) or a new epoch."""
        body = event["data"]
        ts = data.draw(gen.timestamps, label="timestamp")
        if ts is not gen.ABSENT:
            body["timestamp"] = ts
        mode = data.draw(st.sampled_from(["none", "none", "next", "next", "skip", "epoch"]))
        if mode != "none":
            thread = body["threadId"]
            epoch, last = self.seq.get(thread, (None, 0))
            if mode == "epoch":
                epoch, last = data.draw(st.sampled_from(EPOCHS), label="epoch"), 0
            seq = last + (2 if mode == "skip" else 1)
            self.seq[thread] = (epoch, seq)
            body["seq"] = seq
            if epoch is not None:
                body["seqEpoch"] = epoch
        return event

    def _send(self, event: Any) -> None:
        """Feed one event to the engine and check its changes against its state."""
        r = self.engine
        before = set(r._bubbles)
        rejected, gaps, stats = len(r.rejected), len(r.gaps), r.stats
        pristine = copy.deepcopy(event)
        changes = self.view.receive(event)
        self.log.append(event)
        self.items.append(event)
        self._record_activity(changes)
        assert event == pristine, "the engine never mutates its input"
        line = r.lines
        added: set[str] = set()
        for change in changes:
            if isinstance(change, BubbleAdded):
                assert change.bubble.id not in before and change.bubble.id not in added
                added.add(change.bubble.id)
                assert r.bubble(change.bubble.id) is change.bubble
            elif isinstance(change, BubbleUpdated):
                assert change.bubble.id in before | added, "an update is of a known bubble"
                assert r.bubble(change.bubble.id) is change.bubble
        assert set(r._bubbles) - before == added, "every new bubble is announced"
        assert all(getattr(c, "line", line) == line for c in changes)
        kinds = [type(c) for c in changes]
        page = isinstance(event, dict) and event.get("event") == "history"
        # A history page is judged message by message (one refusal per refused stored
        # callback, the rest applies); every other event is refused or applied whole.
        assert kinds.count(Rejected) == len(r.rejected) - rejected <= (1 << 30 if page else 1)
        assert kinds.count(Gap) == len(r.gaps) - gaps <= 1
        assert kinds.count(Duplicate) == r.stats.duplicates - stats.duplicates <= 1
        assert kinds.count(Superseded) == r.stats.superseded - stats.superseded <= 1
        if (Rejected in kinds and not page) or Duplicate in kinds:
            assert not added and BubbleUpdated not in kinds, "a skipped event changes nothing"
        if isinstance(event, dict) and event.get("event") == "agent_message":
            body = event.get("data")
            if isinstance(body, dict) and body.get("origin") == "callback":
                self.sent_callbacks.append(event)

    def _record_activity(self, changes: tuple[Any, ...]) -> None:
        for change in changes:
            if isinstance(change, TurnOpened):
                self.activity.append(
                    ("opened", change.thread, change.cat, change.turn, None, change.line)
                )
            elif isinstance(change, TurnClosed):
                self.activity.append(
                    ("closed", change.thread, change.cat, change.turn, str(change.how),
                     change.line)
                )

    def _message(self, type_: str, thread: str, cat: str, **fields: Any) -> dict[str, Any]:
        return gen.agent_message(type_, thread, cat, **fields)

    # ------------------------------------------------------------------ rules

    @initialize(thread=st.sampled_from(gen.THREADS))
    def start(self, thread: str) -> None:
        self.current = thread

    @rule(thread=st.sampled_from(gen.THREADS))
    def switch_thread(self, thread: str) -> None:
        self.current = thread

    @rule(
        target=turns,
        cat=st.sampled_from(gen.CATS),
        parent=st.one_of(st.sampled_from(gen.PARENTS), st.none()),
        turn=st.sampled_from(gen.TURNS),
        payload_cat=st.booleans(),
        data=st.data(),
    )
    def open_turn(self, cat, parent, turn, payload_cat, data):
        """Announce a turn (the id may repeat one already used: it never reopens)."""
        payload = {"type": "invocation_created", "invocationId": turn}
        envelope_cat = cat
        if payload_cat:  # the payload's catId names the agent, not the envelope's
            payload["catId"] = cat
            envelope_cat = data.draw(st.sampled_from(gen.CATS), label="envelope cat")
        fields = {"invocationId": parent} if parent is not None else {}
        event = self._message(
            "system_info", self.current, envelope_cat, content=json.dumps(payload), **fields
        )
        self._send(self._stamp(data, event))
        ref = TurnRef(self.current, cat, parent, turn)
        self.refs.append(ref)
        return ref

    @rule(
        target=turns,
        cat=st.sampled_from(gen.CATS),
        turn=st.sampled_from(gen.TURNS),
        message_id=st.one_of(st.none(), st.sampled_from(gen.MESSAGE_IDS)),
        text=gen.texts,
        data=st.data(),
    )
    def early_callback(self, cat, turn, message_id, text, data):
        """A callback before its turn was announced or streamed anything."""
        fields = {"messageId": message_id} if message_id is not None else {}
        event = self._message(
            "text", self.current, cat, content=text, origin="callback", invocationId=turn,
            **fields,
        )
        self._send(self._stamp(data, event))
        ref = TurnRef(self.current, cat, None, turn)
        self.refs.append(ref)
        return ref

    @rule(
        target=turns,
        cat=st.sampled_from(gen.CATS),
        parent=st.sampled_from(gen.PARENTS),
        turn=st.sampled_from(gen.TURNS),
        text=gen.texts,
        by_id=st.booleans(),
        data=st.data(),
    )
    def late_join_draft(self, cat, parent, turn, text, by_id, data):
        """Version 1.1: a client that joined mid-turn gets the turn's draft, naming its
        parent; if the turn is new to the thread, the draft announces it."""
        stream: dict[str, Any] = {"parentInvocationId": parent}
        if not by_id:  # the turn named in extra.stream, or only by the draft-T id
            stream["invocationId"] = turn
        message: dict[str, Any] = {
            "id": f"draft-{turn}", "catId": cat, "content": text, "isDraft": True,
            "extra": {"stream": stream},
        }
        ts = data.draw(gen.timestamps, label="draft timestamp")
        if ts is not gen.ABSENT:
            message["timestamp"] = ts
        self._send({"event": "history", "data": {"threadId": self.current, "messages": [message]}})
        ref = TurnRef(self.current, cat, parent, turn)
        self.refs.append(ref)
        return ref

    @rule(ref=turns, text=gen.texts, data=st.data())
    def stream(self, ref, text, data):
        ids = data.draw(_bindings(ref), label="binding")
        origin = data.draw(st.sampled_from([{"origin": "stream"}, {}]), label="origin")
        event = self._message("text", ref.thread, ref.cat, content=text, **origin, **ids)
        self._send(self._stamp(data, event))

    @rule(
        ref=turns,
        text=gen.texts,
        message_id=st.one_of(st.none(), st.sampled_from(gen.MESSAGE_IDS)),
        id_field=st.sampled_from(["invocationId", "turnInvocationId"]),
        explicit=st.sampled_from([False, False, False, True]),
        data=st.data(),
    )
    def callback(self, ref, text, message_id, id_field, explicit, data):
        """The turn's callback: on time, or late (newer turns may have started since)."""
        fields: dict[str, Any] = {id_field: ref.turn}
        if message_id is not None:
            fields["messageId"] = message_id
        if explicit:
            fields["extra"] = {"isExplicitPost": True}
        event = self._message(
            "text", ref.thread, ref.cat, content=text, origin="callback", **fields
        )
        self._send(self._stamp(data, event))

    @rule(
        cat=st.sampled_from(gen.CATS),
        parent=st.one_of(st.none(), st.sampled_from(gen.PARENTS)),
        data=st.data(),
    )
    def callback_without_turn(self, cat, parent, data):
        """Refused: a callback is never matched to the latest or open bubble."""
        # An empty id counts as absent; an unknown field carrying a parent is ignored.
        fields = {"invocationId": ""} if parent is None else {"parentInvocationId": parent}
        event = self._message(
            "text", self.current, cat, content="orphan", origin="callback", **fields
        )
        self._send(self._stamp(data, event))

    @rule(ref=turns, data=st.data())
    def done(self, ref, data):
        ids = data.draw(_bindings(ref), label="binding")
        event = self._message("done", ref.thread, ref.cat, isFinal=True, **ids)
        self._send(self._stamp(data, event))

    @rule(
        ref=turns,
        text=st.sampled_from([{"error": "boom"}, {"content": "quota"}, {"error": ""}, {}]),
        data=st.data(),
    )
    def error(self, ref, text, data):
        ids = data.draw(_bindings(ref), label="binding")
        event = self._message("error", ref.thread, ref.cat, **text, **ids)
        self._send(self._stamp(data, event))

    @rule(
        ref=turns,
        kind=st.sampled_from(["tool_use", "tool_result", "thinking", "block"]),
        block=st.sampled_from(gen.BLOCK_IDS),
        data=st.data(),
    )
    def side_output(self, ref, kind, block, data):
        """Tools, thinking and rich blocks: they attach even to a closed turn."""
        ids = data.draw(_bindings(ref), label="binding")
        if kind in ("tool_use", "tool_result"):
            event = self._message(
                kind, ref.thread, ref.cat, toolName="grep", toolInput={"q": block},
                content="hit", **ids,
            )
        else:
            payload = (
                {"type": "thinking", "text": block}
                if kind == "thinking"
                else {"type": "rich_block", "block": {"id": block}}
            )
            event = self._message(
                "system_info", ref.thread, ref.cat, content=json.dumps(payload), **ids
            )
        self._send(self._stamp(data, event))

    @rule(
        thread=st.sampled_from(gen.THREADS),
        cat=st.sampled_from(gen.CATS),
        message_id=st.sampled_from(gen.MESSAGE_IDS),
        block=st.sampled_from(gen.BLOCK_IDS),
        data=st.data(),
    )
    def block_for_message(self, thread, cat, message_id, block, data):
        """A rich block addressed by messageId: attached now or held until it comes."""
        payload = {"type": "rich_block", "block": {"id": block}, "messageId": message_id}
        event = self._message("system_info", thread, cat, content=json.dumps(payload))
        self._send(self._stamp(data, event))

    @rule(cat=st.sampled_from(gen.CATS), data=st.data())
    def cancel(self, cat, data):
        """What a server sends on cancel: a plain "Canceled" line, then done, no ids."""
        self._send(self._stamp(data, self._message("system_info", self.current, cat,
                                                   content="Canceled")))
        self._send(self._stamp(data, self._message("done", self.current, cat, isFinal=True)))

    @precondition(lambda self: self.sent_callbacks)
    @rule(data=st.data())
    def redeliver_callback(self, data):
        """The same callback again (as is, seq included when it had one)."""
        event = data.draw(st.sampled_from(self.sent_callbacks), label="callback")
        self._send(copy.deepcopy(event))

    @precondition(lambda self: self.log)
    @rule(data=st.data(), keep_seq=st.booleans())
    def redeliver_any(self, data, keep_seq):
        """Any earlier event again: with its seq it is a duplicate; without it is new."""
        event = copy.deepcopy(data.draw(st.sampled_from(self.log), label="event"))
        if not keep_seq and isinstance(event, dict) and isinstance(event.get("data"), dict):
            event["data"].pop("seq", None)
        self._send(event)

    @rule(data=st.data(), thread=st.sampled_from(gen.THREADS))
    def history(self, data, thread):
        """A history page for a thread: stored forms of the turns started there, plus
        turn-less and junk messages."""
        mine = [r for r in self.refs if r.thread == thread]
        messages = []
        for _ in range(data.draw(st.integers(0, 4), label="messages")):
            if mine and data.draw(st.booleans()):
                ref = data.draw(st.sampled_from(mine), label="turn")
                kind = data.draw(st.sampled_from(["callback", "draft", "stream"]))
                message: dict[str, Any] = {
                    "catId": ref.cat,
                    "content": data.draw(gen.texts, label="stored text"),
                    "extra": {"stream": {"invocationId": ref.turn}},
                }
                if kind == "callback":
                    message["id"] = data.draw(st.sampled_from(gen.MESSAGE_IDS))
                    message["origin"] = "callback"
                elif kind == "draft":
                    message["id"] = f"draft-{ref.turn}"
                    message["isDraft"] = True
                else:
                    message["id"] = data.draw(st.sampled_from(("s1", "s2")))
                ts = data.draw(gen.timestamps, label="stored timestamp")
                if ts is not gen.ABSENT:
                    message["timestamp"] = ts
                messages.append(message)
            else:
                messages.append(data.draw(gen.stored_messages(), label="stored message"))
        self._send({"event": "history", "data": {"threadId": thread, "messages": messages}})

    @rule(thread=st.sampled_from(gen.THREADS + ("nowhere",)))
    def interrupt(self, thread):
        """The client saw the server lose the thread: its running turns close."""
        running = self.engine.running_turns(thread)
        streaming = {
            b.id for t in running for b in self.engine.bubbles(thread)
            if b.invocation == t.turn and b.status == "streaming"
        }
        lines = self.engine.lines
        changes = self.view.interrupt(thread)
        self.items.append(("interrupt", thread))
        self._record_activity(changes)
        assert self.engine.lines == lines, "an interruption uses no line number"
        closed = [c for c in changes if isinstance(c, TurnClosed)]
        assert [(c.turn, c.how) for c in closed] == [(t.turn, TurnEnd.INTERRUPTED) for t in running]
        updated = {c.bubble.id for c in changes if isinstance(c, BubbleUpdated)}
        assert updated <= streaming
        assert self.engine.running_turns(thread) == ()
        for bubble_id in updated:
            assert self.engine.bubble(bubble_id).status == "done"

    @rule(event=gen.wire_events())
    def noise(self, event):
        """Anything else: system lines, handoffs, unknown types, other event names,
        malformed events, loose stream chunks and callbacks."""
        self._send(event)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def engine_matches_model(self) -> None:
        self.engine._check()
        got = gen.comparable(self.engine.to_dict())
        want = gen.comparable(replay(self.items))
        assert got == want

    @invariant()
    def activity_matches_model(self) -> None:
        model = activity(self.items)
        assert self.activity == model["log"]
        for thread in set(self.engine.threads) | set(gen.THREADS):
            got = [(t.cat, t.turn, t.since, t.line) for t in self.engine.running_turns(thread)]
            assert got == model["running"].get(thread, []), thread
            for t in self.engine.running_turns(thread):
                assert t.thread == thread
        # Every close follows an open of the same turn, and a closed turn never reopens.
        state: dict[tuple[str, str], str] = {}
        for kind, thread, _cat, turn, _how, _line in self.activity:
            key = (thread, turn)
            if kind == "opened":
                assert key not in state, f"turn {key} opened twice"
            else:
                assert state.get(key) == "opened", f"turn {key} closed without running"
            state[key] = kind

    @invariant()
    def one_stream_bubble_per_turn(self) -> None:
        seen = set()
        for thread in self.engine.threads:
            for bubble in self.engine.bubbles(thread):
                if bubble.origin == "stream" and bubble.invocation is not None:
                    key = (thread, bubble.invocation)
                    assert key not in seen, f"two stream bubbles for turn {key}"
                    seen.add(key)


Lockstep.TestCase.settings = settings(
    gen.FAST, max_examples=200 * gen.SCALE, stateful_step_count=50, deadline=None
)
test_engine_runs_in_lockstep_with_the_model = Lockstep.TestCase
