"""Instruction counts: the hot path measured in a unit that repeats exactly.

Wall-clock ratios on a shared 2-core machine swing 2-3x from run to run, so they
cannot steer the work. ``valgrind --tool=cachegrind`` counts the instructions a
program executes (``I refs``); with ``PYTHONHASHSEED=0`` the count repeats to the
instruction for the same input, whatever else the machine is doing.

Each figure is a ratio of two programs run under cachegrind side by side in one run:

* **check / decode floor, per line**: ``python -m reconcile check TRACE`` against a
  bare loop that reads the file and calls ``orjson.loads`` on each line. The per-line
  cost is ``(I(2N lines) - I(N lines)) / N``, which cancels start-up exactly.
* **engine / engine floor, per event**: events decoded in advance, then either fed to
  ``Reconciler.receive_message`` or put through one dict lookup and one list append
  each. Both programs decode the same lines first; a third program that only decodes
  is subtracted from both.
* **start-up**: ``reconcile check`` and ``reconcile replay`` on a one-line trace
  against ``python -c "import orjson"``. The package is byte-compiled first
  (``compileall``), as an installed package is: otherwise, with
  ``PYTHONDONTWRITEBYTECODE`` set or an unwritable install, every run would compile
  our modules from source, a cost no installed user pays. orjson and the standard
  library are byte-compiled by their installers already.

CPU time (``time.process_time`` in the same programs, outside valgrind) is printed
beside each ratio for people; it is noisy, the instruction ratio is the figure.

    python -m benchmarks.bench_instructions            # realistic trace, 20,000 lines
    python -m benchmarks.bench_instructions --lines 5000 --trace FILE.jsonl
    python -m benchmarks.bench_instructions --flat      # 10^4 against 10^5 lines

``--flat`` measures flatness instead: ``check`` per line, ``(I(N lines) - I(1 line))
/ N``, on the first 10^4 and the first 10^5 lines of one trace (10^6 lines under
cachegrind would take hours here; CPU time at 10^6 is in benchmarks/README.md).

The realistic trace is the simulator's, with the ``metadata`` object a real
clowder-ai server puts on every stream event (lines of about 300-350 bytes). Pass
``--trace`` to measure any capture instead (it is repeated to reach ``--lines``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from reconcile.testing.simulate import Shape, generate

#: What a real clowder-ai server attaches to each stream-side agent_message (shape
#: copied from a capture of the real server; the values do not matter to the engine).
METADATA = {
    "provider": "anthropic",
    "model": "claude-opus-4-6",
    "sessionId": "fake-session-5052ba49",
}
DECODE_FLOOR = """
import sys, time, orjson
loads = orjson.loads
t = time.process_time()
with open(sys.argv[1], "rb") as f:
    for line in f:
        loads(line)
print(time.process_time() - t, file=sys.stderr)
"""

ENGINE = """
import gc, sys, time, orjson
from reconcile import Reconciler
mode = sys.argv[2]
with open(sys.argv[1], "rb") as f:
    events = [orjson.loads(line) for line in f if line.strip()]
gc.freeze()
t = time.process_time()
if mode == "engine":
    receive = Reconciler().receive_message
    for event in events:
        receive(event)
elif mode == "floor":
    groups = {}
    for event in events:
        groups.setdefault(event["event"], []).append(event)
print(time.process_time() - t, file=sys.stderr)
"""

START = "import orjson"


def realistic_trace(lines: int, path: Path, source: Path | None = None) -> int:
    """Write ``lines`` trace lines to ``path``; return the mean line length in bytes."""
    if source is not None:
        base = [line for line in source.read_bytes().splitlines() if line.strip()]
        out = []
        copy = 0
        while len(out) < lines:
            # Each copy of the capture gets its own thread ids, so it replays as the
            # capture does (a plain repeat would send every copy's events to turns
            # the first copy closed: refusals, a different and slower path).
            out.extend(_renamed(line, copy) for line in base)
            copy += 1
        out = out[:lines]
    else:
        out = []
        turns = 200
        while len(out) < lines:
            out = []
            for raw in generate(7, Shape(turns=turns, threads=3, agents=3)):
                message = json.loads(raw)
                data = message.get("data")
                if isinstance(data, dict) and data.get("origin") != "callback":
                    data["metadata"] = METADATA
                out.append(json.dumps(message, separators=(",", ":")).encode())
            turns *= 2
        out = out[:lines]
    path.write_bytes(b"\n".join(out) + b"\n")
    return sum(map(len, out)) // len(out)


def _renamed(line: bytes, copy: int) -> bytes:
    """``line`` with its threadId suffixed by ``~copy`` (unchanged for copy 0)."""
    if copy == 0:
        return line
    try:
        message = json.loads(line)
    except ValueError:
        return line
    data = message.get("data") if isinstance(message, dict) else None
    if isinstance(data, dict) and isinstance(data.get("threadId"), str):
        data["threadId"] = f"{data['threadId']}~{copy}"
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def instructions(argv: list[str]) -> tuple[int, float]:
    """Run ``argv`` under cachegrind; return (I refs, CPU seconds it printed or 0)."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    with tempfile.NamedTemporaryFile(suffix=".out") as out:
        proc = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no",
             f"--cachegrind-out-file={out.name}", *argv],
            capture_output=True, text=True, env=env, check=False,
        )
    match = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if match is None:
        raise RuntimeError(f"no I refs from cachegrind for {argv}:\n{proc.stderr[-2000:]}")
    return int(match.group(1).replace(",", "")), 0.0


def compile_package() -> None:
    """Byte-compile the measured ``reconcile`` package (its ``__pycache__``), so
    start-up is measured as an installed user runs it, not compiling from source."""
    import compileall

    import reconcile

    compileall.compile_dir(str(Path(reconcile.__file__).parent), quiet=1)


def cpu_seconds(argv: list[str]) -> float:
    """CPU time the program reports for its measured loop (outside valgrind)."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONHASHSEED="0"))
    try:
        return float(proc.stderr.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return float("nan")


def flatness(sizes: tuple[int, ...], source: Path | None) -> list[tuple[int, float]]:
    """``check`` instructions per line on the first ``n`` lines of one trace, for
    each ``n`` in ``sizes``: ``(I(n lines) - I(1 line)) / n`` (start-up cancelled)."""
    check = [sys.executable, "-m", "reconcile", "check"]
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp, "full.jsonl")
        realistic_trace(max(sizes), full, source)
        lines = full.read_bytes().splitlines(keepends=True)
        one = Path(tmp, "1.jsonl")
        one.write_bytes(lines[0])
        start, _ = instructions([*check, str(one)])
        out = []
        for n in sizes:
            part = Path(tmp, f"{n}.jsonl")
            part.write_bytes(b"".join(lines[:n]))
            total, _ = instructions([*check, str(part)])
            out.append((n, (total - start) / n))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000, help="N (the runs use N and 2N)")
    parser.add_argument("--trace", type=Path, help="measure this capture (repeated) instead")
    parser.add_argument("--flat", action="store_true",
                        help="check per line at 10^4 and 10^5 lines (about 10 minutes)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.flat:
        rows = flatness((10**4, 10**5), args.trace)
        print(f"trace: {'capture ' + str(args.trace) if args.trace else 'simulator + metadata'}"
              f"; check per line = (I(N lines) - I(1 line)) / N; PYTHONHASHSEED=0")
        print("| lines | instructions per line | / at 10^4 |")
        print("|---:|---:|---:|")
        for n, per_line in rows:
            print(f"| {n:,} | {per_line:,.0f} | {per_line / rows[0][1]:.3f}x |")
        return 0
    py = sys.executable
    n = args.lines
    with tempfile.TemporaryDirectory() as tmp:
        small, big, one = Path(tmp, "n.jsonl"), Path(tmp, "2n.jsonl"), Path(tmp, "1.jsonl")
        width = realistic_trace(n, small, args.trace)
        realistic_trace(2 * n, big, args.trace)
        realistic_trace(1, one, args.trace)
        floor_py, engine_py = Path(tmp, "floor.py"), Path(tmp, "engine.py")
        floor_py.write_text(DECODE_FLOOR)
        engine_py.write_text(ENGINE)

        rows = []
        # check / decode floor, per line
        check = [py, "-m", "reconcile", "check"]
        c1, _ = instructions([*check, str(small)])
        c2, _ = instructions([*check, str(big)])
        d1, _ = instructions([py, str(floor_py), str(small)])
        d2, _ = instructions([py, str(floor_py), str(big)])
        per_check, per_decode = (c2 - c1) / n, (d2 - d1) / n
        rows.append(("check per line", per_check, "decode floor per line", per_decode, 2.5))

        # engine / engine floor, per event (decoding subtracted)
        base, _ = instructions([py, str(engine_py), str(big), "none"])
        eng, _ = instructions([py, str(engine_py), str(big), "engine"])
        flo, _ = instructions([py, str(engine_py), str(big), "floor"])
        per_engine, per_floor = (eng - base) / (2 * n), (flo - base) / (2 * n)
        rows.append(("engine per event", per_engine, "engine floor per event", per_floor, 8.0))

        # start-up, with our modules' bytecode cached as in an installed package
        compile_package()
        s_bare, _ = instructions([py, "-c", START])
        for command in ("check", "replay"):
            s_cmd, _ = instructions([py, "-m", "reconcile", command, str(one)])
            rows.append((f"{command} start-up", s_cmd, "python + import orjson", s_bare, 1.5))

        cpu = {
            "check per line": None,
            "engine per event": (
                cpu_seconds([py, str(engine_py), str(big), "engine"]) / (2 * n),
                cpu_seconds([py, str(engine_py), str(big), "floor"]) / (2 * n),
            ),
        }

    print(f"trace: {'capture ' + str(args.trace) if args.trace else 'simulator + metadata'}, "
          f"N = {n:,} lines, mean {width} bytes per line; PYTHONHASHSEED=0")
    print(f"| figure | instructions | floor | ratio | target | CPU (us) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, mine, floor_name, floor, target in rows:
        ratio = mine / floor
        verdict = "met" if ratio <= target else "MISSED"
        extra = ""
        times = cpu.get(name)
        if times:
            extra = f"{times[0] * 1e6:.2f} vs {times[1] * 1e6:.3f}"
        print(f"| {name} / {floor_name} | {mine:,.0f} | {floor:,.0f} | {ratio:.2f}x | "
              f"<= {target}x {verdict} | {extra} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
