"""One trace's ``check`` document: the single place the audit judges a trace.

:func:`check_document` returns what ``reconcile check --json`` prints for one trace
(``CheckReport.to_dict()``): lines and events, every refusal, refusals per reason, one
entry per PROTOCOL section-10 rule seen broken, counts per thread, and the ``seq``
gaps. The audit runs it on every file and merges the documents; it never looks inside
the engine.

Until ``reconcile.check_lines`` exists, the document is computed here from the public
engine (:class:`reconcile.Reconciler`) and a small observer of the section-10 rules.
When it exists, the body of :func:`check_document` becomes
``return reconcile.check_lines(lines).to_dict()`` and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from reconcile import Gap, Reason, Reconciler, Rejected

__all__ = ["check_document", "RULE_TITLES", "FIRST_LINES"]

#: PROTOCOL section 10, the rules a trace can show broken.
RULE_TITLES = {
    1: "callbacks carry their turn id",
    2: "stored callbacks carry their turn id",
    3: "late joiners can bind stream events",
    5: "history is the same for every member",
}

#: How many line numbers a rule lists (the first ones).
FIRST_LINES = 5

_STREAM_TYPES = frozenset({"text", "tool_use", "tool_result"})
# Every ASCII digit to "0": a run of 19 zeros then marks a number orjson may have
# decoded differently from the engine's exact path (see check_document).
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19
_CALLBACK_WITHOUT = Reason.CALLBACK_WITHOUT_INVOCATION


_UNDECODED = object()


def _is_id(value: Any) -> bool:
    return value.__class__ is str and value != ""


class _Rules:
    """Counts and first lines of each section-10 rule, and whether it was refused."""

    def __init__(self) -> None:
        self.count = dict.fromkeys(RULE_TITLES, 0)
        self.lines: dict[int, list[int]] = {rule: [] for rule in RULE_TITLES}
        self.refused = dict.fromkeys(RULE_TITLES, False)

    def add(self, rule: int, line: int, n: int = 1, refused: bool = False) -> None:
        self.count[rule] += n
        first = self.lines[rule]
        if len(first) < FIRST_LINES and (not first or first[-1] != line):
            first.append(line)
        if refused:
            self.refused[rule] = True

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {
                "rule": rule,
                "title": RULE_TITLES[rule],
                "count": self.count[rule],
                "lines": self.lines[rule],
                "refusal": self.refused[rule],
            }
            for rule in RULE_TITLES
            if self.count[rule]
        ]


def _stream_side(data: dict[str, Any]) -> bool:
    """An agent_message a late joiner must bind (section 3): stream text, tools,
    thinking and rich blocks without a message id."""
    kind = data.get("type")
    if kind in _STREAM_TYPES:
        return kind != "text" or data.get("origin") != "callback"
    if kind == "system_info" and isinstance(data.get("content"), str):
        try:
            payload = orjson.loads(data["content"])
        except orjson.JSONDecodeError:
            return False
        if isinstance(payload, dict):
            sub = payload.get("type")
            return sub == "thinking" or (
                sub == "rich_block" and not _is_id(payload.get("messageId"))
            )
    return False


def _observe(message: Any, line: int, changes: tuple, rules: _Rules, live: set[str]) -> None:
    """Section 10 for one decoded line (the engine has already applied it)."""
    if message.__class__ is not dict or message.get("data").__class__ is not dict:
        return
    data = message["data"]
    event = message.get("event")
    if event == "agent_message":
        thread = data.get("threadId")
        if isinstance(thread, str):
            live.add(thread)
        refused_callback = any(
            c.__class__ is Rejected and c.reason is _CALLBACK_WITHOUT for c in changes
        )
        if refused_callback:
            rules.add(1, line, refused=True)
        elif _stream_side(data) and not _is_id(data.get("turnInvocationId")):
            rules.add(3, line)
    elif event == "history":
        messages = data.get("messages")
        if not isinstance(messages, list):
            return
        if not messages and data.get("threadId") in live:
            rules.add(5, line)
        refused = sum(
            1 for c in changes if c.__class__ is Rejected and c.reason is _CALLBACK_WITHOUT
        )
        without_turn = drafts = 0
        for stored in messages:
            if not (isinstance(stored, dict) and isinstance(stored.get("catId"), str)):
                continue
            extra = stored.get("extra")
            info = extra.get("stream") if isinstance(extra, dict) else None
            info = info if isinstance(info, dict) else {}
            stored_id = stored.get("id")
            if stored.get("origin") == "callback":
                without_turn += not _is_id(info.get("invocationId"))
            elif stored.get("isDraft") is True or (
                isinstance(stored_id, str) and stored_id.startswith("draft-")
            ):
                drafts += not _is_id(info.get("parentInvocationId"))
        if without_turn:
            rules.add(2, line, without_turn, refused=refused > 0)
        if drafts:
            rules.add(3, line, drafts)


def check_document(lines: Iterable[bytes | str]) -> dict[str, Any]:
    """Check one trace; the ``check --json`` document (see the module docstring).

    Streaming: lines are consumed one at a time; memory is the engine's own state.
    """
    engine = Reconciler()
    receive_line, receive_message = engine.receive_line, engine.receive_message
    loads = orjson.loads
    rules = _Rules()
    live: set[str] = set()
    reasons: dict[str, int] = {}
    refused_in: dict[str, int] = {}
    gaps_in: dict[str, int] = {}
    for line in lines:
        # Each line is decoded once, here, and shared by the engine and the observer:
        # receive_message(decoded) is receive_line(line) for a line orjson decodes,
        # except for numbers of 19 digits or more, which the engine decodes exactly
        # (the observer looks at no number, so the fast decode serves it either way).
        try:
            message = loads(line)
        except orjson.JSONDecodeError:
            message = _UNDECODED
        if message is _UNDECODED or (
            _LONG_NUMBER in (line if line.__class__ is not str else line.encode()).translate(
                _DIGITS_TO_ZERO
            )
        ):
            changes = receive_line(line)  # blank, malformed, or a huge number
        else:
            changes = receive_message(message)
        number = engine.lines
        for change in changes:
            kind = change.__class__
            if kind is Rejected:
                reasons[change.reason.value] = reasons.get(change.reason.value, 0) + 1
                if change.thread is not None:
                    refused_in[change.thread] = refused_in.get(change.thread, 0) + 1
            elif kind is Gap:
                gaps_in[change.thread] = gaps_in.get(change.thread, 0) + 1
        if message is not _UNDECODED:
            _observe(message, number, changes, rules, live)
    threads = {}
    known = set(engine.threads)
    # A refusal may name a thread the engine never made (a bad envelope): list it too.
    for thread in (*engine.threads, *(t for t in refused_in if t not in known)):
        threads[thread] = {
            "bubbles": len(engine.bubbles(thread)) if thread in known else 0,
            "refused": refused_in.get(thread, 0),
            "gaps": gaps_in.get(thread, 0),
        }
    return {
        "lines": engine.lines,
        "events": engine.stats.events,
        "rejected": [r.to_dict() for r in engine.rejected],
        "reasons": dict(sorted(reasons.items())),
        "rules": rules.to_list(),
        "threads": threads,
        "gaps": [g.to_dict() for g in engine.gaps],
    }
