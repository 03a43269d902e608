"""reconcile._wire: strict JSON, blank lines, ids, field checks, epochs."""

from __future__ import annotations

import pytest

from reconcile._wire import (
    WireError,
    check_agent_message,
    decode_json,
    epoch_key,
    is_blank,
    is_id,
    parse_json_object,
)


@pytest.mark.parametrize("raw", [
    b"NaN", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}',
    b"\xef\xbb\xbf{}",  # byte-order mark
    b'"\\ud800"', b'{"k": "\\udc00"}', b'{"\\ud800": 1}',  # unpaired surrogate escapes
    b"\xff", b'"\xed\xa0\x80"',  # not UTF-8 / encoded surrogate
    b"{not json", b"", b"{}{}", b"[1,]",
])
def test_strict_json_refuses(raw):
    with pytest.raises(WireError):
        decode_json(raw)


def test_strict_json_refuses_text_input_too():
    with pytest.raises(WireError):
        decode_json('{"a": NaN}')
    with pytest.raises(WireError):
        decode_json("\ufeff{}")


def test_paired_surrogates_and_whitespace_are_fine():
    assert decode_json(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert decode_json(b' {"a": 1}\r') == {"a": 1}


def test_huge_integers_stay_exact_integers():
    # orjson would turn these into floats; strict JSON says they are integers.
    big = 2**80
    assert decode_json(f'{{"timestamp": {big}}}'.encode()) == {"timestamp": big}
    assert type(decode_json(b"12345678901234567890123")) is int
    # A long run of digits inside a string goes the slow path but decodes the same.
    assert decode_json(b'{"s": "12345678901234567890123"}') == {"s": "12345678901234567890123"}


@pytest.mark.parametrize("number", [-(2**63) - 1, -(10**19) + 1, 2**64, -(2**70)])
def test_integers_just_outside_64_bits_stay_integers(number):
    # orjson turns these into floats without an error; they have 19 or more digits.
    value = decode_json(f'{{"timestamp": {number}}}'.encode())["timestamp"]
    assert type(value) is int and value == number
    assert decode_json(f"[{number}]") == [number]


def test_huge_number_path_takes_bytearray_too():
    assert decode_json(bytearray(b'{"n": 123456789012345678901234}')) == {"n": 123456789012345678901234}


def test_cyclic_epoch_from_an_in_process_caller_equals_only_itself():
    loop: list = []
    loop.append(loop)
    assert epoch_key(loop) == epoch_key(loop)
    other: list = []
    other.append(other)
    assert epoch_key(loop) != epoch_key(other)


def test_huge_exponents_are_numbers_not_errors():
    assert decode_json(b"1e400") == float("inf")


def test_huge_number_path_still_refuses_bad_utf8_and_surrogates():
    with pytest.raises(WireError):
        decode_json(b'[12345678901234567890123, "\xff"]')
    with pytest.raises(WireError):
        decode_json(b'[12345678901234567890123, "\\ud800"]')
    with pytest.raises(WireError):
        decode_json(b'[12345678901234567890123, NaN]')


@pytest.mark.parametrize("line,blank", [
    (b"", True), (b"  \t\r", True), ("\t", True), (b" x ", False), ("\u00a0", False),
    # a line as a file yields it, with its own terminator
    (b"\n", True), (" \r\n", True), (b"{}\n", False),
])
def test_blank_lines_are_spaces_tabs_and_cr_only(line, blank):
    assert is_blank(line) is blank


@pytest.mark.parametrize("value,ok", [("T1", True), ("", False), (None, False), (1, False), (["a"], False)])
def test_an_id_is_a_non_empty_string(value, ok):
    assert is_id(value) is ok


@pytest.mark.parametrize("text,expected", [
    ('{"type": "thinking"}', {"type": "thinking"}),
    (' \n{"a": 1}', {"a": 1}),
    ("[1, 2]", None), ("42", None), ('"{}"', None), ("Canceled", None),
    ("{broken", None), ('{"a": NaN}', None),
])
def test_system_info_payload_is_a_json_object_or_nothing(text, expected):
    assert parse_json_object(text) == expected


def test_epochs_compare_as_canonical_json():
    assert epoch_key(None) is None and epoch_key("e1") == "e1"
    assert epoch_key({"a": 1, "b": 2}) == epoch_key({"b": 2, "a": 1})
    keys = {epoch_key(1), epoch_key(1.0), epoch_key(True)}
    assert len(keys) == 3, "1, 1.0 and true are different epochs"
    assert epoch_key("1") != epoch_key(1)


def base(kind="text", **data):
    return {"type": kind, "threadId": "t1", "catId": "opus", **data}


@pytest.mark.parametrize("data", [
    base(content=1), base(content="x", invocationId=5), base(content="x", turnInvocationId=[]),
    base(content="x", messageId={}), base("error", error=3), base("tool_use", toolName=1),
    base(content="x", timestamp=1.5), base(content="x", timestamp=True), base(content="x", timestamp="1"),
    base(content="x", seq=True), base(content="x", seq=1.0),
    base(), base(content="x", origin="other"), base(content="x", origin=1),
    base("system_info"), base("system_info", content=None),
])
def test_wrong_field_types_are_described(data):
    problem = check_agent_message(data, data["type"])
    assert isinstance(problem, str) and problem


@pytest.mark.parametrize("data", [
    base(content="x"), base(content="x", origin=None, invocationId=None, timestamp=None, seq=None),
    base(content="x", origin="callback", timestamp=2**70, seq=-3),
    base("tool_use", toolInput=[1, {"a": None}], isFinal="yes", extra=5, metadata=[]),
    base("done"), base("a2a_handoff"), base("error"),
])
def test_right_or_unchecked_fields_pass(data):
    assert check_agent_message(data, data["type"]) is None
