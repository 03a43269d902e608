"""Figure 2: the engine alone against the engine floor, on pre-decoded events.

The floor is the least any event router can do in Python: one dict lookup and one
list append per event (events bucketed by name). The engine gets the same decoded
events through ``Reconciler.receive_message``, as a socket client embeds it. The
decoded events are frozen out of the garbage collector's sight (``gc.freeze``): they
are the harness's, not the engine's.

    python -m benchmarks.bench_engine
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any

from reconcile import Reconciler

from . import workloads
from ._harness import Figure, log, paired

TARGET_RATIO = 8.0


def run(workdir: Path) -> list[Figure]:
    events = workloads.decoded(workloads.trace_file(workdir))
    log(f"figure 2: {len(events):,} pre-decoded events, floor vs engine")

    def floor() -> None:
        buckets: dict[Any, list[Any]] = {}
        for message in events:
            key = message["event"]
            bucket = buckets.get(key)  # the one dict lookup
            if bucket is None:
                bucket = buckets[key] = []
            bucket.append(message)  # the one list append

    def engine() -> None:
        receive = Reconciler().receive_message
        for message in events:
            receive(message)

    # The harness holds ~170 000 decoded events (a socket client would not): freeze
    # them so the collector's full passes walk the engine's objects only. Without this
    # one full collection over the event list costs ~1 us per event.
    gc.collect()
    gc.freeze()
    try:
        floor_s, engine_s = paired([floor, engine])
    finally:
        gc.unfreeze()
    per_event = 1e6 / len(events)
    return [
        Figure("engine_floor", "2. engine floor: dict lookup + list append", "us/event",
               [s * per_event for s in floor_s], extra={"events": len(events)}),
        Figure("engine", "2. engine only (receive_message)", "us/event",
               [s * per_event for s in engine_s], extra={"events": len(events)}),
        Figure("engine_ratio", "2. engine / engine floor", "x",
               [e / f for e, f in zip(engine_s, floor_s)], target=TARGET_RATIO),
    ]


if __name__ == "__main__":
    from ._harness import table

    with tempfile.TemporaryDirectory() as tmp:
        print(table(run(Path(tmp))))
