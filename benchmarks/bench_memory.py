"""Figure 5: memory retained per finished bubble, excluding its text.

100 000 turns, each announced, streaming two chunks and finished by ``done``; every
other one then replaced by its callback (so message ids are indexed too). The lines
are made before tracing starts; tracemalloc counts everything the engine allocates
while decoding and reconciling them and still holds after a full collection. The
bytes of the bubbles' text are subtracted (the strings the bubbles hold), the rest is
divided by the number of bubbles: bubble objects, turns, every index entry, ids.

    python -m benchmarks.bench_memory
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

from reconcile import Reconciler

from . import workloads
from ._harness import REPEAT, Figure, log

N = 10**5
TARGET_BYTES = 1024.0


def retained(lines: list[bytes], n: int, top: int = 0) -> tuple[float, list[dict[str, Any]]]:
    """Bytes per bubble held by a reconciler fed ``lines``; optionally the top sites."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    reconciler = Reconciler()
    receive = reconciler.receive_line
    for line in lines:
        receive(line)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    sites = []
    if top:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, "*reconcile*")])
        for stat in snapshot.statistics("lineno")[:top]:
            frame = stat.traceback[0]
            sites.append({"site": f"{frame.filename.split('reconcile/')[-1]}:{frame.lineno}",
                          "bytes_per_bubble": stat.size / n})
    tracemalloc.stop()
    bubbles = [b for h in reconciler.threads for b in reconciler.bubbles(h)]
    assert len(bubbles) == n and all(b.status.value == "done" for b in bubbles)
    # The text: the strings each bubble holds (read before any join happens).
    text = sum(
        sys.getsizeof(b._text) if isinstance(b._text, str) else sum(map(sys.getsizeof, b._text))
        for b in bubbles
    )
    return (held - text) / len(bubbles), sites


def run(n: int = N, repeat: int = REPEAT) -> list[Figure]:
    lines = workloads.finished_bubble_lines(n)
    log(f"figure 5: memory of {n:,} finished bubbles ({len(lines):,} lines), traced")
    values, sites = [], []
    for rep in range(repeat):
        value, found = retained(lines, n, top=12 if rep == 0 else 0)
        values.append(value)
        sites = sites or found
    return [Figure("bytes_per_bubble", f"5. retained bytes per finished bubble at {n:,}",
                   "B", values, target=TARGET_BYTES, extra={"top_sites": sites})]


if __name__ == "__main__":
    from ._harness import table

    figures = run()
    print(table(figures))
    for site in figures[0].extra["top_sites"]:
        print(f"  {site['bytes_per_bubble']:8.1f} B  {site['site']}")
