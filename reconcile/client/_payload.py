"""Turning what the socket delivers into the engine's input, the same bytes each time.

Three things the socket can deliver that a trace line cannot hold as is:

* **Binary payloads** (socket.io attachments): ``bytes`` anywhere in an event become
  ``{"$binary": "<base64>"}``, so the event is still one JSON line (an
  ``agent_message`` whose ``data`` is not a usable object is then refused, live and
  on replay alike, and every later line keeps its number).
* **Several arguments**: ``emit(name, a, b)`` gives ``data`` = the first argument and
  the others under the extra top-level key ``args`` (which replay ignores), so the
  event is processed as the server's first argument says, not refused as a list.
* **Integers too long to convert** (Python refuses to turn more than 4,300 digits into
  an ``int``): the socket's JSON decoder keeps such a number as its digit string.
  A field that must be a number then holds a string, and the engine refuses the
  event as ``malformed_event``; nothing crashes, and the trace says the same.

The client feeds the engine the very line :func:`encode_event` makes, and the
recorder writes that line (plus its ``t`` and ``reason`` keys), so the live engine
and the replay of a recording see identical input by construction.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import orjson

__all__ = ["SafeJson", "encode_event", "socket_message", "too_long_integers"]

#: Python's default limit on int <-> decimal string conversion (sys.int_info).
_MAX_DIGITS = getattr(sys.int_info, "default_max_str_digits", 4300) or 4300


class _DigitString(str):
    """An integer literal too long to convert, kept as text (marks it for a warning)."""

    __slots__ = ()


def _parse_int(literal: str) -> Any:
    digits = len(literal) - literal.startswith("-")
    if digits > _MAX_DIGITS:
        return _DigitString(literal)
    return int(literal)


class SafeJson:
    """A ``json`` module for python-socketio whose ``loads`` survives huge integers."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_int", _parse_int)
        return json.loads(text, **kwargs)


def _plain(value: Any) -> Any:
    """A JSON-ready copy of ``value``: bytes as ``{"$binary": base64}``, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$binary": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, _DigitString):
        return str(value)
    return value


def too_long_integers(value: Any) -> int:
    """How many integer literals of ``value`` were too long to convert (kept as text)."""
    if isinstance(value, _DigitString):
        return 1
    if isinstance(value, dict):
        return sum(too_long_integers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(too_long_integers(v) for v in value)
    return 0


def socket_message(event: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """The trace message for one socket delivery: ``{"event", "data"[, "args"]}``."""
    message: dict[str, Any] = {"event": event, "data": _plain(args[0]) if args else {}}
    if len(args) > 1:
        message["args"] = [_plain(a) for a in args[1:]]
    return message


def encode_event(message: dict[str, Any]) -> str:
    """The one JSON line (no newline) the engine is fed and the recorder writes.

    orjson when it can; the standard library for what orjson refuses (integers beyond
    64 bits, nesting deeper than 255 levels), with NaN and infinities as ``null``
    either way, as a JavaScript server's ``JSON.stringify`` would send them.
    """
    try:
        return orjson.dumps(message).decode()
    except TypeError:
        pass
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        return json.dumps(_finite(message), ensure_ascii=False, allow_nan=False)
    finally:
        sys.setrecursionlimit(limit)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
