"""Figure 3: engine cost per event as the number of live bubbles grows, and one
bubble receiving many chunks.

For each N in 10^3 .. 10^6, thread ``main`` is filled with N finished bubbles (each a
turn announced and answered by a callback, so every index holds N entries), then a
realistic live batch from the simulator (~2 600 events, ~150 turns with parallel
agents, late callbacks, tools...) runs in the same thread, timed. The state is rebuilt
for every repetition up to 10^5 bubbles; at 10^6 it is built once (16 s) and the five
batches run on it one after another, each adding ~190 bubbles (0.02 %). Each
repetition times every size back to back.

    python -m benchmarks.bench_scaling
"""

from __future__ import annotations

import statistics
from typing import Any

from reconcile import Reconciler

from . import workloads
from ._harness import REPEAT, Figure, log, timed

SIZES = (10**3, 10**4, 10**5, 10**6)
REBUILD_UP_TO = 10**5  # above this, build once and run the batches in turn
LONG = (10**4, 10**5)  # chunks into one bubble
TARGET_SCALING = 1.3
TARGET_LONG = 11.0


def filled(n: int) -> Reconciler:
    reconciler = Reconciler()
    receive = reconciler.receive_message
    for message in workloads.prefill_events(n):
        receive(message)
    return reconciler


def feed(reconciler: Reconciler, events: list[dict[str, Any]]) -> None:
    receive = reconciler.receive_message
    for message in events:
        receive(message)


def engine_per_event(
    sizes: tuple[int, ...], batches: list[list[dict[str, Any]]]
) -> dict[int, list[float]]:
    """Microseconds per batch event for each size, one value per batch.

    Every repetition measures all sizes back to back, so a ratio between two sizes
    compares measurements taken seconds apart, not minutes (this machine is shared).
    """
    built = {}
    for n in sizes:
        if n > REBUILD_UP_TO:
            log(f"figure 3: building {n:,} bubbles once")
            built[n] = filled(n)
    values: dict[int, list[float]] = {n: [] for n in sizes}
    for rep, batch in enumerate(batches):
        log(f"figure 3: repetition {rep + 1} of {len(batches)} ({len(batch):,} events per batch)")
        for n in sizes:
            reconciler = built[n] if n in built else filled(n)
            seconds = timed(lambda: feed(reconciler, batch))  # noqa: B023 - called at once
            values[n].append(seconds / len(batch) * 1e6)
    return values


def run(
    sizes: tuple[int, ...] = SIZES, repeat: int = REPEAT
) -> tuple[list[Figure], dict[str, Any]]:
    batches = [workloads.live_batch(rep) for rep in range(repeat)]
    per_size = engine_per_event(sizes, batches)
    figures = []
    for n in sizes:
        figures.append(Figure(f"engine_at_{n}", f"3. engine per event, {n:,} bubbles alive",
                              "us/event", per_size[n], extra={"batch_events": len(batches[0])}))
    small, large = min(sizes), max(sizes)
    figures.append(Figure(
        "scaling_ratio", f"3. per-event cost at {large:,} / at {small:,} bubbles", "x",
        [b / a for a, b in zip(per_size[small], per_size[large])], target=TARGET_SCALING))

    log(f"figure 3: one bubble receiving {LONG[0]:,} and {LONG[1]:,} chunks")
    long_s: dict[int, list[float]] = {k: [] for k in LONG}
    for _ in range(repeat):
        for k in LONG:
            events = workloads.long_bubble_events(k)

            def grow() -> None:
                reconciler = Reconciler()
                feed(reconciler, events)  # noqa: B023 - called at once
                assert len(reconciler.bubbles(workloads.THREAD)[0].text) == 4 * k  # noqa: B023

            long_s[k].append(timed(grow))
    for k in LONG:
        figures.append(Figure(f"long_{k}", f"3. one bubble, {k:,} chunks (total)", "ms",
                              [s * 1e3 for s in long_s[k]]))
    figures.append(Figure(
        "long_ratio", f"3. one bubble: {LONG[1]:,} / {LONG[0]:,} chunks", "x",
        [b / a for a, b in zip(long_s[LONG[0]], long_s[LONG[1]])], target=TARGET_LONG))
    series = {n: 1e6 / statistics.median(v) for n, v in per_size.items()}
    return figures, {"engine": series}


if __name__ == "__main__":
    from ._harness import table

    print(table(run()[0]))
