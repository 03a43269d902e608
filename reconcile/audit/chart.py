"""A chart of an audit's refusal mix: HTML (no dependency) or PNG/SVG/PDF (matplotlib).

Two groups of horizontal bars, each on its own scale: refusals per reason, and breaks
per PROTOCOL section-10 rule (refused in one colour, advisories in another), with the
files read, unreadable and with refusals in the title. The chart is drawn from the
``report`` part only, so the same inputs give the same HTML bytes.
"""

from __future__ import annotations

import html
import os
from typing import Any

from ._report import rule_kind
from ._runner import AuditError

__all__ = ["write_chart", "chart_html", "CHART_SUFFIXES"]

CHART_SUFFIXES = (".html", ".htm", ".png", ".svg", ".pdf")

_REFUSAL, _ADVISORY, _REASON = "#c0392b", "#e6a23c", "#2c6fbb"


def _bars(report: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    """(group, label, value, colour) in drawing order."""
    bars = [("refusals by reason", reason, n, _REASON) for reason, n in report["reasons"].items()]
    for rule in report["rules"]:
        colour = _REFUSAL if rule["refusal"] else _ADVISORY
        bars.append(
            ("section-10 rules broken",
             f"rule {rule['rule']}: {_short(rule['title'])} ({rule_kind(rule)})",
             rule["count"], colour)
        )
    return bars


def _short(title: str, width: int = 60) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


def _title(report: dict[str, Any]) -> str:
    files = report["files"]
    return (
        f"reconcile audit: {files['read']:,} files read, {files['unreadable']:,} unreadable, "
        f"{files['with_refusals']:,} with refusals; {report['lines']:,} lines, "
        f"{report['refused']:,} refused"
    )


def chart_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page with the chart as inline SVG (no script, no fetch)."""
    bars = _bars(report)
    width, label_w, bar_w, row = 960, 430, 420, 26
    top = 50
    y = top
    parts = []
    # Each group has its own scale: advisories can outnumber refusals a thousand times.
    biggest: dict[str, int] = {}
    for name, _, value, _ in bars:
        biggest[name] = max(biggest.get(name, 0), value)
    group = None
    for name, label, value, colour in bars:
        if name != group:
            group = name
            y += 8
            parts.append(
                f'<text x="8" y="{y + 14}" font-weight="bold">{html.escape(name)}</text>'
            )
            y += row
        length = max(1, round(bar_w * value / (biggest[name] or 1)))
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{html.escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{length}" height="{row - 8}" fill="{colour}">'
            f"<title>{html.escape(label)}: {value:,}</title></rect>"
            f'<text x="{label_w + length + 6}" y="{y + 15}">{value:,}</text>'
        )
        y += row
    if not bars:
        parts.append(f'<text x="8" y="{y + 20}">nothing refused, no rule broken</text>')
        y += 2 * row
    title = html.escape(_title(report))
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 20}" '
        f'font-family="sans-serif" font-size="13">'
        f'<text x="8" y="24" font-size="15" font-weight="bold">{title}</text>'
        + "".join(parts)
        + "</svg>"
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{title}</title></head>\n<body>\n{svg}\n</body></html>\n"
    )


def write_chart(report: dict[str, Any], path: str) -> None:
    """Write the chart; the format follows the file's suffix.

    Raises:
        AuditError: an unknown suffix, matplotlib missing for an image, or the file
            cannot be written.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in CHART_SUFFIXES:
        raise AuditError(f"--chart: {path}: use one of {', '.join(CHART_SUFFIXES)}")
    try:
        if suffix in (".html", ".htm"):
            with open(path, "w", encoding="utf-8") as out:
                out.write(chart_html(report))
        else:
            _write_image(report, path)
    except OSError as exc:
        raise AuditError(f"cannot write the chart {path}: {exc.strerror or exc}") from None


def _write_image(report: dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise AuditError(
            f"--chart {path}: an image needs matplotlib (pip install 'reconcile-chat[audit]'), "
            "or write .html"
        ) from None
    bars = _bars(report)
    groups = list(dict.fromkeys(name for name, _, _, _ in bars))
    heights = [sum(1 for b in bars if b[0] == g) for g in groups] or [1]
    figure, all_axes = plt.subplots(
        max(len(groups), 1), 1, squeeze=False,
        figsize=(10, 1.4 + 0.45 * sum(heights) + 0.6 * len(heights)),
        gridspec_kw={"height_ratios": heights},
    )
    try:
        if not bars:
            axes = all_axes[0][0]
            axes.text(0.5, 0.5, "nothing refused, no rule broken", ha="center", va="center")
            axes.set_axis_off()
        # Each group on its own axes and scale: advisories can outnumber refusals a
        # thousand times.
        for (axes,), group in zip(all_axes, groups):
            chosen = [b for b in bars if b[0] == group][::-1]
            positions = list(range(len(chosen)))
            values = [value for _, _, value, _ in chosen]
            axes.barh(positions, values, color=[colour for _, _, _, colour in chosen])
            axes.set_yticks(positions, [label for _, label, _, _ in chosen])
            axes.set_xlim(0, max(values) * 1.15 or 1)
            for position, value in zip(positions, values):
                axes.annotate(f" {value:,}", (value, position), va="center")
            axes.set_title(group, fontsize=10, loc="left")
        figure.suptitle(_title(report), fontsize=10)
        figure.tight_layout()
        # No creation date or version in the metadata: same report, same bytes.
        metadata = {".png": {"Software": None}, ".svg": {"Date": None},
                    ".pdf": {"CreationDate": None}}[os.path.splitext(path)[1].lower()]
        figure.savefig(path, metadata=metadata)
    finally:
        plt.close(figure)
