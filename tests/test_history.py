"""History pages: the merge loop's shortcuts give what merging each message gives.

``_history`` skips a plain dict message without a ``catId`` without calling
``_stored_message``; these tests pin that the shortcut and the full path agree, and
the exact-type rules the stored-message reader keeps.
"""

from __future__ import annotations

import json

from reconcile import Reconciler, check_lines

from .helpers import feed


class Message(dict):  # an in-process caller's dict subclass: read as a dict
    pass


def page(*messages, thread="t1"):
    return {"event": "history", "data": {"threadId": thread, "messages": list(messages)}}


def stored(mid, content, cat="opus", ts=100, **kw):
    return {"id": mid, "type": "assistant", "catId": cat, "content": content,
            "timestamp": ts, **kw}


def user(mid, content, ts=50):
    return {"id": mid, "type": "user", "catId": None, "content": content, "timestamp": ts}


def test_user_messages_make_no_bubble_and_do_not_move_the_threads_clock():
    r, (changes,) = feed([page(user("u1", "hi", ts=900), stored("m1", "answer", ts=100),
                               {"id": "u2", "content": "no catId at all", "timestamp": 950})])
    assert [b.text for b in r.bubbles("t1")] == ["answer"]
    assert len(changes) == 1 and r._threads["t1"].max_ts == 100
    assert list(r.rejected) == []


def test_a_dict_subclass_message_is_merged_as_a_dict_is():
    plain, _ = feed([page(stored("m1", "one"), user("u1", "hi"), stored("m2", "two", ts=99))])
    subclass, _ = feed([page(Message(stored("m1", "one")), Message(user("u1", "hi")),
                             Message(stored("m2", "two", ts=99)))])
    assert plain.to_dict() == subclass.to_dict()
    assert [b.text for b in subclass.bubbles("t1")] == ["two", "one"]


def test_a_message_whose_catid_is_not_a_string_makes_nothing():
    r, (changes,) = feed([page(stored("m1", "x", cat=5), stored("m2", "y", cat=["opus"]),
                               stored("m3", "z", cat=""), "not a message", None, 7)])
    # An empty string is a string: the agent "" gets its bubble.
    assert [(b.cat, b.text) for b in r.bubbles("t1")] == [("", "z")]
    assert len(changes) == 1


def test_only_an_exact_int_timestamp_counts():
    r, _ = feed([page(stored("m1", "first", ts=500)),
                 page(stored("m2", "bool", ts=True), stored("m3", "float", ts=7.0),
                      stored("m4", "str", ts="9"))])
    # Each takes the thread's largest timestamp so far (500), so they follow m1.
    assert [(b.sort_key[0], b.text) for b in r.bubbles("t1")] == [
        (500, "first"), (500, "bool"), (500, "float"), (500, "str")]


def test_what_a_page_lacked_is_counted_as_before_with_user_messages_between():
    lines = [json.dumps(page(user("u1", "hi"), stored("c1", "cb", origin="callback"),
                             user("u2", "again"), stored("draft-T9", "draft", isDraft=True),
                             stored("c2", "cb2", origin="callback",
                                    extra={"stream": {"invocationId": "T3"}})))]
    report = check_lines(lines)
    r = Reconciler()
    r.receive_line(lines[0])
    assert [x.reason.value for x in r.rejected] == ["callback_without_invocation"]
    rules = {rule.key: rule.count for rule in report.rules}
    assert rules["stored_callback_without_turn"] == 1
    assert rules["draft_without_parent"] == 1


def test_draft_ids_are_told_by_their_whole_prefix_as_the_reference_tells_them():
    from reconcile.testing.reference import replay

    from .helpers import without_details

    events = [
        page(stored("d-1", "starts with d"), stored("drafty", "not a draft id"),
             stored("draft-", "the bare prefix"), stored("draft-T1", "a draft"),
             stored("draft-T2", "flagged too", isDraft=True),
             stored("dr", "short", origin="callback"),
             stored("draft-T3", "a stored callback", origin="callback"),
             stored("m9", "flagged, plain id", isDraft=True,
                    extra={"stream": {"invocationId": "T4"}})),
    ]
    r, _ = feed(events)
    assert without_details(r.to_dict()) == without_details(replay(events))
    texts = {b.text: b.invocation for b in r.bubbles("t1")}
    assert texts["starts with d"] is None and texts["not a draft id"] is None
    assert texts["a draft"] == "T1" and texts["flagged, plain id"] == "T4"
    assert "the bare prefix" not in texts  # a draft that names no turn fills nothing
    report = check_lines([json.dumps(e) for e in events])
    rules = {rule.key: rule.count for rule in report.rules}
    assert rules["draft_without_parent"] == 4
    assert rules["stored_callback_without_turn"] == 2


def test_a_stored_callback_without_its_turn_is_refused_on_every_page_with_one_wording():
    # The wording of such a refusal is kept per (agent, message id) once made, since a
    # client that joined mid-turn reads the same page again and again; every page's
    # refusal says the same, and an agent named by a str subclass (an in-process
    # caller's, with its own repr) words its own and never fills the store.
    class Cat(str):
        def __repr__(self) -> str:
            return f"Cat<{str(self)}>"

    callback = stored("m-1", "the answer", origin="callback")
    engine = Reconciler()
    details = []
    for _ in range(3):
        details += [c.detail for c in engine.receive_message(page(callback))]
    expected = (
        "stored callback 'm-1' from 'opus' carries no turn id "
        "(extra.stream.invocationId); it is never guessed"
    )
    assert details == [expected] * 3
    odd = json.loads(json.dumps(callback))
    odd["catId"] = Cat("opus")
    fresh = Reconciler()
    assert [c.detail for c in fresh.receive_message(page(odd))] == [
        expected.replace("'opus'", "Cat<opus>")
    ]
    assert [c.detail for c in fresh.receive_message(page(callback))] == [expected]
