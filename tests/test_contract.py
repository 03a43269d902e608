"""reconcile.check_lines: the section 10 report (what a server must send)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile import CheckReport, Reason, Reconciler, Rejected, RuleReport, check_lines
from reconcile.testing.simulate import generate

from .helpers import CONFORMANCE, announce, callback, case_dirs, chunk, done, msg, trace_lines


def lines_of(events):
    return [json.dumps(e) for e in events]


def rules_of(report: CheckReport) -> dict[str, tuple[int, int, bool]]:
    return {r.key: (r.count, r.refused, r.refusal) for r in report.rules}


def history(thread="t1", messages=()):
    return {"event": "history", "data": {"threadId": thread, "messages": list(messages)}}


def stored(mid, content, cat="opus", origin="stream", stream=None, **kw):
    message = {"id": mid, "type": "assistant", "catId": cat, "content": content,
               "origin": origin, **kw}
    if stream is not None:
        message["extra"] = {"stream": stream}
    return message


def test_a_server_that_keeps_every_rule_gives_no_rule_report():
    events = [announce("T1"), chunk("hi", turnInvocationId="T1"),
              callback("final", "T1", "m1"), done(turnInvocationId="T1")]
    report = check_lines(lines_of(events))
    assert report.rules == () and report.verdict == "clean" and not report.rejected


def test_live_callback_without_turn_id_is_rule_1_and_refused():
    events = [announce("T1"), callback("a", None, "m1"), callback("b", None, "m2")]
    report = check_lines(lines_of(events))
    assert report.rules == (RuleReport(1, "live_callback_without_turn",
                                       "live callbacks without a turn id", 2, 2, (2, 3)),)
    assert report.rules[0].refusal and report.verdict == "refused"
    assert report.reasons == {"callback_without_invocation": 2}


def test_stream_events_without_turn_invocation_id_are_a_rule_3_advisory():
    events = [announce("T1"), chunk("a"), msg("tool_use", toolName="Read", invocationId="P1"),
              done()]
    report = check_lines(lines_of(events))
    assert rules_of(report) == {"stream_without_turn_id": (3, 0, False)}
    assert report.rules[0].lines == (2, 3, 4)
    assert report.verdict == "advisories" and report.rejected == ()


def test_thinking_and_rich_blocks_count_as_stream_events_but_other_system_info_does_not():
    thinking = msg("system_info", content=json.dumps({"type": "thinking", "text": "hm"}),
                   invocationId="P1")
    placed = msg("system_info", content=json.dumps(
        {"type": "rich_block", "messageId": "m1", "block": {"id": "b"}}))
    usage = msg("system_info", content=json.dumps({"type": "usage"}), invocationId="P1")
    report = check_lines(lines_of([announce("T1"), thinking, placed, usage]))
    assert rules_of(report) == {"stream_without_turn_id": (1, 0, False)}
    assert report.rules[0].lines == (2,)


def test_a_late_joiner_refusal_makes_rule_3_a_refusal():
    # Joined mid-turn: the announcement was missed, so the parent id binds nothing.
    report = check_lines(lines_of([chunk("a"), chunk("b")]))
    assert rules_of(report) == {"stream_without_turn_id": (2, 2, True)}
    assert report.reasons == {"unbound_event": 2}


def test_stored_callback_without_turn_is_rule_2_refused_unless_seen_live():
    page = history(messages=[
        stored("m1", "seen live", origin="callback"),
        stored("m2", "never seen", origin="callback"),
        stored("m3", "fine", origin="callback", stream={"invocationId": "T1"}),
    ])
    events = [announce("T1"), callback("seen live", "T1", "m1"), page]
    report = check_lines(lines_of(events))
    assert rules_of(report) == {"stored_callback_without_turn": (2, 1, True)}
    assert report.rules[0].lines == (3,)  # one line however many messages it held

    advisory = check_lines(lines_of([announce("T1"), callback("x", "T1", "m1"),
                                     history(messages=[stored("m1", "x", origin="callback")])]))
    assert rules_of(advisory) == {"stored_callback_without_turn": (1, 0, False)}


def test_draft_without_parent_is_a_rule_3_advisory():
    page = history(messages=[
        stored("draft-T1", "so far", stream={"invocationId": "T1"}),
        stored("draft-T2", "so far", stream={"invocationId": "T2", "parentInvocationId": "P2"}),
        {"id": "u1", "type": "user", "catId": None, "content": "hi"},
    ])
    report = check_lines(lines_of([page]))
    assert rules_of(report) == {"draft_without_parent": (1, 0, False)}


def test_empty_history_after_live_events_is_a_rule_5_advisory():
    report = check_lines(lines_of([history("t1"), announce("T1"), history("t1"),
                                   history("t2")]))
    assert rules_of(report) == {"empty_history": (1, 0, False)}
    assert report.rules[0].lines == (3,)


def test_rule_lines_keep_only_the_first_five():
    report = check_lines(lines_of([callback("x", None)] * 9))
    assert report.rules[0].count == 9 and report.rules[0].lines == (1, 2, 3, 4, 5)


def test_malformed_events_are_refused_not_counted_against_a_rule():
    bad = msg("text", content=7, origin="callback")  # content must be a string
    report = check_lines(lines_of([bad]) + ["{nope", ""])
    assert report.rules == ()
    assert report.reasons == {"malformed_event": 1, "malformed_line": 1}
    assert report.lines == 3


def test_an_empty_or_blank_trace_is_empty_not_clean():
    assert check_lines([]).verdict == "empty"
    assert check_lines(["", "  \r"]).empty and check_lines(["", " "]).lines == 2


def test_threads_are_counted():
    events = [announce("T1"), chunk("a", seq=1, seqEpoch="e"), chunk("b", seq=3, seqEpoch="e"),
              callback("x", None, thread="t2")]
    report = check_lines(lines_of(events))
    assert report.threads["t1"].to_dict() == {"events": 3, "bubbles": 1, "refused": 0, "gaps": 1}
    assert report.threads["t2"].to_dict() == {"events": 1, "bubbles": 0, "refused": 1, "gaps": 0}


def test_the_report_agrees_with_the_engine_on_every_conformance_case():
    for case in case_dirs():
        lines = trace_lines(case / "trace.jsonl")
        engine = Reconciler()
        engine.feed(lines)
        report = check_lines(lines)
        assert list(report.rejected) == list(engine.rejected), case.name
        assert report.stats == engine.stats.to_dict() and report.lines == engine.lines
        assert report.gaps == tuple(engine.gaps)


def test_the_report_agrees_with_the_engine_on_generated_traces_with_faults():
    lines = generate(3, turns=120, faults=0.05, history=1.0, loss=0.05)
    engine = Reconciler()
    engine.feed(lines)
    report = check_lines(lines)
    assert list(report.rejected) == list(engine.rejected)
    assert report.stats == engine.stats.to_dict()


def test_the_report_lists_each_refusal_as_the_engine_handed_it_out():
    # The engine logs refusals as plain tuples; the report makes each a Rejected
    # equal to the one receive_line returned, with its Reason member.
    lines = [b"{bad", json.dumps(msg("text", thread=5, content="x", origin="stream")),
             *lines_of([announce("T1", "P1"), chunk("x", "P-unknown"), callback("y", None),
                        done("P1"), chunk("late", None, turnInvocationId="T1"),
                        history(messages=[stored("c1", "cb", origin="callback")])])]
    engine = Reconciler()
    returned = [c for line in lines for c in engine.receive_line(line)
                if isinstance(c, Rejected)]
    report = check_lines(lines)
    assert report.rejected == tuple(returned) and len(returned) == 6
    assert all(type(r) is Rejected and type(r.reason) is Reason for r in report.rejected)
    assert report.reasons == {"callback_without_invocation": 2, "malformed_event": 1,
                              "malformed_line": 1, "stream_after_done": 1, "unbound_event": 1}
    assert all(type(key) is str for key in report.reasons)
    assert report.threads["t1"].refused == 4


def test_to_dict_and_from_dict_round_trip_through_json():
    lines = trace_lines(CONFORMANCE / "22_edge_rules" / "trace.jsonl")
    lines += [json.dumps(callback("x", None)).encode(), b"{nope"]
    report = check_lines(lines)
    document = json.loads(json.dumps(report.to_dict()))
    assert CheckReport.from_dict(document) == report
    assert list(document) == ["verdict", "lines", "events", "stats", "reasons", "rules",
                              "threads", "rejected", "gaps"]
    assert set(document["rules"][0]) == {"rule", "key", "title", "count", "refused",
                                         "refusal", "lines"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.sampled_from(
    [json.dumps(e) for e in (announce("T1"), chunk("a"), callback("x", None), done(),
                             history(messages=[stored("m", "x", origin="callback")]))])))
def test_check_lines_never_raises_and_matches_the_engine(lines):
    lines = [line.replace(b"\n", b"") if isinstance(line, bytes) else line for line in lines]
    engine = Reconciler()
    engine.feed(lines)
    report = check_lines(lines)
    assert list(report.rejected) == list(engine.rejected)


def test_check_merges_pages_with_integers_beyond_64_bits_as_receive_line_does(monkeypatch):
    # check_lines merges a page as orjson decoded it until a stored timestamp comes
    # back as a float (orjson's reading of an integer beyond 64 bits): from there on
    # the exact decode, so the engine behind check ends as receive_line leaves one.
    import reconcile._contract as contract

    engines = []

    class Kept(Reconciler):
        def __init__(self):
            super().__init__()
            engines.append(self)

    monkeypatch.setattr(contract, "Reconciler", Kept)
    huge = 10**20  # orjson alone: 1e+20
    pages = [
        history(messages=[stored("m1", "one", timestamp=huge + 1),
                          stored("m2", "two", timestamp=huge)]),
        history(messages=[stored("m3", "three", timestamp=-huge)]),
        history(messages=[stored("m4", "four", timestamp=1.5), stored("m5", "five")]),
        history(messages=[stored("m6", "six", timestamp=7, extra={"note": huge})]),
        # A callback without its turn id in a huge-number page: refused, counted.
        history(messages=[stored("m7", "seven", origin="callback", timestamp=huge)]),
        # The exact decode takes over mid-page: what lacked before it and after it.
        history(messages=[stored("m8", "eight", timestamp=5),
                          stored("m9", "nine", origin="callback", timestamp=6),
                          stored("m10", "ten", timestamp=huge + 2),
                          stored("m11", "eleven", origin="callback", timestamp=7)]),
    ]
    lines = [json.dumps(page) for page in pages] + lines_of([chunk("late", timestamp=3)])
    report = check_lines(lines)
    (engine,) = engines
    reference = Reconciler()
    for line in lines:
        reference.receive_line(line)

    def state(r):
        return {h: [(*bubble.sort_key[:2], bubble.to_dict()) for bubble in t.order]
                for h, t in r._threads.items()}

    assert state(engine) == state(reference)
    stamps = [bubble.sort_key[0] for bubble in engine._threads["t1"].order]
    assert {-huge, huge, huge + 1} <= set(stamps) and all(type(ts) is int for ts in stamps)
    assert list(engine.rejected) == list(reference.rejected)
    assert rules_of(report)["stored_callback_without_turn"] == (3, 3, True)
    assert huge + 2 in stamps


def test_rule_3_counts_the_system_info_that_binds_and_no_other():
    # Thinking and a rich block without messageId bind to a turn (rule 3 asks for
    # their turnInvocationId); usage, metrics, an announcement, a rich block placed
    # by messageId and a plain system line do not.
    def system(payload, **kw):
        content = payload if isinstance(payload, str) else json.dumps(payload)
        return msg("system_info", content=content, invocationId="P1", **kw)

    block = {"id": "b1", "kind": "card"}
    events = [
        announce("T1", parent="P1"),  # line 1: an announcement
        system({"type": "thinking", "text": "hm"}),  # 2: binds
        system({"type": "invocation_usage", "usage": {"inputTokens": 3}}),  # ignored
        system({"type": "rich_block", "block": block}),  # 4: binds
        system({"type": "rich_block", "block": block, "messageId": "m9"}),  # by message
        system("plain words about thinking"),  # a system line
        system('{"type": "\\u0074hinking", "text": "escaped"}'),  # 7: binds
        system({"type": "context_health", "note": "thinking rich_block"}),  # ignored
        system({"type": "thinking", "text": "named"}, turnInvocationId="T1"),  # named
    ]
    report = check_lines(lines_of(events))
    rule = {r.key: r for r in report.rules}["stream_without_turn_id"]
    assert (rule.count, rule.refused, rule.lines) == (3, 0, (2, 4, 7))
    assert report.stats["ignored"] == 2


def test_a_page_too_deep_for_the_exact_decoder_is_refused_not_raised():
    # orjson reads 1000 levels; the standard library's exact decode (needed for the
    # float timestamp of the second message) cannot: the line is refused as the
    # general path refuses it, and nothing escapes check_lines or feed.
    deep = "[" * 1000 + "]" * 1000
    line = (
        '{"event":"history","data":{"threadId":"t1","messages":['
        '{"id":"m1","catId":"opus","content":"x","timestamp":5},'
        '{"id":"m2","catId":"opus","content":"y","timestamp":100000000000000000000,'
        '"deep":' + deep + "}]}}"
    )
    report = check_lines([line, json.dumps(chunk("hi", timestamp=6))])
    assert [(r.line, r.reason.value) for r in report.rejected][:1] == [(1, "malformed_line")]
    assert report.rejected[0].detail.startswith("not strict JSON")
    assert report.events == 1 and report.rules[0].key == "stream_without_turn_id"
    engine = Reconciler()
    assert engine.feed([line]) == 1
    assert [r.reason.value for r in engine.rejected] == ["malformed_line"]
    assert engine.stats.events == 0
