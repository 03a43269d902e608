"""What a server must send (PROTOCOL section 10), checked on a trace (no I/O).

:func:`check_lines` is what ``reconcile check`` runs: it feeds every line to a
:class:`~reconcile.Reconciler` and, beside it, watches each decoded event for the
section 10 rules a trace can show broken. Refusals come from the engine (they are
the protocol's verdict); the rule findings say *why* the server's events were hard
or impossible to place, including the ones a live client got away with (a stream
event without ``turnInvocationId`` binds for a client that saw the announcement,
and to nothing for one that joined later).

Rules and what counts as a break (one :class:`RuleReport` per kind of break seen):

* rule 1, ``live_callback_without_turn``: a broadcast callback with neither
  ``turnInvocationId`` nor ``invocationId``. Always refused.
* rule 2, ``stored_callback_without_turn``: a stored callback in a history page
  without ``extra.stream.invocationId``. A refusal when the engine refused it (it
  could not be tied to a bubble seen live), an advisory otherwise.
* rule 3, ``stream_without_turn_id``: a stream-side event (stream text, tool use or
  result, ``done``, ``error``, thinking, a rich block without ``messageId``) without
  ``turnInvocationId``: a client that joined after the announcement cannot bind it.
  A refusal when it was refused as ``unbound_event``, an advisory otherwise.
* rule 3, ``draft_without_parent``: a draft in a history page without
  ``extra.stream.parentInvocationId`` (advisory).
* rule 5, ``empty_history``: an empty history page for a thread that had live
  events (advisory: the server filtered the page by user, or lost the thread).

Rule 4 (late callbacks dropped by the server) leaves nothing in a trace to see.

Memory: the findings keep counts and the first :data:`FIRST_LINES` line numbers, so
the checker adds O(threads) to the engine's own state, whatever the trace length.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import orjson

from ._bubbles import Gap, Rejected, rejected_list
from ._errors import Reason
from ._reconciler import Reconciler
from ._values import FrozenValue
from ._wire import is_id, parse_json_object

__all__ = ["check_lines", "CheckReport", "RuleReport", "ThreadCounts", "RULES", "FIRST_LINES"]

#: How many line numbers a rule report keeps (the first ones seen).
FIRST_LINES = 5

#: key -> (rule number, title), in report order.
RULES: dict[str, tuple[int, str]] = {
    "live_callback_without_turn": (1, "live callbacks without a turn id"),
    "stored_callback_without_turn": (
        2, "stored callbacks without a turn id (extra.stream.invocationId)"),
    "stream_without_turn_id": (
        3, "stream events without turnInvocationId (a late joiner cannot bind them)"),
    "draft_without_parent": (
        3, "history drafts without extra.stream.parentInvocationId"),
    "empty_history": (5, "empty history pages for threads that had live events"),
}

# agent_message types that bind to a turn (section 3); text only when not a callback.
_STREAM_TYPES = frozenset({"text", "tool_use", "tool_result", "done", "error"})
_object_setattr = object.__setattr__
_NO_STREAM: dict[str, Any] = {}  # read only: a stored message without extra.stream
# The engine logs a refusal as its line and (reason value, detail, thread): these are
# the values, and the getters read a Refusal's reason and thread.
_MALFORMED_LINE = Reason.MALFORMED_LINE._value_
_MALFORMED_EVENT = Reason.MALFORMED_EVENT._value_
_UNBOUND = Reason.UNBOUND_EVENT._value_
_NO_INVOCATION = Reason.CALLBACK_WITHOUT_INVOCATION._value_
_reason_of, _thread_of = itemgetter(0), itemgetter(2)
_loads, _JSONDecodeError = orjson.loads, orjson.JSONDecodeError


class RuleReport(FrozenValue):
    """One kind of section 10 break seen in a trace.

    Attributes:
        rule: the rule's number in PROTOCOL section 10 (1..5).
        key: a stable name for the kind of break (two kinds share rule 3).
        title: what was seen, for people.
        count: how many events broke it.
        refused: how many of those the engine refused.
        lines: the first few (at most :data:`FIRST_LINES`) line numbers.
    """

    __slots__ = ("rule", "key", "title", "count", "refused", "lines")
    __match_args__ = ("rule", "key", "title", "count", "refused", "lines")

    rule: int
    key: str
    title: str
    count: int
    refused: int
    lines: tuple[int, ...]

    def __init__(
        self, rule: int, key: str, title: str, count: int, refused: int, lines: tuple[int, ...]
    ) -> None:
        _object_setattr(self, "rule", rule)
        _object_setattr(self, "key", key)
        _object_setattr(self, "title", title)
        _object_setattr(self, "count", count)
        _object_setattr(self, "refused", refused)
        _object_setattr(self, "lines", lines)

    @property
    def refusal(self) -> bool:
        """True when some of these events were refused (``check`` exits 1); False
        for an advisory (exit 0 unless ``--strict``)."""
        return self.refused > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "key": self.key,
            "title": self.title,
            "count": self.count,
            "refused": self.refused,
            "refusal": self.refusal,
            "lines": list(self.lines),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuleReport:
        return cls(d["rule"], d["key"], d["title"], d["count"], d["refused"], tuple(d["lines"]))


class ThreadCounts(FrozenValue):
    """Per thread: events received, bubbles at the end, refusals and seq gaps."""

    __slots__ = ("events", "bubbles", "refused", "gaps")
    __match_args__ = ("events", "bubbles", "refused", "gaps")

    events: int
    bubbles: int
    refused: int
    gaps: int

    def __init__(self, events: int = 0, bubbles: int = 0, refused: int = 0, gaps: int = 0) -> None:
        _object_setattr(self, "events", events)
        _object_setattr(self, "bubbles", bubbles)
        _object_setattr(self, "refused", refused)
        _object_setattr(self, "gaps", gaps)

    def to_dict(self) -> dict[str, int]:
        return {
            "events": self.events,
            "bubbles": self.bubbles,
            "refused": self.refused,
            "gaps": self.gaps,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ThreadCounts:
        return cls(d["events"], d["bubbles"], d["refused"], d["gaps"])


class CheckReport(FrozenValue):
    """What ``reconcile check`` found in a trace; :meth:`to_dict` is ``check --json``.

    Attributes:
        lines: lines read (blank lines included).
        events: events with a string ``event`` and an object ``data``.
        stats: the engine's counters (events, ignored, superseded, duplicates).
        rejected: every refusal, in line order.
        reasons: refusal reason -> count.
        rules: one report per kind of section 10 break seen, in :data:`RULES` order.
        threads: thread id -> its counts, in the order threads came to exist.
        gaps: every ``seq`` gap, in the order seen.
    """

    __slots__ = ("lines", "events", "stats", "rejected", "reasons", "rules", "threads", "gaps")
    __match_args__ = ("lines", "events", "stats", "rejected", "reasons", "rules", "threads",
                      "gaps")

    lines: int
    events: int
    stats: dict[str, int]
    rejected: tuple[Rejected, ...]
    reasons: dict[str, int]
    rules: tuple[RuleReport, ...]
    threads: dict[str, ThreadCounts]
    gaps: tuple[Gap, ...]

    def __init__(
        self,
        lines: int,
        events: int,
        stats: dict[str, int],
        rejected: tuple[Rejected, ...],
        reasons: dict[str, int],
        rules: tuple[RuleReport, ...],
        threads: dict[str, ThreadCounts],
        gaps: tuple[Gap, ...],
    ) -> None:
        _object_setattr(self, "lines", lines)
        _object_setattr(self, "events", events)
        _object_setattr(self, "stats", stats)
        _object_setattr(self, "rejected", rejected)
        _object_setattr(self, "reasons", reasons)
        _object_setattr(self, "rules", rules)
        _object_setattr(self, "threads", threads)
        _object_setattr(self, "gaps", gaps)

    @property
    def empty(self) -> bool:
        """Nothing to check: no event and no refusal (an empty or all-blank trace)."""
        return self.events == 0 and not self.rejected

    @property
    def advisories(self) -> tuple[RuleReport, ...]:
        return tuple(rule for rule in self.rules if not rule.refusal)

    @property
    def verdict(self) -> str:
        """``refused``, ``advisories`` (the server breaks rules nothing refused),
        ``clean`` or ``empty``."""
        if self.rejected:
            return "refused"
        if self.rules:
            return "advisories"
        return "empty" if self.empty else "clean"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document with stable keys (``reconcile check --json``)."""
        return {
            "verdict": self.verdict,
            "lines": self.lines,
            "events": self.events,
            "stats": dict(self.stats),
            "reasons": dict(self.reasons),
            "rules": [rule.to_dict() for rule in self.rules],
            "threads": {h: counts.to_dict() for h, counts in self.threads.items()},
            "rejected": [
                {"line": r.line, "reason": str(r.reason), "detail": r.detail, "thread": r.thread}
                for r in self.rejected
            ],
            "gaps": [
                {"thread": g.thread, "after": g.after, "before": g.before, "line": g.line}
                for g in self.gaps
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckReport:
        """The report a :meth:`to_dict` document describes (``verdict`` is derived)."""
        return cls(
            lines=d["lines"],
            events=d["events"],
            stats=dict(d["stats"]),
            rejected=tuple(
                Rejected(r["line"], Reason(r["reason"]), r["detail"], r.get("thread"))
                for r in d["rejected"]
            ),
            reasons=dict(d["reasons"]),
            rules=tuple(RuleReport.from_dict(r) for r in d["rules"]),
            threads={h: ThreadCounts.from_dict(c) for h, c in d["threads"].items()},
            gaps=tuple(Gap(g["thread"], g["after"], g["before"], g.get("line", 0))
                       for g in d["gaps"]),
        )


class _Finding:
    __slots__ = ("count", "refused", "lines")

    def __init__(self) -> None:
        self.count = 0
        self.refused = 0
        self.lines: list[int] = []

    def add(self, line: int, refused: bool) -> None:
        self.add_many(line, 1, refused)

    def add_many(self, line: int, count: int, refused: int) -> None:
        """``count`` breaks on ``line``, ``refused`` of them refused."""
        self.count += count
        self.refused += refused
        lines = self.lines
        if len(lines) < FIRST_LINES and (not lines or lines[-1] != line):
            lines.append(line)


def check_lines(lines: Iterable[bytes | str]) -> CheckReport:
    """Replay trace lines and check them against PROTOCOL sections 2-10.

    Args:
        lines: trace lines, bytes or text, with or without their ``\\n``.

    Returns:
        The report: refusals, the section 10 rules seen broken, per-thread counts.

    Complexity: one decode per line (the decoded event goes to the engine as it is);
    memory beyond the engine's is O(threads).
    """
    engine = Reconciler()
    findings = {key: _Finding() for key in RULES}
    live_callback = findings["live_callback_without_turn"].add
    stored_callback = findings["stored_callback_without_turn"].add_many
    draft = findings["draft_without_parent"].add_many
    empty_history = findings["empty_history"].add
    # Rule 3's stream events are counted here and added to their finding at the end
    # (a live event is one line: a line number never repeats in its list).
    stream = findings["stream_without_turn_id"]
    unnamed = unnamed_refused = 0
    first_lines = stream.lines
    # thread -> events (live or history) this loop counted; the events the engine's
    # fast path hands back are counted on their thread's state (``checked``) instead.
    events: dict[str, int] = {}
    live: set[str] = set()  # threads that had live agent_message events (besides those)
    rejected = engine._refusals  # the engine's own log (read only), beside its lines
    seen = 0  # refusals already looked at
    threads = engine._threads
    batched = engine._message_batched
    dispatch = engine._dispatch_slowly
    history = engine._history
    loads, decode_error = _loads, _JSONDecodeError
    line = 0
    for line, raw in enumerate(lines, 1):
        if raw.__class__ is not bytes and not isinstance(raw, (bytes, str, bytearray)):
            engine.receive_line(raw)  # raises the public API's LocalTypeError
        # Section 1 as Reconciler.feed does it (one decode, no change objects, the
        # usual events handed straight to the engine's paths).
        try:
            message = loads(raw)
        except decode_error:
            # Blank, a number beyond a double, or malformed: the engine's own path for
            # the line (it counts the line and words any refusal).
            engine._line = line - 1
            message = engine._take_undecodable(raw, None)
            got = lacks = None
        else:
            try:
                data: Any = message["data"]
                name = message["event"]
            except (KeyError, TypeError):  # not an object, or no data or event
                name = None
            if name == "agent_message" and data.__class__ is dict:
                ignored = engine._ignored
                engine._line = line  # the batch path reads the line from the engine
                got = batched(message, raw)
            elif name == "history" and data.__class__ is dict:
                # As receive_message does, without a scan for big integers (the
                # engine takes the exact decode if a timestamp needs it); it hands back
                # what the page lacked by section 10.
                lacks = history(data, line, None, raw)
                got = None
            elif name.__class__ is str and name != "history" and data.__class__ is dict:
                # Another event: ignored (section 1), as receive_message does; only
                # counted.
                engine._ignored += 1
                thread_id = data.get("threadId")
                if thread_id.__class__ is str:
                    events[thread_id] = events.get(thread_id, 0) + 1
                continue
            else:
                dispatch(message, line, None, raw)
                got = lacks = None
        new: Sequence[str] = ()
        if len(rejected) != seen:
            # This line's refusals: nearly always one (its reason is a Reason's value:
            # strings of different lengths, told apart at once).
            seen += 1
            if len(rejected) == seen:
                reason = rejected[-1][0]
                if reason == _MALFORMED_LINE or reason == _MALFORMED_EVENT:
                    continue  # refused as malformed: not counted against any rule
                new = (reason,)
            else:
                new = [r[0] for r in rejected[seen - 1:]]
                seen = len(rejected)
                if _MALFORMED_LINE in new or _MALFORMED_EVENT in new:
                    continue
        if got is not None:
            # The fast path applied the event whole and handed back its thread, and for
            # an event without turnInvocationId its type and origin (see
            # _message_path): no field of it is read again but the few below.
            if not isinstance(got, tuple):
                # It names its turn: it breaks no rule (1 and 3 need a missing
                # turnInvocationId), it is only counted.
                n = got.checked
                if not n and got.id not in events:
                    events[got.id] = 0  # the report lists threads in first-seen order
                got.checked = n + 1
                continue
            thread, kind, origin = got
            n = thread.checked
            if not n and thread.id not in events:
                events[thread.id] = 0
            thread.checked = n + 1
            if kind == "text":
                if origin == "callback":
                    if not is_id(data.get("invocationId")):
                        live_callback(line, _NO_INVOCATION in new)
                    continue
            elif kind not in _STREAM_TYPES:
                if kind != "system_info" or engine._ignored != ignored:
                    # Not stream-side; or a payload the engine counted as ignored (no
                    # bubble meaning: usage, metrics...), which binds to no turn.
                    continue
                content = data["content"]  # a string: the fast path checked it
                if (
                    "thinking" not in content and "rich_block" not in content
                    and "\\" not in content
                ) or not _binds(data):
                    continue
            if unnamed < FIRST_LINES:
                first_lines.append(line)
            unnamed += 1
            if new and _UNBOUND in new:
                unnamed_refused += 1
            continue
        # Every other line: the observer reads the decoded message.
        if message.__class__ is not dict:
            continue
        data = message.get("data")
        name = message.get("event")
        if data.__class__ is not dict:
            continue
        thread_id = data.get("threadId")
        if thread_id.__class__ is not str:
            continue
        events[thread_id] = events.get(thread_id, 0) + 1
        if name == "agent_message":
            live.add(thread_id)
            event_type = data.get("type")
            turn = data.get("turnInvocationId")
            named = isinstance(turn, str) and turn != ""  # is_id, inline
            if event_type == "text" and data.get("origin") == "callback":
                if not named and not is_id(data.get("invocationId")):
                    live_callback(line, _NO_INVOCATION in new)
            elif not named and (
                event_type in _STREAM_TYPES
                or (event_type == "system_info" and _binds(data))
            ):
                if unnamed < FIRST_LINES:
                    first_lines.append(line)
                unnamed += 1
                if _UNBOUND in new:
                    unnamed_refused += 1
        elif name == "history":
            messages = data.get("messages")
            if messages.__class__ is not list:
                continue
            if not messages:
                if thread_id in live or (
                    (state := threads.get(thread_id)) is not None and state.checked
                ):
                    empty_history(line, False)
                continue
            if lacks is None:  # the line went the general way (beyond orjson): read it here
                lacks = _page_lacks(messages)
            callbacks, drafts = lacks
            if callbacks:
                refused = new.count(_NO_INVOCATION)
                stored_callback(line, callbacks, min(callbacks, refused))
            if drafts:
                draft(line, drafts, 0)
    # The engine counts a line as an event unless it said otherwise (_non_events).
    engine._line = line
    stream.count += unnamed
    stream.refused += unnamed_refused
    rules = tuple(
        RuleReport(rule, key, title, f.count, f.refused, tuple(f.lines))
        for key, (rule, title) in RULES.items()
        if (f := findings[key]).count
    )
    counts: dict[str, list[int]] = {
        h: [n + (state.checked if (state := threads.get(h)) is not None else 0), 0, 0, 0]
        for h, n in events.items()
    }
    for h, state in threads.items():
        counts.setdefault(h, [0, 0, 0, 0])[1] = len(state.order)
    for h, n in Counter(map(_thread_of, rejected)).items():
        if h is not None:
            counts.setdefault(h, [0, 0, 0, 0])[2] += n
    for g in engine._gaps:
        counts.setdefault(g.thread, [0, 0, 0, 0])[3] += 1
    reasons = Counter(map(_reason_of, rejected))
    stats = engine.stats.to_dict()
    return CheckReport(
        lines=engine.lines,
        events=stats["events"],
        stats=stats,
        rejected=tuple(rejected_list(engine._refusal_lines, rejected)),
        reasons=dict(sorted(reasons.items())),
        rules=rules,
        threads={h: ThreadCounts(*c) for h, c in counts.items()},
        gaps=tuple(engine._gaps),
    )


def _binds(data: dict[str, Any]) -> bool:
    """A ``system_info`` that binds to a turn: thinking, or a rich block that names
    no message (one that names its message is placed by ``messageId``)."""
    content = data.get("content")
    if not isinstance(content, str):
        return False
    if "\\" not in content and "thinking" not in content and "rich_block" not in content:
        # Without an escape, a payload whose type is thinking or rich_block holds that
        # word as it is; usage, metrics and announcements need no second decode.
        return False
    payload = parse_json_object(content)  # the engine's own reading of the payload
    if payload is None:
        return False
    kind = payload.get("type")
    return kind == "thinking" or (kind == "rich_block" and not is_id(payload.get("messageId")))


def _page_lacks(messages: list[Any]) -> tuple[int, int]:
    """How many stored callbacks of a page lack their turn id and how many drafts
    their parent id (what ``_history`` hands back for a page it read from orjson)."""
    callbacks = drafts = 0
    for message in messages:
        kind = _stored_kind(message)
        if kind == "callback":
            callbacks += 1
        elif kind == "draft":
            drafts += 1
    return callbacks, drafts


def _stored_kind(message: Any) -> str | None:
    """``callback`` for a stored callback without its turn id, ``draft`` for a draft
    without its parent id, else ``None`` (section 7's reading of a stored message)."""
    if message.__class__ is not dict:
        return None
    get = message.get
    message_id = get("id")
    # is_id inline (every stored message of every page): a non-empty string.
    if not isinstance(get("catId"), str) or not isinstance(message_id, str) or not message_id:
        return None  # user and system messages
    extra = get("extra")
    stream = extra.get("stream") if extra.__class__ is dict else None
    if stream.__class__ is not dict:
        stream = _NO_STREAM
    if get("origin") == "callback":
        return None if is_id(stream.get("invocationId")) else "callback"
    if get("isDraft") is True or message_id.startswith("draft-"):
        return None if is_id(stream.get("parentInvocationId")) else "draft"
    return None
