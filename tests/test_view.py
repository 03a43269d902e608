"""The terminal view's refusal counts (``reconcile watch``'s header and exit summary)."""

from __future__ import annotations

import collections

from reconcile import Reconciler
from reconcile.client.view import refusal_counts


class Client:
    """What refusal_counts reads of a ChatClient: its engine and unplaced callbacks."""

    def __init__(self) -> None:
        self.reconciler = Reconciler()

    def unplaced(self) -> tuple[object, ...]:
        return ()


def chunk(n: int) -> dict[str, object]:
    return {"event": "agent_message", "data": {
        "type": "text", "threadId": "t1", "catId": "opus", "content": f"c{n}",
        "origin": "stream", "invocationId": "never-announced"}}


def test_refusals_are_counted_by_reason_as_the_log_grows() -> None:
    client = Client()
    assert refusal_counts(client) == ({}, 0)
    for n in range(3):
        client.reconciler.receive_message(chunk(n))
    assert refusal_counts(client) == ({"unbound_event": 3}, 0)
    client.reconciler.receive_message({"event": "agent_message", "data": {"type": 5}})
    for n in range(2):
        client.reconciler.receive_message(chunk(n))
    counts, _ = refusal_counts(client)
    # The same as counting the whole log afresh; and a second read counts nothing twice.
    assert counts == collections.Counter(str(r.reason) for r in client.reconciler.rejected)
    assert counts == {"unbound_event": 5, "malformed_event": 1}
    assert refusal_counts(client) == (counts, 0)


def test_each_engine_has_its_own_counts() -> None:
    one, two = Client(), Client()
    one.reconciler.receive_message(chunk(1))
    assert refusal_counts(one) == ({"unbound_event": 1}, 0)
    assert refusal_counts(two) == ({}, 0)
