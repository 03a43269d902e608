"""`reconcile check` (``check_lines``): which events each section 10 rule counts, the
per-thread counts, and the JSON report's round trip. Each test pins a behaviour a
mutation run showed the rest of the suite did not (docs/testing.md)."""

from __future__ import annotations

import json

from reconcile import CheckReport, Gap, ThreadCounts, check_lines

from .helpers import announce, callback, msg


def _lines(*events):
    return [json.dumps(e) for e in events]


def _rules(report):
    return {r.key: (r.count, r.refused, r.lines) for r in report.rules}


def _history(thread, *messages):
    return {"event": "history", "data": {"threadId": thread, "messages": list(messages)}}


def _system(content, **kw):
    return msg("system_info", content=content, **kw)


# ---------------------------------------------------------------- rule 3, system_info


def test_only_thinking_and_rich_blocks_without_a_message_are_stream_side_system_lines():
    report = check_lines(_lines(
        announce("T1"),
        _system("plain words", invocationId="P1"),
        _system("{not json", invocationId="P1"),
        _system(json.dumps({"type": "rich_block", "messageId": "m1",
                            "block": {"id": "k1"}}), invocationId="P1"),
        _system(json.dumps({"type": "something_else"}), invocationId="P1"),
        _system("  " + json.dumps({"type": "thinking", "text": "hm"}), invocationId="P1"),
        _system(json.dumps({"type": "rich_block", "block": {"id": "k2"}}), invocationId="P1"),
    ))
    assert _rules(report) == {"stream_without_turn_id": (2, 0, (6, 7))}


def test_a_system_line_with_a_turn_id_keeps_rule_3():
    report = check_lines(_lines(
        announce("T1"),
        _system(json.dumps({"type": "thinking", "text": "hm"}), turnInvocationId="T1"),
    ))
    assert report.rules == ()


# ---------------------------------------------------------------- rule 1, live callbacks


def test_a_live_callback_naming_its_turn_either_way_keeps_rule_1():
    report = check_lines(_lines(
        announce("T1"),
        msg("text", content="a", origin="callback", turnInvocationId="T1"),
        msg("text", content="b", origin="callback", invocationId="T1"),
    ))
    assert report.rules == ()


def test_a_malformed_or_threadless_event_does_not_stop_the_rule_checks():
    report = check_lines(_lines(
        msg("text", content=5),
        {"event": "heartbeat", "data": {}},
        callback("lost", None, "m1"),
    ))
    assert _rules(report) == {"live_callback_without_turn": (1, 1, (3,))}


# ---------------------------------------------------------------- history rules


def _stored(mid, cat="opus", **kw):
    return {"id": mid, "catId": cat, "content": "x", **kw}


def test_each_refused_stored_callback_counts_as_refused():
    report = check_lines(_lines(_history(
        "t1", _stored("m1", origin="callback"), _stored("m2", origin="callback"))))
    assert _rules(report) == {"stored_callback_without_turn": (2, 2, (1,))}


def test_a_draft_is_named_by_its_flag_or_its_id_and_reported_at_its_line():
    report = check_lines(_lines(
        announce("T0"),
        _history("t1", _stored("m1", isDraft=True), _stored("m2", isDraft=False),
                 _stored("m3", isDraft=True)),
        _history("t1", _stored("draft-T2")),
    ))
    assert _rules(report) == {"draft_without_parent": (3, 0, (2, 3))}


def test_user_messages_in_a_page_break_no_rule():
    report = check_lines(_lines(_history(
        "t1",
        {"id": "u1", "content": "hi", "origin": "callback"},
        {"catId": "opus", "content": "no id", "origin": "callback"},
        {"id": "", "catId": "opus", "content": "empty id", "isDraft": True},
    )))
    assert report.rules == ()


# ---------------------------------------------------------------- per-thread counts


def test_thread_counts_cover_refused_and_ignored_events_exactly():
    report = check_lines(_lines(
        msg("weird_type", thread="tw"),
        msg("system_info", thread="tb", content=json.dumps({"type": "invocation_created"})),
        msg("text", thread="tr", content=5),
        msg("text", thread="tr", content=6),
        msg("text", thread="tg", content="a", turnInvocationId="T1", seq=1),
        msg("text", thread="tg", content="b", turnInvocationId="T1", seq=5),
        msg("text", thread="tg", content="c", turnInvocationId="T1", seq=9),
    ))
    assert report.threads == {
        "tw": ThreadCounts(events=1, bubbles=0, refused=0, gaps=0),
        "tg": ThreadCounts(events=3, bubbles=1, refused=0, gaps=2),
        "tb": ThreadCounts(events=0, bubbles=0, refused=1, gaps=0),
        "tr": ThreadCounts(events=0, bubbles=0, refused=2, gaps=0),
    }


# ---------------------------------------------------------------- the JSON report


def _report_with_gaps():
    return check_lines(_lines(
        msg("text", content="a", turnInvocationId="T1", seq=1),
        msg("text", content="b", turnInvocationId="T1", seq=4),
    ))


def test_the_json_report_lists_each_gap_with_its_line():
    report = _report_with_gaps()
    assert report.to_dict()["gaps"] == [{"thread": "t1", "after": 1, "before": 4, "line": 2}]
    assert report.to_dict()["threads"]["t1"]["gaps"] == 1


def test_a_report_survives_its_json_round_trip_gaps_and_lines_included():
    report = _report_with_gaps()
    document = json.loads(json.dumps(report.to_dict()))
    again = CheckReport.from_dict(document)
    assert again == report
    assert again.to_dict() == report.to_dict()
    assert [g.line for g in again.gaps] == [2]


def test_a_gap_without_a_line_reads_as_line_zero():
    document = _report_with_gaps().to_dict()
    del document["gaps"][0]["line"]
    (gap,) = CheckReport.from_dict(document).gaps
    assert gap == Gap("t1", 1, 4) and gap.line == 0
