"""Shared Hypothesis strategies: ids, wire events, whole traces.

Everything here builds the *wire* form (``{"event": ..., "data": {...}}`` dicts), the
same thing a socket delivers and a trace stores, so a generated event can take every
path a real one can, including the wrong ones.

Ids come from deliberately small alphabets (threads t1..t3, agents opus/codex/gemini,
parents P1..P4, turns T1..T6, message ids m1..m4) so that collisions, the interesting
case for an identity-based engine, happen all the time. A whole trace first draws a
random *subset* of each alphabet (:func:`id_pools`), which makes an announcement and a
chunk that binds to it likely even in a short trace.

Timestamps are optional and not always increasing, ``seq`` is rare and sometimes
repeats or jumps, optional fields are sometimes explicitly ``null`` and ids are
sometimes ``""`` (which the protocol counts as absent).

Also here: :func:`comparable`, the one comparison every lockstep test uses (refusal
details are free text, PROTOCOL section 9), and :data:`FAST`, the shared settings
(no deadline; ``RECONCILE_HYPOTHESIS_SCALE=N`` runs N times more examples).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "ABSENT",
    "BLOCK_IDS",
    "CATS",
    "FAST",
    "FULL",
    "MESSAGE_IDS",
    "PARENTS",
    "SCALE",
    "THREADS",
    "TS0",
    "TURNS",
    "Pools",
    "agent_message",
    "announces",
    "callbacks",
    "comparable",
    "dones",
    "errors",
    "explicit_posts",
    "handoffs",
    "history_pages",
    "id_pools",
    "json_values",
    "malformed_events",
    "other_events",
    "rich_blocks",
    "stored_messages",
    "stories",
    "stream_chunks",
    "system_lines",
    "texts",
    "thinkings",
    "timestamps",
    "tool_events",
    "traces",
    "turn_scripts",
    "unknown_types",
    "wire_events",
]

THREADS = ("t1", "t2", "t3")
CATS = ("opus", "codex", "gemini")
PARENTS = ("P1", "P2", "P3", "P4")
TURNS = ("T1", "T2", "T3", "T4", "T5", "T6")
MESSAGE_IDS = ("m1", "m2", "m3", "m4")
BLOCK_IDS = ("k1", "k2", "k3")
STORED_IDS = ("h1", "h2", "h3")  # ids of turn-less stored messages
TS0 = 1767225600000

#: Marks an optional field that is left out of the wire dict altogether.
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()

#: Multiplies every example count below: ``RECONCILE_HYPOTHESIS_SCALE=20 pytest ...``
#: for a long bug hunt; the default keeps the suite fast.
SCALE = max(1, int(os.environ.get("RECONCILE_HYPOTHESIS_SCALE", "1") or 1))

#: Settings for every property in these files: the machine is noisy, so no deadline.
FAST = settings(
    deadline=None,
    max_examples=100 * SCALE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclasses.dataclass(frozen=True)
class Pools:
    """The ids one trace draws from (a subset of the full alphabets)."""

    threads: tuple[str, ...] = THREADS
    cats: tuple[str, ...] = CATS
    parents: tuple[str, ...] = PARENTS
    turns: tuple[str, ...] = TURNS
    message_ids: tuple[str, ...] = MESSAGE_IDS


FULL = Pools()


def _subset(pool: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True).map(
        tuple
    )


def id_pools() -> st.SearchStrategy[Pools]:
    """Small random subsets of each alphabet: the fewer ids, the more collisions."""
    return st.builds(
        Pools,
        threads=_subset(THREADS),
        cats=_subset(CATS),
        parents=_subset(PARENTS),
        turns=_subset(TURNS),
        message_ids=_subset(MESSAGE_IDS),
    )


# ---------------------------------------------------------------------- values

#: Optional timestamps, in an order that is not always increasing (ms, non-negative).
timestamps = st.sampled_from([ABSENT, None, *(TS0 + 100 * k for k in range(8))])

#: Short texts; mostly from a tiny alphabet so equal texts happen, sometimes anything.
texts = st.one_of(
    st.sampled_from(["", "a", "b", "Hel", "lo", "final", "Canceled", " a", "b\n", "\t"]),
    st.text(max_size=6),
)

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)

#: Any JSON value (what a decoded line may hold anywhere).
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)


def _opt(strategy: st.SearchStrategy[Any], null: bool = True) -> st.SearchStrategy[Any]:
    """Absent, sometimes explicit null, or a value."""
    options = [st.just(ABSENT), strategy]
    if null:
        options.append(st.just(None))
    return st.one_of(*options)


def _maybe_id(pool: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """An id field: absent, null, "" (counts as absent) or an id from the pool."""
    return st.one_of(st.just(ABSENT), st.sampled_from(pool), st.just(None), st.just(""))


def agent_message(type_: Any, thread: Any, cat: Any, **fields: Any) -> dict[str, Any]:
    """An ``agent_message`` in wire form; fields equal to :data:`ABSENT` are left out."""
    data = {"type": type_, "threadId": thread, "catId": cat}
    data.update({k: v for k, v in fields.items() if v is not ABSENT})
    return {"event": "agent_message", "data": {k: v for k, v in data.items() if v is not ABSENT}}


def _stamps(draw: Any) -> dict[str, Any]:
    """timestamp (usually), seq and seqEpoch (rarely)."""
    out = {"timestamp": draw(timestamps)}
    if draw(st.integers(0, 4)) == 0:
        out["seq"] = draw(st.integers(0, 6))
        out["seqEpoch"] = draw(st.sampled_from([ABSENT, None, "e1", "e2", 1]))
    return out


def _binding(draw: Any, pools: Pools) -> dict[str, Any]:
    """The ids of a stream-side event: parent, turn, both, none, or empty ones."""
    how = draw(st.sampled_from(["parent", "parent", "turn", "both", "none", "empty"]))
    if how == "parent":
        return {"invocationId": draw(st.sampled_from(pools.parents))}
    if how == "turn":
        return {"turnInvocationId": draw(st.sampled_from(pools.turns))}
    if how == "both":
        return {
            "invocationId": draw(st.sampled_from(pools.parents)),
            "turnInvocationId": draw(st.sampled_from(pools.turns)),
        }
    if how == "empty":
        return {
            "invocationId": draw(st.sampled_from([None, ""])),
            "turnInvocationId": draw(st.sampled_from([ABSENT, None, ""])),
        }
    return {}


def _where(draw: Any, pools: Pools) -> tuple[str, str]:
    return draw(st.sampled_from(pools.threads)), draw(st.sampled_from(pools.cats))


# ---------------------------------------------------------------------- events


@st.composite
def announces(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    """``invocation_created``: turn T under parent P (payload catId sometimes names
    another agent than the envelope; rarely a bad invocationId)."""
    thread, cat = _where(draw, pools)
    payload: dict[str, Any] = {"type": "invocation_created"}
    good = draw(st.integers(0, 9)) > 0  # rarely a bad invocationId: malformed_event
    payload["invocationId"] = draw(
        st.sampled_from(pools.turns) if good else st.sampled_from([ABSENT, "", 5, None])
    )
    if draw(st.integers(0, 3)) == 0:
        payload["catId"] = draw(st.sampled_from([*pools.cats, 7]))
    payload = {k: v for k, v in payload.items() if v is not ABSENT}
    return agent_message(
        "system_info",
        thread,
        cat,
        content=json.dumps(payload),
        invocationId=draw(st.one_of(st.sampled_from(pools.parents), st.just(ABSENT))),
        **_stamps(draw),
    )


@st.composite
def stream_chunks(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    """A stream ``text`` chunk bound by parent id, turnInvocationId, or nothing."""
    thread, cat = _where(draw, pools)
    return agent_message(
        "text",
        thread,
        cat,
        content=draw(texts),
        origin=draw(st.sampled_from(["stream", ABSENT, None])),
        **_binding(draw, pools),
        **_stamps(draw),
    )


def _callback_ids(draw: Any, pools: Pools) -> dict[str, Any]:
    how = draw(st.sampled_from(["inv", "inv", "turn", "both", "missing", "empty"]))
    turn = draw(st.sampled_from(pools.turns))
    if how == "inv":
        return {"invocationId": turn}
    if how == "turn":
        return {"turnInvocationId": turn}
    if how == "both":
        # turnInvocationId wins; invocationId may name another turn.
        return {"turnInvocationId": turn, "invocationId": draw(st.sampled_from(pools.turns))}
    if how == "empty":
        return {"invocationId": draw(st.sampled_from([None, ""]))}
    return {}


@st.composite
def callbacks(draw: Any, pools: Pools = FULL, explicit: bool | None = None) -> dict[str, Any]:
    """A callback snapshot: turn id via invocationId or turnInvocationId (or missing),
    optional messageId, sometimes an explicit post."""
    thread, cat = _where(draw, pools)
    if explicit is None:
        extra = draw(
            st.sampled_from(
                [ABSENT, ABSENT, {"isExplicitPost": True}, {"isExplicitPost": False}, None, 3]
            )
        )
    else:
        extra = {"isExplicitPost": True} if explicit else ABSENT
    return agent_message(
        "text",
        thread,
        cat,
        content=draw(texts),
        origin="callback",
        messageId=draw(_maybe_id(pools.message_ids)),
        extra=extra,
        **_callback_ids(draw, pools),
        **_stamps(draw),
    )


def explicit_posts(pools: Pools = FULL) -> st.SearchStrategy[dict[str, Any]]:
    """Callbacks with ``extra.isExplicitPost: true`` (section 4.3)."""
    return callbacks(pools, explicit=True)


@st.composite
def dones(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    thread, cat = _where(draw, pools)
    return agent_message(
        "done",
        thread,
        cat,
        isFinal=draw(st.sampled_from([ABSENT, True, False])),
        **_binding(draw, pools),
        **_stamps(draw),
    )


@st.composite
def errors(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    """``error`` with its text in ``error``, ``content``, both, or neither ("" too)."""
    thread, cat = _where(draw, pools)
    text = st.sampled_from(["", "rate limited", "boom"])
    return agent_message(
        "error",
        thread,
        cat,
        error=draw(_opt(text)),
        content=draw(_opt(text)),
        **_binding(draw, pools),
        **_stamps(draw),
    )


@st.composite
def tool_events(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    thread, cat = _where(draw, pools)
    return agent_message(
        draw(st.sampled_from(["tool_use", "tool_result"])),
        thread,
        cat,
        toolName=draw(_opt(st.sampled_from(["grep", "edit"]))),
        toolInput=draw(_opt(json_values)),
        content=draw(_opt(texts)),
        **_binding(draw, pools),
        **_stamps(draw),
    )


@st.composite
def thinkings(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    """``system_info`` thinking; a non-string ``text`` counts as ""."""
    thread, cat = _where(draw, pools)
    payload: dict[str, Any] = {"type": "thinking"}
    text = draw(st.one_of(texts, st.just(ABSENT), st.just(5), st.just(None)))
    if text is not ABSENT:
        payload["text"] = text
    if draw(st.integers(0, 4)) == 0:
        payload["catId"] = draw(st.sampled_from(pools.cats))
    return agent_message(
        "system_info",
        thread,
        cat,
        content=json.dumps(payload),
        **_binding(draw, pools),
        **_stamps(draw),
    )


@st.composite
def rich_blocks(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    """``system_info`` rich_block, with or without messageId; sometimes a bad block."""
    thread, cat = _where(draw, pools)
    block = draw(
        st.one_of(
            st.sampled_from(BLOCK_IDS).map(lambda b: {"id": b, "kind": "card"}),
            st.sampled_from(BLOCK_IDS).map(lambda b: {"id": b}),
            st.sampled_from([None, "k1", {"id": 3}, {}, [1]]),
        )
    )
    payload: dict[str, Any] = {"type": "rich_block", "block": block}
    message_id = draw(_maybe_id(pools.message_ids))
    if message_id is not ABSENT:
        payload["messageId"] = message_id
    return agent_message(
        "system_info",
        thread,
        cat,
        content=json.dumps(payload),
        **_binding(draw, pools),
        **_stamps(draw),
    )


@st.composite
def system_lines(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    """Plain ``system_info`` (a system bubble) or a JSON payload that makes nothing."""
    thread, cat = _where(draw, pools)
    content = draw(
        st.one_of(
            st.sampled_from(
                [
                    "Canceled",
                    "",
                    "[1, 2]",
                    "3",
                    '"quoted"',
                    "{not json",
                    '{"type": "usage", "tokens": 5}',
                    '{"type": "liveness"}',
                    "{}",
                    ' {"type": "thinking", "text": "spaced"}',
                ]
            ),
            texts,
        )
    )
    return agent_message(
        "system_info",
        thread,
        cat,
        content=content,
        invocationId=draw(_maybe_id(pools.parents)),
        **_stamps(draw),
    )


@st.composite
def handoffs(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    thread, cat = _where(draw, pools)
    return agent_message(
        "a2a_handoff", thread, cat, content=draw(_opt(texts)), **_stamps(draw)
    )


@st.composite
def stored_messages(draw: Any, pools: Pools = FULL) -> Any:
    """One message of a history page: callbacks (with or without a turn), drafts,
    stream messages of a turn, turn-less messages, user messages, junk."""
    kind = draw(
        st.sampled_from(["callback", "callback", "draft", "stream", "turnless", "user", "junk"])
    )
    if kind == "junk":
        return draw(st.sampled_from([5, "x", None, {"id": "", "catId": "opus"}, {"catId": 3}]))
    cat = draw(st.sampled_from(pools.cats))
    turn = draw(st.sampled_from(pools.turns))
    message: dict[str, Any] = {
        "content": draw(st.one_of(texts, st.just(None))),
        "timestamp": draw(st.one_of(timestamps, st.just(1.5))),
    }
    stream_extra = {"stream": {"invocationId": turn}}
    if kind == "callback":
        # The turn comes from extra.stream, or from a "draft-T" id, or there is none.
        message["id"] = draw(st.sampled_from(pools.message_ids + STORED_IDS + (f"draft-{turn}",)))
        message["origin"] = "callback"
        message["extra"] = draw(st.sampled_from([ABSENT, stream_extra, {}]))
    elif kind == "draft":
        message["id"] = draw(st.sampled_from([f"draft-{turn}", "draft-", "d1"]))
        message["isDraft"] = draw(st.sampled_from([True, ABSENT]))
        if draw(st.booleans()):
            message["extra"] = stream_extra
    elif kind == "stream":
        message["id"] = draw(st.sampled_from(STORED_IDS + pools.message_ids))
        message["extra"] = stream_extra
        message["origin"] = draw(st.sampled_from([ABSENT, "stream"]))
    elif kind == "turnless":
        message["id"] = draw(st.sampled_from(STORED_IDS))
    else:  # a user message: no catId
        message["id"] = draw(st.sampled_from(["u1", "u2"]))
        return {k: v for k, v in message.items() if v is not ABSENT}
    message["catId"] = cat
    return {k: v for k, v in message.items() if v is not ABSENT}


@st.composite
def history_pages(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    return {
        "event": "history",
        "data": {
            "threadId": draw(st.sampled_from(pools.threads)),
            "messages": draw(st.lists(stored_messages(pools), max_size=5)),
        },
    }


@st.composite
def unknown_types(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    thread, cat = _where(draw, pools)
    return agent_message(
        draw(st.sampled_from(["tool_progress", "typing", "Text", ""])),
        thread,
        cat,
        content=draw(st.one_of(texts, st.just(5))),
        **_stamps(draw),
    )


@st.composite
def other_events(draw: Any, pools: Pools = FULL) -> dict[str, Any]:
    """Socket events other than agent_message and history: counted and ignored."""
    return {
        "event": draw(st.sampled_from(["intent_mode", "queue_updated", "heartbeat", "History"])),
        "data": {
            "threadId": draw(st.sampled_from(pools.threads)),
            "invocationId": draw(st.sampled_from(pools.parents)),
        },
        "t": draw(st.integers(0, 9)),
    }


_CHECKED_FIELDS = (
    "timestamp",
    "content",
    "invocationId",
    "turnInvocationId",
    "messageId",
    "error",
    "toolName",
    "seq",
    "origin",
    "type",
    "threadId",
    "catId",
)


@st.composite
def malformed_events(draw: Any, pools: Pools = FULL) -> Any:
    """A well-formed event with one field of the wrong type (or a broken envelope)."""
    base = draw(
        st.one_of(stream_chunks(pools), callbacks(pools), dones(pools), announces(pools))
    )
    how = draw(st.sampled_from(["field", "field", "field", "missing", "envelope", "history"]))
    if how == "missing":  # text or system_info without its content; envelope fields
        data = dict(base["data"])
        data.pop(draw(st.sampled_from(["content", "content", "type", "threadId", "catId"])), None)
        return {"event": "agent_message", "data": data}
    if how == "envelope":
        return draw(
            st.sampled_from(
                [
                    {"event": "agent_message"},
                    {"event": "agent_message", "data": "x"},
                    {"event": 5, "data": {}},
                    {"data": base["data"]},
                    [base],
                    "agent_message",
                    None,
                ]
            )
        )
    if how == "history":
        return draw(
            st.sampled_from(
                [
                    {"event": "history", "data": {"threadId": "t1"}},
                    {"event": "history", "data": {"threadId": 1, "messages": []}},
                    {"event": "history", "data": {"threadId": "t1", "messages": {}}},
                ]
            )
        )
    data = dict(base["data"])
    data[draw(st.sampled_from(_CHECKED_FIELDS))] = draw(
        st.sampled_from([1.5, True, 7, [], {}, "weird", -1])
    )
    return {"event": "agent_message", "data": data}


def wire_events(pools: Pools = FULL, malformed: bool = True) -> st.SearchStrategy[Any]:
    """Any one wire event. Stream-side events and callbacks are the most common."""
    parts = [
        announces(pools),
        announces(pools),
        stream_chunks(pools),
        stream_chunks(pools),
        stream_chunks(pools),
        callbacks(pools),
        callbacks(pools),
        explicit_posts(pools),
        dones(pools),
        dones(pools),
        errors(pools),
        tool_events(pools),
        thinkings(pools),
        rich_blocks(pools),
        system_lines(pools),
        handoffs(pools),
        history_pages(pools),
        unknown_types(pools),
        other_events(pools),
    ]
    if malformed:
        parts.append(malformed_events(pools))
    return st.one_of(*parts)


def _bound_ids(draw: Any, parent: str | None, turn: str) -> dict[str, Any]:
    """How one stream-side event of a known turn names it: parent, turn id, or nothing."""
    how = draw(st.sampled_from(["parent", "parent", "turn", "none"]))
    if how == "parent" and parent is not None:
        return {"invocationId": parent}
    if how == "turn":
        return {"turnInvocationId": turn}
    return {}


@st.composite
def turn_scripts(draw: Any, pools: Pools = FULL) -> list[list[dict[str, Any]]]:
    """One agent's turn as the server would send it, split into independent parts:
    the stream (announce, chunks, tools, thinking, then done / error / nothing) and
    the callbacks, which the caller may interleave anywhere (early or late)."""
    thread, cat = _where(draw, pools)
    turn = draw(st.sampled_from(pools.turns))
    parent = draw(st.one_of(st.sampled_from(pools.parents), st.none()))
    stream: list[dict[str, Any]] = []
    if draw(st.integers(0, 5)):  # usually announced
        stream.append(
            agent_message(
                "system_info",
                thread,
                cat,
                content=json.dumps({"type": "invocation_created", "invocationId": turn}),
                invocationId=parent if parent is not None else ABSENT,
                **_stamps(draw),
            )
        )
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "text", "text", "tool_use", "thinking", "block"]))
        ids = _bound_ids(draw, parent, turn)
        if kind == "text":
            event = agent_message(
                "text", thread, cat, content=draw(texts), origin="stream", **ids, **_stamps(draw)
            )
        elif kind == "tool_use":
            event = agent_message(
                "tool_use", thread, cat, toolName="grep", toolInput={"q": 1}, **ids,
                **_stamps(draw),
            )
        elif kind == "thinking":
            payload = json.dumps({"type": "thinking", "text": draw(texts)})
            event = agent_message(
                "system_info", thread, cat, content=payload, **ids, **_stamps(draw)
            )
        else:
            payload = json.dumps(
                {"type": "rich_block", "block": {"id": draw(st.sampled_from(BLOCK_IDS))}}
            )
            event = agent_message(
                "system_info", thread, cat, content=payload, **ids, **_stamps(draw)
            )
        stream.append(event)
    end = draw(st.sampled_from(["done", "done", "error", "none"]))
    if end != "none":
        stream.append(
            agent_message(
                end,
                thread,
                cat,
                error="boom" if end == "error" else ABSENT,
                **_bound_ids(draw, parent, turn),
                **_stamps(draw),
            )
        )
    parts = [stream]
    for _ in range(draw(st.integers(0, 2))):
        id_field = draw(st.sampled_from(["invocationId", "turnInvocationId"]))
        parts.append(
            [
                agent_message(
                    "text",
                    thread,
                    cat,
                    content=draw(texts),
                    origin="callback",
                    messageId=draw(_maybe_id(pools.message_ids)),
                    extra=draw(st.sampled_from([ABSENT, ABSENT, {"isExplicitPost": True}])),
                    **{id_field: turn},
                    **_stamps(draw),
                )
            ]
        )
    return parts


@st.composite
def stories(draw: Any, pools: Pools = FULL, max_turns: int = 5) -> list[Any]:
    """Several turns' scripts interleaved at random (so callbacks arrive early, on
    time, or after newer turns began), with some noise events mixed in."""
    parts: list[list[Any]] = []
    for _ in range(draw(st.integers(1, max_turns))):
        parts.extend(draw(turn_scripts(pools)))
    parts.append(draw(st.lists(wire_events(pools), max_size=5)))
    trace: list[Any] = []
    while True:
        live = [p for p in parts if p]
        if not live:
            return trace
        trace.append(live[draw(st.integers(0, len(live) - 1))].pop(0))


@st.composite
def traces(
    draw: Any,
    min_size: int = 0,
    max_size: int = 30,
    malformed: bool = True,
    pools: Pools | None = None,
) -> list[Any]:
    """A whole trace (a list of wire events) over one random set of id pools (or
    ``pools``): either interleaved turn stories or a free mix of every kind of event."""
    if pools is None:
        pools = draw(id_pools())
    if draw(st.booleans()):
        trace = draw(stories(pools))[:max_size]
        if len(trace) >= min_size:
            return trace
    return draw(st.lists(wire_events(pools, malformed), min_size=min_size, max_size=max_size))


# ---------------------------------------------------------------------- comparing


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A section 9 document with refusal details dropped: they are free text."""
    out = dict(document)
    out["rejected"] = [(r["line"], r["reason"]) for r in document["rejected"]]
    return out
