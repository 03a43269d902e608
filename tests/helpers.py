"""Small helpers shared by the tests: build wire events, feed them, look at bubbles."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reconcile import Reconciler

HERE = Path(__file__).resolve().parent
CONFORMANCE = HERE / "data" / "conformance"
TS0 = 1767225600000


def case_dirs() -> list[Path]:
    return sorted(p for p in CONFORMANCE.iterdir() if (p / "expected.json").is_file())


def trace_lines(path: Path) -> list[bytes]:
    """A trace file's lines, split on \\n only, as the CLI splits them."""
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def msg(type_: str, thread: str = "t1", cat: str = "opus", **data: Any) -> dict[str, Any]:
    """An ``agent_message`` in wire form."""
    return {"event": "agent_message", "data": {"type": type_, "threadId": thread, "catId": cat, **data}}


def announce(turn: str, parent: str | None = "P1", thread: str = "t1", cat: str = "opus", **kw):
    content = json.dumps({"type": "invocation_created", "invocationId": turn})
    extra = {"invocationId": parent} if parent is not None else {}
    return msg("system_info", thread, cat, content=content, **extra, **kw)


def chunk(text: str, parent: str | None = "P1", thread: str = "t1", cat: str = "opus", **kw):
    extra = {"invocationId": parent} if parent is not None else {}
    return msg("text", thread, cat, content=text, origin="stream", **extra, **kw)


def callback(text: str, turn: str | None, message_id: str | None = None, thread: str = "t1",
             cat: str = "opus", **kw):
    extra: dict[str, Any] = {}
    if turn is not None:
        extra["invocationId"] = turn
    if message_id is not None:
        extra["messageId"] = message_id
    return msg("text", thread, cat, content=text, origin="callback", **extra, **kw)


def done(parent: str | None = "P1", thread: str = "t1", cat: str = "opus", **kw):
    extra = {"invocationId": parent} if parent is not None else {}
    return msg("done", thread, cat, isFinal=True, **extra, **kw)


def feed(events: Iterable[dict[str, Any]], reconciler: Reconciler | None = None):
    """Feed wire events; return (reconciler, list of per-event change tuples)."""
    r = reconciler if reconciler is not None else Reconciler()
    changes = [r.receive_message(e) for e in events]
    r._check()
    return r, changes


def bubbles(r: Reconciler, thread: str = "t1") -> list[dict[str, Any]]:
    """The thread's bubbles as dicts, ids left out (they are free-format)."""
    out = []
    for b in r.bubbles(thread):
        d = b.to_dict()
        del d["id"]
        out.append(d)
    return out


def texts(r: Reconciler, thread: str = "t1") -> list[tuple[str | None, str, str, str]]:
    """(turn, origin, status, text) per bubble: the compact view most tests assert on."""
    return [(b.invocation, b.origin.value, b.status.value, b.text) for b in r.bubbles(thread)]


def without_details(document: dict[str, Any]) -> dict[str, Any]:
    """A section 9 document with refusal details dropped (they are free text)."""
    out = dict(document)
    out["rejected"] = [{"line": r["line"], "reason": r["reason"]} for r in document["rejected"]]
    return out


class ChangeView:
    """A UI's view rebuilt from the change stream alone, checked against the engine.

    Keyed by bubble id, it records a snapshot of each bubble a change names. After
    every call it must equal the engine's bubbles exactly, and no change may leave the
    state as it was (an update that changes nothing is a bug a UI pays for).
    """

    def __init__(self, r: Reconciler) -> None:
        self.r = r
        self.view: dict[str, dict[str, Any]] = {}

    def receive(self, event: Any) -> tuple[Any, ...]:
        """Feed one event (``receive_message``) and check its changes."""
        return self._check(lambda: self.r.receive_message(event))

    def interrupt(self, thread: str) -> tuple[Any, ...]:
        """``Reconciler.interrupt`` and check its changes."""
        return self._check(lambda: self.r.interrupt(thread))

    def _check(self, call: Any) -> tuple[Any, ...]:
        from reconcile import BubbleAdded, BubbleUpdated, Update

        r = self.r
        before = {b.id: b.to_dict() for h in r.threads for b in r.bubbles(h)}
        changes: tuple[Any, ...] = call()
        added = [c.bubble.id for c in changes if isinstance(c, BubbleAdded)]
        assert len(added) == len(set(added)), "a bubble is added once"
        assert not set(added) & set(before), "an added bubble is new"
        updates: dict[str, list[Any]] = {}
        for change in changes:
            if isinstance(change, (BubbleAdded, BubbleUpdated)):
                self.view[change.bubble.id] = change.bubble.to_dict()
            if isinstance(change, BubbleUpdated):
                updates.setdefault(change.bubble.id, []).append(change)
        after = {b.id: b.to_dict() for h in r.threads for b in r.bubbles(h)}
        assert self.view == after, "the changes rebuild exactly the engine's bubbles"
        for bubble_id, mine in updates.items():
            hows = [c.how for c in mine]
            new = after[bubble_id]
            old = before.get(bubble_id)
            if old is None:
                # Made in this very call (a history page can make then update a bubble):
                # blocks are reported once each, never more often than they exist.
                assert hows.count(Update.BLOCK) <= len(new["blocks"])
                continue
            if len(mine) == 1 or Update.TEXT_SET not in hows:
                # (Two text sets in one history page may take a text away and back:
                # each changed the bubble, the call as a whole did not.)
                assert new != old, f"an update that changes nothing: {hows}"
            assert hows.count(Update.BLOCK) == len(new["blocks"]) - len(old["blocks"])
            assert hows.count(Update.TOOL) == len(new["tools"]) - len(old["tools"])
            if set(hows) == {Update.APPENDED}:
                assert new["text"] == old["text"] + "".join(c.delta for c in mine)
        for bubble_id in set(after) - set(before):
            assert bubble_id in added, "every new bubble is announced"
        return changes
