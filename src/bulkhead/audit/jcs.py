"""RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.

An audit entry is hashed as its canonical form, so two processes that build
the same event must produce the same bytes.  JCS fixes every free choice of
JSON: no whitespace, object members sorted by their UTF-16 code units, strings
with a minimal set of escapes, and numbers printed as ECMAScript prints them.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import orjson

_MAX_EXACT_INTEGER = 2**53
"""Every integer of magnitude up to 2**53 is an IEEE-754 double (RFC 8785 §3.2.2.3)."""

# RFC 8785 §3.2.2.2: escape '"', '\' and the control characters U+0000..U+001F,
# using the two-character forms where JSON has one and \u00xx (lowercase hex)
# otherwise; every other character, U+007F and non-ASCII included, is literal.
_ESCAPES = {code: f"\\u{code:04x}" for code in range(0x20)} | {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_LITERALS = {None: "null", True: "true", False: "false"}


def canonicalize(value: object) -> bytes:
    """Returns the RFC 8785 canonical UTF-8 form of a JSON value.

    Accepts dict (with str keys), list, tuple, str, int, float, bool and None.
    Raises ValueError for NaN, infinities, integers that are not exactly a
    double, and lone surrogates (RFC 8785 requires I-JSON, RFC 7493), and
    TypeError for any other type.
    """
    if isinstance(value, dict):
        fast = _flat_object(value)
        if fast is not None:
            return fast
    try:
        return _serialize(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("JCS input must not contain lone surrogates (RFC 7493 §2.1)") from exc


def _fast_scalar(value: object) -> bool:
    """Whether orjson prints `value` exactly as RFC 8785 does.

    True for None, booleans, safe integers and strings (orjson escapes just
    the characters §3.2.2.2 requires, the same way), and for floats in
    [1e-4, 1e15) that are not whole numbers: there both print the shortest
    round-trip digits in plain notation.  Anything else takes the slow path.
    """
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -_MAX_EXACT_INTEGER <= value <= _MAX_EXACT_INTEGER
    if isinstance(value, float):
        return 1e-4 <= abs(value) < 1e15 and not value.is_integer()
    return False


def _flat_object(members: dict[object, object]) -> bytes | None:
    """The canonical form of a flat object with ASCII keys via orjson, else None.

    Audit events are such objects; this is their hot path (about 10x faster).
    """
    for key, member in members.items():
        if not isinstance(key, str) or not key.isascii():
            return None
        # `_fast_scalar` inlined for the exact types an event holds (once per member of
        # every audit entry); anything else, subclasses included, asks it.
        kind = type(member)
        if kind is str or member is None:
            continue
        if kind is int:
            if -_MAX_EXACT_INTEGER <= member <= _MAX_EXACT_INTEGER:  # type: ignore[operator]
                continue
            return None
        if kind is float:
            if 1e-4 <= abs(member) < 1e15 and not member.is_integer():  # type: ignore[arg-type,attr-defined]
                continue
            return None
        if not _fast_scalar(member):
            return None
    try:
        return orjson.dumps(members, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None


def serialize_number(value: float) -> str:
    """Returns a double as ECMAScript's Number::toString prints it (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(value):
        raise ValueError(f"JSON has no form for {value!r} (RFC 8785 §3.2.2.3)")
    if value == 0:
        # Minus zero serialises as 0 (ECMA-262 Number::toString, step 2).
        return "0"
    if value < 0:
        return "-" + _serialize_positive(-value)
    return _serialize_positive(value)


def _serialize(value: object) -> str:
    # RFC 8785 §3.2.2: literals, strings and numbers have exactly one form each.
    if isinstance(value, str):
        return _serialize_string(value)
    if value is None or isinstance(value, bool):
        return _LITERALS[value]
    if isinstance(value, int):
        return _serialize_integer(value)
    if isinstance(value, float):
        return serialize_number(value)
    if isinstance(value, dict):
        return _serialize_object(value)
    if isinstance(value, list | tuple):
        # RFC 8785 §3.2.1: elements keep their order; no whitespace anywhere.
        return "[" + ",".join([_serialize(item) for item in value]) + "]"
    raise TypeError(f"JCS cannot encode {type(value).__name__}")


def _serialize_object(members: dict[object, object]) -> str:
    names = [name for name in members if isinstance(name, str)]
    if len(names) != len(members):
        raise TypeError("JSON object names must be str")
    # RFC 8785 §3.2.3: members are sorted by the UTF-16 code units of their
    # names, compared as unsigned integers.  For ASCII names that is the order
    # of str; otherwise big-endian UTF-16 bytes sort the same as code units.
    if all(map(str.isascii, names)):
        names.sort()
    else:
        names.sort(key=_utf16_key)
    pairs = [_serialize_string(name) + ":" + _serialize(members[name]) for name in names]
    return "{" + ",".join(pairs) + "}"


def _utf16_key(name: str) -> bytes:
    # "surrogatepass" lets a lone surrogate sort here; encoding the output rejects it.
    return name.encode("utf-16-be", "surrogatepass")


def _serialize_string(text: str) -> str:
    if _NEEDS_ESCAPE.search(text) is None:
        return '"' + text + '"'
    return '"' + text.translate(_ESCAPES) + '"'


def _serialize_integer(value: int) -> str:
    # JSON numbers are doubles (RFC 8785 §3.2.2.3), so a large integer prints
    # as its nearest double.  That text must still denote exactly this integer:
    # otherwise every reader would see a silently changed value (2**53 + 1).
    if -_MAX_EXACT_INTEGER <= value <= _MAX_EXACT_INTEGER:
        return str(value)
    message = f"integer {value} is not exactly representable as a JSON number"
    try:
        text = serialize_number(float(value))
    except OverflowError:
        raise ValueError(message) from None
    if Decimal(text) != value:
        raise ValueError(message)
    return text


def _serialize_positive(value: float) -> str:
    """ECMA-262 Number::toString steps 5-10 for a positive finite double."""
    digits, n = _shortest_digits(value)
    k = len(digits)
    if k <= n <= 21:
        # The digits, then n - k zeros: an integer below 10**21.
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        # A decimal point inside the digits.
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        # "0." and -n zeros before the digits.
        return "0." + "0" * -n + digits
    # Exponent form: one digit, the rest after a point, then e+/- and |n - 1|.
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if n > 1 else '-'}{abs(n - 1)}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """Returns (s, n) of ECMA-262 Number::toString: value = 0.s * 10**n, s shortest."""
    # Python's repr also prints the shortest digit string that reads back as
    # the same double, choosing the closest one on ties, as ECMA-262 asks.
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    n = len(whole) + int(exponent or "0")
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    return stripped.rstrip("0"), n
