"""Figure 1: replay end to end against the decode floor.

The floor reads the trace file and decodes every line with orjson, the fastest JSON
decoder the engine uses, and throws the result away. Replay does what
``reconcile replay`` does minus the output: read, decode, reconcile (the CLI's own
``replay_file``). Both read the same file from the page cache; the ratio is the
price of reconciling, per line, in units of "decoding the line".

    python -m benchmarks.bench_decode
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson

from reconcile.cli._common import replay_file

from . import workloads
from ._harness import Figure, log, paired

TARGET_RATIO = 2.0


def run(workdir: Path) -> list[Figure]:
    path = workloads.trace_file(workdir)
    with open(path, "rb") as stream:
        lines = sum(1 for _ in stream)
    log(f"figure 1: {lines:,} lines ({path.stat().st_size / 1e6:.0f} MB), floor vs replay")

    def floor() -> None:
        loads = orjson.loads
        with open(path, "rb") as stream:
            for line in stream:
                loads(line)

    def replay() -> None:
        replay_file(str(path))

    floor_s, replay_s = paired([floor, replay])
    per_line = 1e6 / lines
    return [
        Figure("decode_floor", "1. decode floor: read + orjson.loads per line", "us/line",
               [s * per_line for s in floor_s], extra={"lines": lines}),
        Figure("replay", "1. replay end to end: read + decode + reconcile", "us/line",
               [s * per_line for s in replay_s], extra={"lines": lines}),
        Figure("replay_ratio", "1. replay / decode floor", "x",
               [r / f for r, f in zip(replay_s, floor_s)], target=TARGET_RATIO),
    ]


if __name__ == "__main__":
    from ._harness import table

    with tempfile.TemporaryDirectory() as tmp:
        print(table(run(Path(tmp))))
