"""The wire: trace lines and decoded dicts in, checked event data out (no I/O).

Everything here is a pure function of its argument. Decoding is strict RFC 8259 JSON,
as protocol section 1 asks: no ``NaN``/``Infinity``, no byte-order mark, no
unpaired surrogate, UTF-8 only. orjson already refuses all of those and is several
times faster than the standard library, so it does the work; the one thing it does
differently (integers beyond 64 bits come back as floats) is caught below and handed
to a strict wrapper around the standard library.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeGuard

import orjson

from ._errors import ReconcileError

__all__ = [
    "WireError",
    "decode_json",
    "is_blank",
    "is_id",
    "epoch_key",
    "canonical_json",
    "check_agent_message",
    "check_decoded_integers",
    "needs_exact",
    "parse_json_object",
    "STRING_FIELDS",
    "KNOWN_TYPES",
    "decoder_keys",
]


class WireError(ReconcileError, ValueError):
    """A line or payload that is not strict JSON; the message says why.

    A ``ValueError`` too, so code written against the standard library's decoders
    (which raise ``ValueError``) keeps catching it.
    """


def decoder_keys(*names: str) -> tuple[str, ...]:
    """The ``str`` objects orjson hands out for these keys, in order.

    orjson keeps one ``str`` object per short key and puts that very object in every
    dict it decodes; those dicts are of CPython's general kind, which compares a key
    that is not the same object character by character (a rich comparison, about 160
    instructions), where the same object is answered by identity. Looking the fields
    of a decoded event up with orjson's own objects spares that on every field found
    (about 1,200 instructions per event on the simulator's trace). Nothing depends
    on it but speed (tests/test_shortcuts.py feeds both kinds of keys): should
    orjson hand out another object one day, the lookups compare as before.
    """
    keys = tuple(orjson.loads(orjson.dumps(dict.fromkeys(names, 0))))
    assert keys == names
    return keys


#: ``agent_message`` types the protocol knows; any other type is ignored.
KNOWN_TYPES = frozenset(
    {"text", "tool_use", "tool_result", "system_info", "error", "done", "a2a_handoff"}
)

#: Fields that must be strings when present and not null (section 2 step 3).
STRING_FIELDS = (
    "content",
    "invocationId",
    "turnInvocationId",
    "messageId",
    "error",
    "toolName",
)

_BLANK = b" \t\r\n"
# orjson turns integers outside [-2**63, 2**64) into floats; those have at least
# nineteen digits. To find a run of nineteen digits in a line (bytes), map every
# digit to "0" and search for nineteen zeros: two C loops, about 7x faster than the
# regex \d{19}. For text (system_info payloads, short) the regex is faster:
# str.translate is not.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_ZEROS = b"0" * 19
_NINETEEN_DIGITS = re.compile(r"\d{19}")


def is_blank(line: bytes | str) -> bool:
    """A line holding only spaces, tabs and carriage returns is skipped.

    A trailing ``\\n`` (the line's own terminator, when a caller passes lines as a
    file yields them) counts as blank too: a line can hold no other ``\\n``.
    """
    first = line[:1]
    if first == b"{" or first == "{":
        return False  # the usual case, answered without copying the line
    if isinstance(line, str):
        return not line.strip(" \t\r\n")
    return not line.strip(_BLANK)


def is_id(value: object) -> TypeGuard[str]:
    """An id is a non-empty string; anything else counts as absent."""
    return isinstance(value, str) and value != ""


def _reject_constant(name: str) -> Any:
    raise WireError(f"{name} is not JSON")


_STRICT = json.JSONDecoder(parse_constant=_reject_constant)


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


_BOM_DETAIL = "the line starts with a UTF-8 byte-order mark (BOM); strict JSON has none"


def _decode_stdlib(text: str) -> Any:
    if text.startswith("\ufeff"):
        raise WireError(_BOM_DETAIL)
    try:
        value = _STRICT.decode(text)
    except json.JSONDecodeError as exc:
        raise WireError(str(exc)) from None
    except RecursionError:
        raise WireError("nested too deeply") from None
    except WireError:
        raise  # NaN or Infinity (``_reject_constant``): already worded
    except ValueError:
        # Python refuses to convert a decimal integer of more than 4,300 digits
        # (sys.int_max_str_digits, a guard against quadratic-time parsing) and the
        # json module lets that ValueError through. Such a line is valid RFC 8259 but
        # no Python client could decode it, and the engine may not change the global
        # limit (it is pure), so the line is refused as malformed_line; inside a
        # system_info payload the same rule makes the payload plain text (section 5).
        raise WireError("an integer of more than 4300 digits cannot be decoded") from None
    if _has_lone_surrogate(value):
        raise WireError("unpaired surrogate escape")
    return value


def decode_json(raw: bytes | str) -> Any:
    """Decode one strict JSON text.

    Raises:
        WireError: not UTF-8, not strict JSON.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        # orjson refuses numbers that overflow a double; strict JSON does not.
        if "number" not in message:
            if raw[:3] == b"\xef\xbb\xbf" or raw[:1] == "\ufeff":
                raise WireError(_BOM_DETAIL) from None  # not "not valid UTF-8": say BOM
            if "UTF-8" in message:
                # orjson says "str is not valid UTF-8: surrogates not allowed" for
                # any bad byte; say what a person needs to know.
                message = "the line is not valid UTF-8"
            raise WireError(message) from None
    else:
        if not needs_exact(raw):
            return value
    # Rare path: a huge number somewhere. Decode exactly with the standard library.
    if not isinstance(raw, str):  # bytes, bytearray
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"not UTF-8: {exc}") from None
    return _decode_stdlib(raw)


def needs_exact(raw: bytes | bytearray | str) -> bool:
    """Whether ``raw`` holds a run of nineteen digits, so that orjson may have
    decoded an integer beyond 64 bits as a float (or a string holds the digits: then
    the exact decode gives the same value, only slower).

    Complexity: O(len(raw)), two C loops; it costs about as much as a third of the
    decode, so the engine asks only where a float could change the outcome (a
    ``timestamp`` or ``seq``, a non-string ``seqEpoch``, ``toolInput``, a history
    page, the wording of a refusal), never on every line.
    """
    if isinstance(raw, str):
        return _NINETEEN_DIGITS.search(raw) is not None
    return _NINETEEN_ZEROS in raw.translate(_DIGITS_TO_ZERO)


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The ``system_info`` sub-protocol: the JSON object in ``text``, else ``None``.

    Plain text and JSON arrays, numbers or strings all count as "not a JSON object",
    so only text starting with ``{`` is decoded at all.
    """
    if text.__class__ is not str:
        text = str(text)  # a str subclass from an in-process caller; orjson wants str
    if not text.lstrip(" \t\n\r").startswith("{"):
        return None
    try:
        # No scan for big integers: no payload field the engine reads is a number, so
        # a float where the text holds a 20-digit integer changes nothing. A number
        # orjson cannot read at all (beyond a double) goes the exact way.
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            value = decode_json(text)
        except WireError:
            return None
    return value if isinstance(value, dict) else None


def epoch_key(epoch: Any) -> Any:
    """A hashable key that is equal for equal ``seqEpoch`` values.

    JSON values are compared as canonical JSON text, so ``1``, ``1.0`` and ``true``
    are three different epochs (Python's ``==`` would say they are equal), and two
    objects with the same members in another order are the same epoch.
    """
    if epoch is None or epoch.__class__ is str:
        return epoch  # the usual case, and cheap
    try:
        return ("json", canonical_json(epoch))
    except ValueError:
        # A container that contains itself (only possible from in-process callers)
        # has no JSON text; it equals only itself.
        return ("object", id(epoch))


def canonical_json(value: Any) -> str:
    """Compact JSON text with sorted keys, for a value of any depth.

    Written as a loop over an explicit stack, not with ``json.dumps``: a decoded
    message can be nested deeper than Python's recursion limit allows ``json.dumps``
    to go, and the engine must never raise. Values that are not JSON (only possible
    from in-process callers) are written as their ``repr``.
    """
    parts: list[str] = []
    stack: list[tuple[bool, Any]] = [(False, value)]
    budget = _CANONICAL_BUDGET
    while stack:
        literal, v = stack.pop()
        if literal:
            parts.append(v)
            continue
        budget -= 1
        if budget < 0:
            raise ValueError("too large or cyclic to compare as JSON")
        if isinstance(v, dict):
            items = sorted(v.items(), key=lambda kv: str(kv[0]))
            _push_members(stack, "{", "}", [(json.dumps(str(k)) + ":", x) for k, x in items])
        elif isinstance(v, (list, tuple)):
            _push_members(stack, "[", "]", [("", x) for x in v])
        elif isinstance(v, int) and not isinstance(v, bool) and not -_HUGE < v < _HUGE:
            # An integer of more than 4,300 digits has no decimal text in Python (only
            # possible from in-process callers: such a line is refused). Its hex text
            # is exact, so equal epochs still compare equal and different ones not.
            parts.append(f"int:{v:#x}")
        else:
            try:
                parts.append(json.dumps(v))
            except (TypeError, ValueError):
                parts.append(f"repr:{safe_repr(v)}")
    return "".join(parts)


#: Integers at or beyond this size have more than 4,300 decimal digits: Python will
#: not convert them to text (``ValueError``), so the engine never tries.
_HUGE = 10**4300
_NEG_HUGE = -_HUGE


def safe_repr(value: object) -> str:
    """``repr(value)``, but never raising (a huge integer, a failing ``__repr__``)."""
    try:
        return repr(value)
    except Exception:  # any object an in-process caller passes; a refusal must not raise
        if isinstance(value, int):
            return f"an integer of {value.bit_length()} bits"
        return f"a {type(value).__name__}"


#: Values a canonical_json call may visit; more means a cycle (or an absurd epoch).
_CANONICAL_BUDGET = 1_000_000


def _push_members(
    stack: list[tuple[bool, Any]], opening: str, closing: str, members: list[tuple[str, Any]]
) -> None:
    # Pushed in reverse so they pop in order: opening, k1 v1 "," k2 v2 ..., closing.
    stack.append((True, closing))
    for index, (prefix, member) in enumerate(reversed(members)):
        stack.append((False, member))
        stack.append((True, prefix))
        if index < len(members) - 1:
            stack.append((True, ","))
    stack.append((True, opening))


def check_agent_message(data: dict[str, Any], kind: str) -> str | None:
    """Section 2 step 3: the first wrong field, described, or ``None`` if all fit.

    Complexity: O(1). This runs on every event, so the common case (decoded JSON,
    every field absent or of exactly the right type) is answered by one ``get`` and
    one class test per field, written out; a loop over the field names costs about
    twice as much. Anything else takes the slow path, which also names the problem.
    """
    get = data.get
    if (
        ((v := get("content")) is None or v.__class__ is str)
        and ((v := get("invocationId")) is None or v.__class__ is str)
        and ((v := get("turnInvocationId")) is None or v.__class__ is str)
        and ((v := get("messageId")) is None or v.__class__ is str)
        and ((v := get("error")) is None or v.__class__ is str)
        and ((v := get("toolName")) is None or v.__class__ is str)
        and ((v := get("timestamp")) is None or v.__class__ is int)
        and ((v := get("seq")) is None or v.__class__ is int)
    ):
        if kind == "text":
            origin = get("origin")
            if get("content").__class__ is str and (
                origin is None or origin == "stream" or origin == "callback"
            ):
                return None
        elif kind != "system_info" or get("content").__class__ is str:
            return None
    return _check_slowly(data, kind)


def _check_slowly(data: dict[str, Any], kind: str) -> str | None:
    get = data.get
    for name in STRING_FIELDS:
        value = get(name)
        if value is not None and not isinstance(value, str):
            return f"{name} must be a string, got {_type_name(value)}"
    ts = get("timestamp")
    if ts is not None and type(ts) is not int:
        return f"timestamp must be an integer of ms, got {_type_name(ts)}"
    seq = get("seq")
    if seq is not None and type(seq) is not int:
        return f"seq must be an integer, got {_type_name(seq)}"
    if kind == "text":
        if not isinstance(get("content"), str):
            return "text needs a string content"
        origin = get("origin")
        if origin is not None and origin != "stream" and origin != "callback":
            shown = repr(origin[:40]) if isinstance(origin, str) else _type_name(origin)
            return f"origin must be 'stream' or 'callback', got {shown}"
    elif kind == "system_info" and not isinstance(get("content"), str):
        return "system_info needs a string content"
    return None


def check_decoded_integers(data: dict[str, Any]) -> str | None:
    """Section 2 step 3, for pre-decoded messages only: a ``timestamp`` or ``seq`` of
    more than 4,300 digits, described, else ``None``.

    A line holding such an integer is refused as malformed_line (:func:`decode_json`
    cannot decode it), and lines never reach here with one: orjson only yields 64-bit
    integers, so this check stays off the line path. A decoded message is refused as
    malformed_event, so both paths refuse, and no client ever has to print the number.
    """
    for name in ("timestamp", "seq"):
        value = data.get(name)
        if value.__class__ is int and not _NEG_HUGE < value < _HUGE:
            return f"{name} is {_type_name(value)}, beyond what JSON text can carry here"
    return None


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int) and not -_HUGE < value < _HUGE:
        return f"an integer of more than 4300 digits ({value.bit_length()} bits)"
    if isinstance(value, (int, float)):
        return f"the number {safe_repr(value)}"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


_TYPE_NAMES: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}
