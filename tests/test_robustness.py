"""Whatever comes in, the engine keeps going.

Arbitrary bytes, text, JSON values, JSON with random field types, and mutated real
traces: the engine never raises (an exception from ``receive*`` is a bug, STYLE.md),
every refusal carries one of the five documented reasons, ``_check()`` holds, the
document is JSON-serialisable, the naive model agrees, and the CLI returns 0 or 1.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile import Reason, Reconciler, check_lines
from reconcile.cli import main

from . import strategies as gen
from .model import replay

REASONS = {"malformed_line", "malformed_event", "callback_without_invocation",
           "unbound_event", "stream_after_done"}
CONFORMANCE = Path(__file__).resolve().parent / "data" / "conformance"


def test_the_five_documented_reasons():
    assert {reason.value for reason in Reason} == REASONS


def checked(r: Reconciler) -> dict[str, Any]:
    """The engine's document, after every check that holds whatever the input."""
    r._check()
    document = r.to_dict()
    assert {entry["reason"] for entry in document["rejected"]} <= REASONS
    assert all(isinstance(reason.reason, Reason) for reason in r.rejected)
    json.dumps(document)  # serialisable (allow_nan: decoded dicts may carry NaN)
    return document


def run_lines(lines: list[Any]) -> dict[str, Any]:
    """Feed lines one by one; the engine's document must equal the model's."""
    r = Reconciler()
    for line in lines:
        r.receive_line(line)
    assert r.lines == len(lines)
    document = checked(r)
    assert gen.comparable(document) == gen.comparable(replay(lines))
    return document


def run_messages(messages: list[Any]) -> dict[str, Any]:
    """Feed decoded messages; compare with the model where it reads them the same way
    (the model takes str and bytes items as lines, the engine's receive_message does
    not, so those are compared as refusals only)."""
    r = Reconciler()
    for message in messages:
        r.receive_message(message)
    document = checked(r)
    if not any(isinstance(m, (str, bytes, bytearray)) for m in messages):
        assert gen.comparable(document) == gen.comparable(replay(messages))
    return document


# ---------------------------------------------------------------------- raw input

#: Every code point, lone surrogates included (st.text leaves those out by default).
_any_char = st.one_of(
    st.characters(codec=None, exclude_categories=()), st.characters(categories=["Cs"])
)


@gen.FAST
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_arbitrary_bytes_never_raise(lines):
    run_lines(lines)


@gen.FAST
@given(st.lists(st.text(alphabet=_any_char, max_size=30), max_size=8))
def test_arbitrary_text_never_raises(lines):
    run_lines(lines)


@gen.FAST
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["{", "}", "[", '"', ":", ",", "\\", "NaN", "-", "0", "e", "\ufeff",
                             '\\ud800', " ", "\n", "\r", "\t", '"event"', '"data"', "{}",
                             '"agent_message"', "null", "true", "1e400", "9" * 25]),
            st.text(alphabet=_any_char, max_size=3),
        ),
        max_size=20,
    ).map("".join),
    st.booleans(),
)
def test_json_like_garbage_never_raises(text, as_bytes):
    """Fragments of JSON and of the wire format glued together at random: the edge
    of strict JSON (NaN, BOM, lone surrogate escapes, huge numbers) is exercised."""
    line = text.encode("utf-8", "surrogatepass") if as_bytes else text
    run_lines([line, '{"event": "x", "data": {}, "k": ' + text + "}"])


_BIG = "1" + "0" * 25  # beyond 64 bits: the decoder's exact slow path
def _x(fields: str) -> str:
    """An ignored event whose extra top-level fields are ``fields`` (JSON text)."""
    return '{"event":"x","data":{},' + fields + "}"


#: (line, refused as malformed_line?) at the edges of strict JSON (section 1).
_EDGE_LINES = [
    (_x('"n":' + _BIG + ',"s":"\\ud800"'), True),  # lone surrogate escape
    ("\ufeff" + _x('"n":' + _BIG), True),  # byte-order mark
    (_x('"n":' + _BIG + ',"k":NaN'), True),
    (_x('"n":' + _BIG + ',"k":-Infinity'), True),
    (_x('"n":' + _BIG), False),
    (_x('"n":1e999'), False),  # valid syntax, however large
    (_x('"n":' + _BIG + ',"k":"\\udc00\\ud800"'), True),  # a reversed pair
    (_x('"n":' + _BIG + ',"k":"\\ud83d\\ude00"'), False),  # a real pair
    (_x('"n":' + _BIG + ',"k":"\x01"'), True),  # raw control character
    (_x('"n":' + _BIG) + " x", True),
    (_x('"n":0' + _BIG), True),  # leading zero
    (_x('"n":-' + _BIG + "e5"), False),
    (
        '{"event":"agent_message","data":{"type":"text","threadId":"t1","catId":"c",'
        '"content":"x","turnInvocationId":"T","timestamp":' + _BIG + "}}",
        False,
    ),
    (
        '{"event":"agent_message","data":{"type":"done","threadId":"t1","catId":"c","seq":'
        + _BIG + "}}",
        False,
    ),
]


@pytest.mark.parametrize(("line", "malformed"), _EDGE_LINES)
@pytest.mark.parametrize("form", ["str", "bytes", "bad utf-8 before", "bad utf-8 after"])
def test_strict_json_edges_agree_with_model(line, malformed, form):
    """Section 1's strict JSON at its edges, where a fast decoder and an exact one
    could differ: lone surrogate escapes, BOM, NaN, huge numbers, bad UTF-8."""
    item = {
        "str": line,
        "bytes": line.encode("utf-8"),
        "bad utf-8 before": b"\xff" + line.encode(),
        "bad utf-8 after": line.encode() + b"\xc3",
    }[form]
    document = run_lines([item])
    refused = [(r["line"], r["reason"]) for r in document["rejected"]]
    if malformed or form.startswith("bad"):
        assert refused == [(1, "malformed_line")]
    else:
        assert refused == [] and document["stats"]["events"] == 1


#: JSON values with big integers (beyond 64 bits) and deeper nesting.
_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=_any_char, max_size=8).filter(
            lambda s: not any("\ud800" <= c <= "\udfff" for c in s)
        ),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)


@gen.FAST
@given(st.lists(_json, max_size=6), st.booleans())
def test_arbitrary_json_values_never_raise(values, ascii_only):
    run_lines([json.dumps(v, ensure_ascii=ascii_only) for v in values])
    run_messages(values)


@gen.FAST
@given(
    st.lists(
        st.one_of(st.text(max_size=4), st.sampled_from(["agent_message", "history"]), _json),
        max_size=6,
    ),
    st.lists(_json, max_size=6),
)
def test_arbitrary_json_in_data_never_raises(names, datas):
    messages = [{"event": n, "data": d} for n, d in zip(names, datas)]
    run_lines([json.dumps(m) for m in messages])
    run_messages(messages)


# ---------------------------------------------------------------------- fields

_FIELDS = ("type", "threadId", "catId", "content", "origin", "invocationId",
           "turnInvocationId", "messageId", "error", "toolName", "toolInput", "timestamp",
           "seq", "seqEpoch", "isFinal", "extra")
_PAYLOAD_FIELDS = ("type", "invocationId", "catId", "text", "block", "messageId")
_TYPES = ("text", "tool_use", "tool_result", "system_info", "error", "done", "a2a_handoff")

#: Values of any type, biased towards ones that are nearly right.
_field_value = st.one_of(
    _json,
    st.sampled_from([None, "", "t1", "opus", "T1", "P1", "m1", "callback", "stream", 0, -1,
                     1.0, True, gen.TS0, 2**64, [], {}, {"isExplicitPost": True}]),
)


@st.composite
def _payloads(draw: Any) -> str:
    """system_info content: a JSON payload with random fields, or not JSON at all."""
    payload = draw(st.dictionaries(st.sampled_from(_PAYLOAD_FIELDS), _field_value, max_size=5))
    if draw(st.booleans()):
        payload["type"] = draw(
            st.sampled_from(["invocation_created", "thinking", "rich_block", "usage"])
        )
    if draw(st.integers(0, 3)) == 0:
        payload["block"] = {"id": draw(_field_value)}
    return draw(st.sampled_from(["", " ", "\n"])) + json.dumps(payload)


@st.composite
def random_agent_messages(draw: Any) -> dict[str, Any]:
    data = draw(st.dictionaries(st.sampled_from(_FIELDS), _field_value, max_size=9))
    if draw(st.integers(0, 4)):  # mostly a valid envelope, so the later steps run
        data["type"] = draw(st.sampled_from(_TYPES))
        data["threadId"] = draw(st.sampled_from(gen.THREADS))
        data["catId"] = draw(st.sampled_from(gen.CATS))
    if data.get("type") == "system_info" and draw(st.booleans()):
        data["content"] = draw(_payloads())
    return {"event": "agent_message", "data": data}


_MESSAGE_FIELDS = ("id", "catId", "content", "timestamp", "origin", "isDraft", "extra")


@st.composite
def random_history(draw: Any) -> dict[str, Any]:
    messages = draw(
        st.lists(
            st.one_of(
                _field_value,
                st.dictionaries(st.sampled_from(_MESSAGE_FIELDS), _field_value, max_size=6),
                st.fixed_dictionaries(
                    {
                        "id": st.sampled_from(["m1", "h1", "draft-T1", "draft-", ""]),
                        "catId": st.sampled_from(gen.CATS),
                        "extra": st.one_of(
                            _field_value, st.builds(lambda v: {"stream": {"invocationId": v}},
                                                    _field_value)
                        ),
                    },
                    optional={"origin": _field_value, "isDraft": _field_value,
                              "content": _field_value, "timestamp": _field_value},
                ),
            ),
            max_size=5,
        )
    )
    data: dict[str, Any] = {"threadId": draw(st.sampled_from(gen.THREADS)), "messages": messages}
    if draw(st.integers(0, 5)) == 0:
        data[draw(st.sampled_from(["threadId", "messages"]))] = draw(_field_value)
    return {"event": "history", "data": data}


@gen.FAST
@given(st.lists(st.one_of(random_agent_messages(), random_history()), max_size=12))
def test_random_field_types_never_raise(messages):
    run_messages(messages)
    run_lines([json.dumps(m) for m in messages])


@gen.FAST
@given(
    st.lists(
        st.one_of(random_agent_messages(), random_history()).map(
            lambda m: {**m, "data": {**m["data"], "seqEpoch": float("nan")}}
            if m["event"] == "agent_message" else m
        ),
        max_size=6,
    )
)
def test_decoded_messages_may_carry_values_json_lines_cannot(messages):
    """In-process callers may pass NaN (never in a strict JSON line); still no crash."""
    r = Reconciler()
    for message in messages:
        r.receive_message(message)
    checked(r)


# ---------------------------------------------------------------------- mutations


def _conformance_traces() -> list[list[bytes]]:
    traces = []
    for path in sorted(CONFORMANCE.glob("*/trace.jsonl")) if CONFORMANCE.is_dir() else []:
        lines = path.read_bytes().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        traces.append(lines)
    return traces


_CORPUS = _conformance_traces()

#: A real trace to start from: a conformance case, else a generated one.
_base_traces = (
    st.sampled_from(_CORPUS)
    if _CORPUS
    else gen.traces(min_size=1).map(lambda t: [json.dumps(e).encode() for e in t])
)


def _retype(line: bytes, draw: Any) -> bytes:
    """Decode a line, give one field of its data (or the envelope) a random value."""
    try:
        message = json.loads(line)
    except ValueError:
        return line
    if not isinstance(message, dict):
        return line
    data = message.get("data")
    target = data if isinstance(data, dict) and draw(st.integers(0, 4)) else message
    keys = sorted(target) + list(_FIELDS)
    target[draw(st.sampled_from(keys))] = draw(_field_value)
    return json.dumps(message).encode()


@st.composite
def mutated_traces(draw: Any) -> list[bytes]:
    lines = list(draw(_base_traces))
    for _ in range(draw(st.integers(1, 5))):
        how = draw(st.sampled_from(["drop", "duplicate", "swap", "flip", "cut", "retype",
                                    "retype", "insert"]))
        if not lines:
            lines.append(b"")
            continue
        i = draw(st.integers(0, len(lines) - 1), label="line")
        if how == "drop":
            del lines[i]
        elif how == "duplicate":
            lines.insert(draw(st.integers(0, len(lines))), lines[i])
        elif how == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif how in ("flip", "cut") and lines[i]:
            k = draw(st.integers(0, len(lines[i]) - 1))
            if how == "flip":
                flipped = lines[i][k] ^ draw(st.integers(1, 255))
                lines[i] = lines[i][:k] + bytes([flipped]) + lines[i][k + 1 :]
            else:
                lines[i] = lines[i][:k]
        elif how == "retype":
            lines[i] = _retype(lines[i], draw)
        elif how == "insert":
            lines.insert(i, draw(st.one_of(st.binary(max_size=20),
                                           st.sampled_from([b"", b" \r", b"{}", b"[]"]))))
    return lines


def split_file(raw: bytes) -> list[bytes]:
    """A file's lines as the CLI reads them: split on \\n, no final empty line."""
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


@gen.FAST
@given(mutated_traces())
def test_mutated_traces_never_raise_and_model_agrees(lines):
    run_lines(lines)
    run_lines([line.decode("utf-8", "replace") for line in lines])


def _cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    status = main(argv, out=out)
    return status, out.getvalue()


@gen.FAST
@given(
    st.one_of(
        mutated_traces().map(lambda lines: b"\n".join(lines) + b"\n"),
        mutated_traces().map(b"\n".join),
        st.binary(max_size=200),
        gen.traces().map(lambda t: "\n".join(json.dumps(e) for e in t).encode()),
    )
)
def test_cli_never_raises_on_any_file(tmp_path_factory, raw):
    """replay --json prints the engine's document and exits 0; check exits 1 exactly
    when something was refused or there was nothing to check."""
    path = tmp_path_factory.getbasetemp() / "robustness-trace.jsonl"
    path.write_bytes(raw)
    document = run_lines(split_file(raw))

    status, text = _cli(["replay", "--json", str(path)])
    assert status == 0
    assert json.loads(text) == json.loads(json.dumps(document))

    status, text = _cli(["check", str(path)])
    report = check_lines(split_file(raw))
    assert status == (1 if document["rejected"] or report.empty else 0)
    assert len(text.splitlines()) == len(document["rejected"]) + len(report.rules) + 1

    status, _ = _cli(["replay", str(path)])
    assert status == 0


# ---------------------------------------------------------------------- nesting

#: Deep enough to exhaust Python's recursion limit, yet within the 1024 levels the
#: engine's decoder accepts, so the line is strict JSON that the engine takes in.
_DEEP = 1000


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _receive_or_fail(r: Reconciler, how: str, item: Any) -> None:
    try:
        getattr(r, how)(item)
    except RecursionError:
        pytest.fail(f"engine bug: {how} raised RecursionError on a deeply nested value")


_DEEP_FIELDS = {
    # field: the rest of an agent_message that makes the engine look at it
    "origin": '"type":"text","content":"x"',
    "seqEpoch": '"type":"done","seq":1',
    "toolInput": '"type":"tool_use","turnInvocationId":"T1"',
    "extra": '"type":"text","content":"x","origin":"callback","invocationId":"T1"',
    "content": '"type":"tool_result","turnInvocationId":"T1"',
    "isFinal": '"type":"done"',
}


@pytest.mark.parametrize("field", sorted(_DEEP_FIELDS))
def test_deeply_nested_field_in_a_line_never_raises(field):
    """Regression for origin and seqEpoch: a strict JSON line (1002 levels, which the
    decoder accepts) once made receive_line raise RecursionError: the origin refusal's
    detail did repr(origin), and epoch_key's repr fallback after json.dumps hit the
    recursion limit. An exception from receive is a bug (STYLE.md, Engine)."""
    line = (
        '{"event":"agent_message","data":{"threadId":"t1","catId":"opus",'
        + f'{_DEEP_FIELDS[field]},"{field}":{_nested(_DEEP)}}}}}'
    )
    r = Reconciler()
    _receive_or_fail(r, "receive_line", line)
    r._check()
    assert {x.reason.value for x in r.rejected} <= REASONS


@pytest.mark.parametrize("field", sorted(_DEEP_FIELDS))
def test_deeply_nested_field_in_a_decoded_message_never_raises(field):
    """The same with a decoded dict 5000 levels deep (an in-process caller)."""
    value: Any = []
    for _ in range(5000):
        value = [value]
    data = json.loads('{"threadId":"t1","catId":"opus",' + _DEEP_FIELDS[field] + "}")
    data[field] = value
    r = Reconciler()
    _receive_or_fail(r, "receive_message", {"event": "agent_message", "data": data})
    r._check()
    assert {x.reason.value for x in r.rejected} <= REASONS


@pytest.mark.parametrize("depth", [2_000, 100_000])
@pytest.mark.parametrize("big_number", [False, True])
def test_nesting_beyond_the_decoder_limit_is_refused_not_raised(depth, big_number):
    """Past the decoder's depth limit a line is refused as malformed_line (also on the
    exact slow path taken when a number exceeds 64 bits)."""
    number = _BIG if big_number else "1"
    line = _x('"n":' + number + ',"k":' + _nested(depth))
    r = Reconciler()
    _receive_or_fail(r, "receive_line", line)
    r._check()
    assert [(x.line, x.reason.value) for x in r.rejected] == [(1, "malformed_line")]


def test_cli_replay_json_never_raises_on_a_deep_tool_input(tmp_path):
    """Regression: a tool_use whose toolInput is nested ~1000 levels is accepted by the
    engine, but ``replay --json`` raised RecursionError: orjson refuses to *encode*
    past 255 levels and the old fallback, json.dumps(indent=2), recursed once per level.
    ``main`` promises never to raise for bad input, and this input is not even bad."""
    line = (
        '{"event":"agent_message","data":{"type":"tool_use","threadId":"t1","catId":"opus",'
        '"turnInvocationId":"T1","toolName":"x","toolInput":' + _nested(_DEEP) + "}}"
    )
    path = tmp_path / "deep.jsonl"
    path.write_text(line + "\n")
    r = Reconciler()
    r.receive_line(line)
    assert r.rejected == () and len(r.bubbles("t1")) == 1
    try:
        status, text = _cli(["replay", "--json", str(path)])
    except RecursionError:
        pytest.fail("cli bug: reconcile replay --json raised RecursionError")
    assert status == 0
    assert orjson.loads(text)["threads"]["t1"][0]["tools"][0]["name"] == "x"
    assert _cli(["check", str(path)])[0] == 0


# ---------------------------------------------------------------- huge integers, BOM, feed


BIG = "9" * 5000  # more than Python's 4,300-digit limit for int <-> str conversion
HUGE = int(BIG, 16)  # the same size as an int, made without crossing the limit


def _line(data: str) -> str:
    return '{"event": "agent_message", "data": %s}' % data


@pytest.mark.parametrize("data", [
    '{"type": "text", "threadId": "t1", "catId": "o", "content": "x", "timestamp": %s}' % BIG,
    '{"type": "text", "threadId": "t1", "catId": "o", "content": "x", "seq": -%s}' % BIG,
    '{"type": "tool_use", "threadId": "t1", "catId": "o", "toolInput": {"n": %s}}' % BIG,
    '{"type": "text", "threadId": "t1", "catId": "o", "content": "x", "seqEpoch": [%s]}' % BIG,
], ids=["timestamp", "seq", "toolInput", "seqEpoch"])
def test_a_line_with_a_huge_integer_is_a_malformed_line(data):
    r = Reconciler()
    (refused,) = r.receive_line(_line(data))
    assert refused.reason is Reason.MALFORMED_LINE and "4300 digits" in refused.detail
    (refused,) = r.receive_line(_line(data).encode())
    assert refused.reason is Reason.MALFORMED_LINE
    r._check()


def test_a_system_info_payload_with_a_huge_integer_is_plain_text():
    content = json.dumps({"type": "invocation_created", "invocationId": "T1", "n": 0})
    content = content.replace('"n": 0', '"n": ' + BIG)
    r = Reconciler()
    line = json.dumps({"event": "agent_message", "data": {
        "type": "system_info", "threadId": "t1", "catId": "o", "content": content}})
    (added,) = r.receive_line(line)
    assert added.bubble.origin == "system" and added.bubble.text == content
    assert r.open_turn("t1", "o") is None


@pytest.mark.parametrize("field,value", [
    ("timestamp", HUGE), ("timestamp", -HUGE), ("seq", HUGE),
    ("content", HUGE), ("origin", HUGE), ("messageId", HUGE),
], ids=["timestamp", "negative-timestamp", "seq", "content", "origin", "messageId"])
def test_a_decoded_message_with_a_huge_integer_is_refused_not_raised(field, value):
    data = {"type": "text", "threadId": "t1", "catId": "o", "content": "x", field: value}
    r = Reconciler()
    (refused,) = r.receive_message({"event": "agent_message", "data": data})
    assert refused.reason is Reason.MALFORMED_EVENT
    assert "4300 digits" in refused.detail or "beyond" in refused.detail
    r._check()


def test_huge_integers_where_the_engine_does_not_read_numbers_are_carried():
    r = Reconciler()
    r.receive_message({"event": "agent_message", "data": {
        "type": "text", "threadId": "t1", "catId": "o", "content": "a",
        "turnInvocationId": "T1", "seq": 1, "seqEpoch": {"e": HUGE}}})
    r.receive_message({"event": "agent_message", "data": {
        "type": "tool_use", "threadId": "t1", "catId": "o", "turnInvocationId": "T1",
        "toolInput": HUGE, "seq": 1, "seqEpoch": {"e": HUGE}}})
    assert r.stats.duplicates == 1, "equal huge epochs are one epoch"
    r.receive_message({"event": "agent_message", "data": {
        "type": "tool_use", "threadId": "t1", "catId": "o", "turnInvocationId": "T1",
        "toolInput": HUGE, "seq": 1, "seqEpoch": {"e": HUGE + 1}}})
    assert r.stats.duplicates == 1, "a different huge epoch is a new epoch"
    assert r.bubbles("t1")[0].tools[0]["input"] == HUGE
    r.receive_message({"event": "history", "data": {"threadId": "t1", "messages": [
        {"id": "s1", "catId": "o", "content": "c", "timestamp": HUGE}]}})
    r._check()


def test_typed_events_with_a_huge_integer_are_refused_not_raised():
    from reconcile import AgentMessage

    r = Reconciler()
    (refused,) = r.receive(AgentMessage(type="text", thread="t1", cat="o", content="x",
                                        timestamp=HUGE))
    assert refused.reason is Reason.MALFORMED_EVENT


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", "\ufeff"])
def test_a_bom_is_named_as_a_bom(bom):
    line = _line('{"type": "done", "threadId": "t1", "catId": "o"}')
    line = bom + line.encode() if isinstance(bom, bytes) else bom + line
    (refused,) = Reconciler().receive_line(line)
    assert refused.reason is Reason.MALFORMED_LINE
    assert "byte-order mark (BOM)" in refused.detail and "not valid UTF-8" not in refused.detail


@pytest.mark.parametrize("wrong", ["trace.jsonl", b'{"event": "x", "data": {}}\n',
                                   bytearray(b"x")])
def test_feed_refuses_a_single_str_or_bytes_with_a_clear_type_error(wrong):
    from reconcile import LocalProtocolError, ReconcileError

    r = Reconciler()
    with pytest.raises(TypeError, match="iterable of lines") as info:
        r.feed(wrong)
    assert isinstance(info.value, ReconcileError) and isinstance(info.value, LocalProtocolError)
    assert "open(path, 'rb')" in str(info.value)
    assert r.lines == 0, "nothing was fed"


def test_receive_line_and_receive_refuse_wrong_types_as_type_errors():
    from reconcile import ReconcileError

    r = Reconciler()
    for call, arg in ((r.receive_line, 42), (r.receive, {"event": "x"})):
        with pytest.raises(TypeError) as info:
            call(arg)
        assert isinstance(info.value, ReconcileError)
