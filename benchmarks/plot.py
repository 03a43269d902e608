"""Draw docs/scaling.png from a results file: events/s against bubbles alive, log-log.

    python -m benchmarks.plot [benchmarks/results/latest.json]

matplotlib is an optional extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ._harness import RESULTS, ROOT

PNG = ROOT / "docs" / "scaling.png"

CURVES = (
    ("engine", "reconcile engine", "o-"),
    ("peers_usual", "usual client: list searched from the end", "s--"),
    ("peers_langgraph", "LangGraph add_messages (replace by id)", "^:"),
)


def draw(results: dict[str, Any], path: Path = PNG) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    series = results["series"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for key, label, style in CURVES:
        points = series.get(key)
        if not points:
            continue
        xs = sorted(int(n) for n in points)
        ax.plot(xs, [points[str(n)] if str(n) in points else points[n] for n in xs], style,
                label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bubbles alive in the thread")
    ax.set_ylabel("events per second (live batch)")
    machine = results.get("machine", {})
    ax.set_title(f"Per-event cost as a chat grows\n{machine.get('cpu', '')}, "
                 f"{machine.get('python', '')}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    print(draw(json.loads(source.read_text())))
