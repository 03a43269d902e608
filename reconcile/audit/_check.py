"""One trace's ``check`` document: the single place the audit judges a trace.

:func:`check_document` returns what ``reconcile check --json`` prints for one trace
(``CheckReport.to_dict()``): lines and events, every refusal, refusals per reason, one
entry per kind of PROTOCOL section-10 break seen, counts per thread, and the ``seq``
gaps. The audit runs it on every file and merges the documents; it never looks inside
the engine.

It is ``reconcile.check_lines(lines).to_dict()`` when the package has it. Until then
(this module was written beside it), a stand-in with the same document shape and the
same rules is computed here from the public engine; once ``check_lines`` is always
there, :func:`_stand_in` and everything below it can go.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

import reconcile
from reconcile import Reason, Reconciler, Rejected

__all__ = ["check_document", "FIRST_LINES"]

#: How many line numbers a rule entry lists (the first ones).
FIRST_LINES = 5


def check_document(lines: Iterable[bytes | str]) -> dict[str, Any]:
    """Check one trace; the ``check --json`` document (see the module docstring).

    Streaming: lines are consumed one at a time; memory is the engine's own state.
    """
    check_lines = getattr(reconcile, "check_lines", None)
    if check_lines is not None:
        return check_lines(lines).to_dict()
    return _stand_in(lines)


# --------------------------------------------------------------------- the stand-in

#: key -> (rule number, title), in report order (as ``reconcile check`` names them).
_RULES: dict[str, tuple[int, str]] = {
    "live_callback_without_turn": (1, "live callbacks without a turn id"),
    "stored_callback_without_turn": (
        2, "stored callbacks without a turn id (extra.stream.invocationId)"),
    "stream_without_turn_id": (
        3, "stream events without turnInvocationId (a late joiner cannot bind them)"),
    "draft_without_parent": (3, "history drafts without extra.stream.parentInvocationId"),
    "empty_history": (5, "empty history pages for threads that had live events"),
}
_STREAM_TYPES = frozenset({"text", "tool_use", "tool_result", "done", "error"})
_MALFORMED = (Reason.MALFORMED_LINE, Reason.MALFORMED_EVENT)
_CALLBACK_WITHOUT = Reason.CALLBACK_WITHOUT_INVOCATION
# Every ASCII digit to "0": a run of 19 zeros then marks a number orjson may decode
# differently from the engine's exact path.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19
_UNDECODED = object()


def _is_id(value: Any) -> bool:
    return value.__class__ is str and value != ""


class _Finding:
    __slots__ = ("count", "refused", "lines")

    def __init__(self) -> None:
        self.count = 0
        self.refused = 0
        self.lines: list[int] = []

    def add(self, line: int, refused: bool) -> None:
        self.count += 1
        self.refused += refused
        if len(self.lines) < FIRST_LINES and (not self.lines or self.lines[-1] != line):
            self.lines.append(line)


def _binds(data: dict[str, Any]) -> bool:
    """A system_info a late joiner must bind: thinking, a rich block without messageId."""
    content = data.get("content")
    if content.__class__ is not str or not content.lstrip().startswith("{"):
        return False
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return False
    if payload.__class__ is not dict:
        return False
    kind = payload.get("type")
    return kind == "thinking" or (kind == "rich_block" and not _is_id(payload.get("messageId")))


def _stored_kind(message: Any) -> str | None:
    """``callback`` (a stored callback without its turn), ``draft`` (a draft without its
    parent), else ``None``."""
    if message.__class__ is not dict:
        return None
    message_id = message.get("id")
    if not isinstance(message.get("catId"), str) or not _is_id(message_id):
        return None
    extra = message.get("extra")
    stream = extra.get("stream") if extra.__class__ is dict else None
    stream = stream if stream.__class__ is dict else {}
    if message.get("origin") == "callback":
        return None if _is_id(stream.get("invocationId")) else "callback"
    if message.get("isDraft") is True or message_id.startswith("draft-"):
        return None if _is_id(stream.get("parentInvocationId")) else "draft"
    return None


def _stand_in(lines: Iterable[bytes | str]) -> dict[str, Any]:
    engine = Reconciler()
    receive_line, receive_message = engine.receive_line, engine.receive_message
    loads = orjson.loads
    findings = {key: _Finding() for key in _RULES}
    events: dict[str, int] = {}
    live: set[str] = set()
    for raw in lines:
        # Each line is decoded once and shared by the engine and the rules:
        # receive_message(decoded) is receive_line(line) for a line orjson decodes,
        # except for numbers of 19 digits or more, which the engine decodes exactly.
        try:
            message = loads(raw)
        except orjson.JSONDecodeError:
            message = _UNDECODED
        bytes_ = raw if raw.__class__ is not str else raw.encode()
        if message is _UNDECODED or _LONG_NUMBER in bytes_.translate(_DIGITS_TO_ZERO):
            changes = receive_line(raw)  # blank, malformed, or a huge number
        else:
            changes = receive_message(message)
        if message is _UNDECODED or message.__class__ is not dict:
            continue
        line = engine.lines
        new = [c.reason for c in changes if c.__class__ is Rejected]
        data = message.get("data")
        if data.__class__ is not dict or any(reason in _MALFORMED for reason in new):
            continue
        thread = data.get("threadId")
        if thread.__class__ is not str:
            continue
        events[thread] = events.get(thread, 0) + 1
        name = message.get("event")
        if name == "agent_message":
            live.add(thread)
            kind = data.get("type")
            if kind == "text" and data.get("origin") == "callback":
                if not _is_id(data.get("turnInvocationId")) and not _is_id(
                    data.get("invocationId")
                ):
                    findings["live_callback_without_turn"].add(line, _CALLBACK_WITHOUT in new)
            elif kind in _STREAM_TYPES or (kind == "system_info" and _binds(data)):
                if not _is_id(data.get("turnInvocationId")):
                    findings["stream_without_turn_id"].add(
                        line, Reason.UNBOUND_EVENT in new
                    )
        elif name == "history":
            messages = data.get("messages")
            if messages.__class__ is not list:
                continue
            if not messages and thread in live:
                findings["empty_history"].add(line, False)
            refusals = sum(reason is _CALLBACK_WITHOUT for reason in new)
            for stored in messages:
                kind = _stored_kind(stored)
                if kind == "callback":
                    findings["stored_callback_without_turn"].add(line, refusals > 0)
                    refusals -= 1
                elif kind == "draft":
                    findings["draft_without_parent"].add(line, False)
    counts: dict[str, list[int]] = {h: [n, 0, 0, 0] for h, n in events.items()}
    for h in engine.threads:
        counts.setdefault(h, [0, 0, 0, 0])[1] = len(engine.bubbles(h))
    reasons: dict[str, int] = {}
    for r in engine.rejected:
        reasons[str(r.reason)] = reasons.get(str(r.reason), 0) + 1
        if r.thread is not None:
            counts.setdefault(r.thread, [0, 0, 0, 0])[2] += 1
    for g in engine.gaps:
        counts.setdefault(g.thread, [0, 0, 0, 0])[3] += 1
    stats = engine.stats.to_dict()
    rules = [
        {"rule": rule, "key": key, "title": title, "count": f.count, "refused": f.refused,
         "refusal": f.refused > 0, "lines": list(f.lines)}
        for key, (rule, title) in _RULES.items()
        if (f := findings[key]).count
    ]
    rejected = engine.rejected
    verdict = (
        "refused" if rejected else "advisories" if rules
        else "empty" if stats["events"] == 0 else "clean"
    )
    return {
        "verdict": verdict,
        "lines": engine.lines,
        "events": stats["events"],
        "stats": stats,
        "reasons": dict(sorted(reasons.items())),
        "rules": rules,
        "threads": {
            h: {"events": c[0], "bubbles": c[1], "refused": c[2], "gaps": c[3]}
            for h, c in counts.items()
        },
        "rejected": [
            {"line": r.line, "reason": str(r.reason), "detail": r.detail, "thread": r.thread}
            for r in rejected
        ],
        "gaps": [
            {"thread": g.thread, "after": g.after, "before": g.before, "line": g.line}
            for g in engine.gaps
        ],
    }
