"""Figure 4: the engine against the usual client approach and LangGraph's
``add_messages``, on the same events with the same bubbles alive.

For each N, each contender is given thread ``main`` with N finished bubbles (the
engine through its live path, the peers loaded in one go, as from a history fetch;
loading is not timed) and then the same live batch as figure 3, timed. Contenders
alternate within each repetition. The speed-up reported is peer time / engine time
at 10^4 bubbles, per repetition. See peers.py for what each peer does and
``agreement`` for the check that they show the same texts as the engine.

Run as a script, it also prints the curves: the median ratio peer / engine at 10^3,
10^4 and 10^5 bubbles for each peer (LangGraph at 10^5 on fewer events, see
:data:`LANGGRAPH_LARGE`).

    python -m benchmarks.bench_peers [--repeat 5]
"""

from __future__ import annotations

import statistics
from typing import Any

from reconcile import Reconciler

from . import peers, workloads
from ._harness import REPEAT, Figure, log, timed
from .bench_scaling import feed, filled

SIZES = (10**3, 10**4, 10**5)
AT = 10**4  # where the speed-up is reported
TARGET_SPEEDUP = 100.0
#: LangGraph costs ~1 ms per event at 10^4 messages and ~12 ms at 10^5: beyond 10^4
#: it gets fewer repetitions on the first events of the batch (plot points only).
LANGGRAPH_FULL_UP_TO = 10**4
LANGGRAPH_LARGE = (2, 400)  # repetitions, events


def engine_run(n: int, batch: list[dict[str, Any]]) -> float:
    """Microseconds per batch event for the engine with n bubbles alive."""
    engine = filled(n)
    return timed(lambda: feed(engine, batch)) / len(batch) * 1e6


def peer_run(make: Any, n: int, batch: list[dict[str, Any]]) -> float:
    """Microseconds per batch event for a peer loaded with the same n bubbles."""
    peer = make()
    peer.prefill(workloads.THREAD, workloads.prefill_bubbles(n))

    def go() -> None:
        receive = peer.receive
        for message in batch:
            receive(message)

    return timed(go) / len(batch) * 1e6


def run(
    sizes: tuple[int, ...] = SIZES, repeat: int = REPEAT
) -> tuple[list[Figure], dict[str, Any]]:
    batches = [workloads.live_batch(rep) for rep in range(repeat)]
    have_langgraph = peers.langgraph_available()
    contenders = {"engine": None, "usual": peers.UsualClient}
    if have_langgraph:
        contenders["langgraph"] = peers.LangGraphPeer
    else:
        log("figure 4: LangGraph is not installed (pip install -e '.[bench]'): skipped")
    times: dict[str, dict[int, list[float]]] = {name: {} for name in contenders}
    for n in sizes:
        log(f"figure 4: engine and peers with {n:,} bubbles alive")
        for rep, batch in enumerate(batches):
            times["engine"].setdefault(n, []).append(engine_run(n, batch))
            times["usual"].setdefault(n, []).append(peer_run(peers.UsualClient, n, batch))
            if have_langgraph:
                if n <= LANGGRAPH_FULL_UP_TO:
                    value = peer_run(peers.LangGraphPeer, n, batch)
                elif rep < LANGGRAPH_LARGE[0]:
                    value = peer_run(peers.LangGraphPeer, n, batch[: LANGGRAPH_LARGE[1]])
                else:
                    continue
                times["langgraph"].setdefault(n, []).append(value)

    # Equal work: on the batch alone, every peer shows the engine's texts.
    reference = Reconciler()
    feed(reference, batches[0])
    document = reference.to_dict()
    agree = {}
    for name, make in contenders.items():
        if make is not None:
            peer = make()
            for message in batches[0]:
                peer.receive(message)
            agree[name] = peers.agreement(peer, document)

    figures = []
    for name, label in (("usual", "usual client"), ("langgraph", "LangGraph add_messages")):
        if name not in times:
            figures.append(Figure(f"speedup_{name}", f"4. speed-up over {label} at {AT:,}",
                                  "x", [float("nan")], note="skipped: not installed"))
            continue
        figures.append(Figure(f"peer_{name}_at_{AT}", f"4. {label} per event, {AT:,} bubbles",
                              "us/event", times[name][AT],
                              extra={"agreement": agree.get(name)}))
        figures.append(Figure(
            f"speedup_{name}", f"4. speed-up over {label} at {AT:,} bubbles", "x",
            [p / e for p, e in zip(times[name][AT], times["engine"][AT])],
            target=TARGET_SPEEDUP, bound=">=",
            extra={"agreement": agree.get(name),
                   "by_size": {n: sorted(p / e for p, e in zip(times[name][n], times["engine"][n]))
                               for n in times[name]}}))
    series = {name: {n: 1e6 / statistics.median(v) for n, v in by_n.items()}
              for name, by_n in times.items()}
    return figures, {f"peers_{k}": v for k, v in series.items()} | {"agreement": agree}


def curves(figures: list[Figure]) -> str:
    """A Markdown table: the median speed-up (peer time / engine time) by size."""
    rows = {}
    for figure in figures:
        by_size = (figure.extra or {}).get("by_size")
        if figure.key.startswith("speedup_") and by_size:
            rows[figure.key.removeprefix("speedup_")] = by_size
    head = "| peer | " + " | ".join(f"{n:,} bubbles" for n in SIZES) + " |"
    lines = [head, "|---|" + "---:|" * len(SIZES)]
    for name, by_size in rows.items():
        cells = []
        for n in SIZES:
            ratios = by_size.get(n)
            if not ratios:
                cells.append("-")
                continue
            cell = f"{statistics.median(ratios):,.0f}x"
            if name == "langgraph" and n > LANGGRAPH_FULL_UP_TO:
                cell += f" ({len(ratios)} reps, first {LANGGRAPH_LARGE[1]} events)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    from ._harness import table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=REPEAT, help="repetitions per size")
    options = parser.parse_args()
    result = run(repeat=options.repeat)[0]
    print(table(result))
    print()
    print("Speed-up of the engine (peer time / engine time per event, median):")
    print(curves(result))
