"""One trace's ``check`` document: the single place the audit judges a trace.

:func:`check_document` returns what ``reconcile check --json`` prints for one trace
(``CheckReport.to_dict()``): lines and events, every refusal, refusals per reason, one
entry per kind of PROTOCOL section-10 break seen, counts per thread, and the ``seq``
gaps. The audit runs it on every file and merges the documents; it never looks inside
the engine.

It is ``reconcile.check_lines(lines).to_dict()``: the audit and ``reconcile check``
judge a trace with the same code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconcile import check_lines

__all__ = ["check_document", "FIRST_LINES"]

#: How many line numbers a rule entry lists (the first ones).
FIRST_LINES = 5


def check_document(lines: Iterable[bytes | str]) -> dict[str, Any]:
    """Check one trace; the ``check --json`` document (see the module docstring).

    Streaming: lines are consumed one at a time; memory is the engine's own state.
    """
    return check_lines(lines).to_dict()
