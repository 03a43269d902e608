"""Section 1-2 wire rules as a client sees them: which lines are skipped, which are
refused, and the words of each refusal (a person reads them in ``reconcile check``).

Written against the survivors of a mutation run (docs/testing.md): each test pins a
behaviour the rest of the suite let change unnoticed.
"""

from __future__ import annotations

import json

import pytest

from reconcile import Reason, Reconciler, Rejected

from .helpers import msg


def _refusal(changes) -> Rejected:
    (change,) = changes
    assert isinstance(change, Rejected)
    return change


# ---------------------------------------------------------------- blank lines


@pytest.mark.parametrize("line", ["XX", "\t X", b"\x0c", b"\x0b", "\x0c"])
def test_only_space_tab_cr_and_lf_make_a_line_blank(line):
    # A blank line is skipped silently; anything else is a line to decode, and these
    # are not JSON: refused, with a line number of their own.
    r = Reconciler()
    refusal = _refusal(r.receive_line(line))
    assert refusal.reason is Reason.MALFORMED_LINE
    assert refusal.line == 1


@pytest.mark.parametrize("line", [b" \t\r\n", " \t\r\n", b"", ""])
def test_a_blank_line_is_skipped_without_a_refusal(line):
    r = Reconciler()
    assert r.receive_line(line) == ()
    assert list(r.rejected) == []


# ---------------------------------------------------------------- field types


@pytest.mark.parametrize("value,words", [
    (5, "got the number 5"),
    (1.5, "got the number 1.5"),
    (True, "got a boolean"),
    ({}, "got an object"),
    ([], "got an array"),
])
def test_a_string_field_of_another_type_is_refused_naming_what_came(value, words):
    r = Reconciler()
    refusal = _refusal(r.receive_line(json.dumps(msg("text", content="x", messageId=value))))
    assert refusal.reason is Reason.MALFORMED_EVENT
    assert refusal.detail == f"messageId must be a string, {words}"


def test_a_string_field_of_a_type_json_cannot_carry_is_named_by_its_class():
    r = Reconciler()
    refusal = _refusal(r.receive_message(msg("text", content="x", toolName=b"raw")))
    assert refusal.detail == "toolName must be a string, got bytes"


def test_a_huge_integer_in_a_string_field_is_described_not_printed():
    huge = 10**4300
    for value in (huge, -huge):
        r = Reconciler()
        refusal = _refusal(r.receive_message(msg("text", content=value)))
        assert refusal.reason is Reason.MALFORMED_EVENT
        assert refusal.detail == (
            "content must be a string, got an integer of more than 4300 digits "
            f"({value.bit_length()} bits)"
        )


def test_the_largest_printable_integer_is_printed():
    almost = 10**4300 - 1
    r = Reconciler()
    refusal = _refusal(r.receive_message(msg("text", content=almost)))
    assert refusal.detail.startswith("content must be a string, got the number 9999")


@pytest.mark.parametrize("field,value,words", [
    ("timestamp", "5", "timestamp must be an integer of ms, got a string"),
    ("timestamp", 1.5, "timestamp must be an integer of ms, got the number 1.5"),
    ("timestamp", True, "timestamp must be an integer of ms, got a boolean"),
    ("seq", "7", "seq must be an integer, got a string"),
    ("seq", False, "seq must be an integer, got a boolean"),
])
def test_timestamp_and_seq_must_be_integers(field, value, words):
    r = Reconciler()
    refusal = _refusal(r.receive_line(json.dumps(msg("done", **{field: value}))))
    assert refusal.reason is Reason.MALFORMED_EVENT
    assert refusal.detail == words


def test_text_without_content_is_refused_even_with_good_numbers():
    # The integer checks come first and pass: the refusal names the missing content.
    r = Reconciler()
    refusal = _refusal(r.receive_line(json.dumps(msg("text", timestamp=5, seq=1))))
    assert refusal.reason is Reason.MALFORMED_EVENT
    assert refusal.detail == "text needs a string content"


def test_system_info_without_content_is_refused():
    r = Reconciler()
    refusal = _refusal(r.receive_line(json.dumps(msg("system_info", timestamp=5))))
    assert refusal.reason is Reason.MALFORMED_EVENT
    assert refusal.detail == "system_info needs a string content"




@pytest.mark.parametrize("origin,shown", [
    ("x" * 50, repr("x" * 40)),
    ("streamed", "'streamed'"),
    (3, "the number 3"),
])
def test_an_unknown_origin_is_refused_and_shown_cut_short(origin, shown):
    r = Reconciler()
    refusal = _refusal(r.receive_line(json.dumps(msg("text", content="x", origin=origin))))
    assert refusal.reason is Reason.MALFORMED_EVENT
    assert refusal.detail == f"origin must be 'stream' or 'callback', got {shown}"


class _Text(str):
    """A str subclass, as an in-process caller might pass: it takes the careful path."""


@pytest.mark.parametrize("origin", ["callback", "stream", None])
def test_a_str_subclass_is_a_string_for_every_known_origin(origin):
    r = Reconciler()
    data = {"content": _Text("hello")}
    if origin is not None:
        data["origin"] = origin
    if origin == "callback":
        data["invocationId"] = "T1"
    changes = r.receive_message(msg("text", **data, turnInvocationId="T1"))
    assert not any(isinstance(c, Rejected) for c in changes)
    assert [b.text for b in r.bubbles("t1")] == ["hello"]


def test_other_types_need_no_content():
    # A str subclass sends the event down the careful path, which must agree.
    for name in ("grep", _Text("grep")):
        r = Reconciler()
        changes = r.receive_message(msg("tool_use", toolName=name, turnInvocationId="T1"))
        assert not any(isinstance(c, Rejected) for c in changes)


# ---------------------------------------------------------------- strict JSON, huge numbers


def test_a_line_with_a_huge_number_still_refuses_what_strict_json_refuses():
    # A number beyond a double sends the line to the exact decoder; the refusal words
    # must stay the ones a person can act on.
    cases = {
        '[1e400, "\\udfff"]': "not strict JSON: unpaired surrogate escape",
        '{"a": 1e400, "b": {"c": ["\\ud800"]}}': "not strict JSON: unpaired surrogate escape",
        "[1e400, 1": "not strict JSON: Expecting ',' delimiter: line 1 column 10 (char 9)",
    }
    for text, words in cases.items():
        r = Reconciler()
        refusal = _refusal(r.receive_line(text))
        assert refusal.reason is Reason.MALFORMED_LINE
        assert refusal.detail == words, (text, refusal.detail)


def test_nan_beside_a_huge_number_is_refused_as_nan():
    refusal = _refusal(Reconciler().receive_line("[1e400, NaN]"))
    assert refusal.reason is Reason.MALFORMED_LINE
    assert refusal.detail == "not strict JSON: NaN is not JSON"


def test_a_huge_number_line_nested_too_deeply_is_refused_with_words():
    text = "[1e400, " + "[" * 100_000 + "]" * 100_000 + "]"
    r = Reconciler()
    refusal = _refusal(r.receive_line(text))
    assert refusal.reason is Reason.MALFORMED_LINE
    assert refusal.detail == "not strict JSON: nested too deeply"


def test_an_integer_too_long_to_decode_is_refused_with_words():
    text = '{"event": "agent_message", "data": {"seq": ' + "9" * 5000 + "}}"
    r = Reconciler()
    refusal = _refusal(r.receive_line(text))
    assert refusal.reason is Reason.MALFORMED_LINE
    assert refusal.detail == (
        "not strict JSON: an integer of more than 4300 digits cannot be decoded")


def test_a_huge_integer_with_good_surrogate_pairs_is_accepted():
    text = json.dumps({"event": "agent_message", "data": {
        "type": "text", "threadId": "t1", "catId": "opus", "content": "\U0001F600",
        "turnInvocationId": "T1", "seq": 12345678901234567890123}})
    r = Reconciler()
    changes = r.receive_line(text)
    assert not any(isinstance(c, Rejected) for c in changes)
    assert [b.text for b in r.bubbles("t1")] == ["\U0001F600"]


# ---------------------------------------------------------------- what a bad line is called


@pytest.mark.parametrize("line,detail", [
    (b"\xef\xbb\xbf{}", "the line starts with a UTF-8 byte-order mark (BOM); strict JSON has none"),
    ("\ufeff{}", "the line starts with a UTF-8 byte-order mark (BOM); strict JSON has none"),
    (b'{"a": "\xff"}', "the line is not valid UTF-8"),
    (b'[1e400, "\xff"]', "the line is not valid UTF-8"),
])
def test_a_bom_and_bad_utf8_are_named_plainly(line, detail):
    refusal = _refusal(Reconciler().receive_line(line))
    assert refusal.reason is Reason.MALFORMED_LINE
    assert refusal.detail == f"not strict JSON: {detail}"


@pytest.mark.parametrize("line", [b"{]", "{]", b"XX"])
def test_other_bad_json_keeps_the_decoders_words(line):
    refusal = _refusal(Reconciler().receive_line(line))
    assert refusal.detail.startswith("not strict JSON: ")
    assert "BOM" not in refusal.detail and "UTF-8" not in refusal.detail


# ---------------------------------------------------------------- every type checks its fields


@pytest.mark.parametrize("kind", ["done", "tool_use", "error", "a2a_handoff"])
@pytest.mark.parametrize("field", ["content", "invocationId", "turnInvocationId", "messageId",
                                   "error", "toolName"])
def test_a_string_field_of_the_wrong_type_is_refused_on_every_type(kind, field):
    refusal = _refusal(Reconciler().receive_message(msg(kind, **{field: 5})))
    assert refusal.reason is Reason.MALFORMED_EVENT
    assert refusal.detail == f"{field} must be a string, got the number 5"


# ---------------------------------------------------------------- system_info payloads


def test_an_announcement_whose_content_is_a_str_subclass_still_announces():
    content = _Text(json.dumps({"type": "invocation_created", "invocationId": "T1"}))
    r = Reconciler()
    r.receive_message(msg("system_info", content=content, invocationId="P1"))
    assert r.open_turn("t1", "opus") == "T1"


# ---------------------------------------------------------------- seq epochs


def test_epochs_that_differ_only_where_a_comma_goes_are_different():
    r = Reconciler()
    for epoch, seq in (([1, 23], 5), ([12, 3], 1), ({"a": [1, 23]}, 9), ({"a": [12, 3]}, 2)):
        changes = r.receive_message(msg("text", content="x", turnInvocationId="T1",
                                        seq=seq, seqEpoch=epoch))
        assert not any(isinstance(c, Rejected) for c in changes)
        assert [c.__class__.__name__ for c in changes if c.__class__.__name__ in (
            "Duplicate", "Gap")] == []


def _epoch_changes(r, epoch, seq):
    changes = r.receive_message(msg("text", content="x", turnInvocationId="T1", seq=seq,
                                    seqEpoch=epoch))
    assert not any(isinstance(c, Rejected) for c in changes)
    return [c.__class__.__name__ for c in changes if c.__class__.__name__ in ("Duplicate", "Gap")]


def test_object_epochs_differ_by_their_keys_and_not_by_key_order():
    r = Reconciler()
    assert _epoch_changes(r, {"a": 1}, 5) == []
    assert _epoch_changes(r, {"b": 1}, 1) == []  # another key: another epoch
    assert _epoch_changes(r, {"a": 1, "b": 1}, 7) == []
    assert _epoch_changes(r, {"b": 1, "a": 1}, 7) == ["Duplicate"]  # same members


def test_an_in_process_epoch_with_keys_of_mixed_types_never_raises():
    r = Reconciler()
    assert _epoch_changes(r, {1: "a", "b": 2}, 5) == []
    assert _epoch_changes(r, {"b": 2, 1: "a"}, 5) == ["Duplicate"]


class _Opaque:
    def __repr__(self):
        raise RuntimeError("no repr")


class _Other(_Opaque):
    pass


@pytest.mark.parametrize("first,second", [
    (10**4300, 10**4300 + 1),  # no decimal text, same bit length
    ([10**4300], [-10**4300]),
    ({1, 2}, {3}),  # not JSON: compared by repr
    (_Opaque(), _Other()),  # not even a repr: compared by class
], ids=["huge-ints", "huge-ints-in-lists", "sets", "no-repr"])
def test_in_process_epochs_json_cannot_carry_still_compare_exactly(first, second):
    r = Reconciler()
    assert _epoch_changes(r, first, 5) == []
    assert _epoch_changes(r, second, 1) == []  # a different epoch: seq starts again
    assert _epoch_changes(r, second, 1) == ["Duplicate"]  # the same one: a duplicate
