"""OpenAI's search `filters` on file attributes: checked once at the door, then applied.

A comparison filter is `{"type": eq|ne|gt|gte|lt|lte|in|nin, "key", "value"}`;
a compound one `{"type": and|or, "filters": [...]}`.  Nesting is bounded, and
a comparison of values of different types is simply false (never an error).
A whole filter holds at most `MAX_COMPARISONS` comparisons and an `in`/`nin`
list at most `MAX_VALUES` values, so testing one file's attributes costs a
few thousand steps at most (32 a level, 4 deep was a million comparisons per
file).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulkhead.errors import InvalidRequest

Filter = Callable[[dict[str, Any]], bool]
_COMPARE = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})
MAX_DEPTH, MAX_FILTERS = 4, 32
MAX_COMPARISONS, MAX_VALUES = 64, 256
_SCALAR = (str, int, float, bool)


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="filters")


def parse_filters(value: Any) -> Filter:
    """The filter `value` describes, refused (400 `param=filters`) beyond the bounds above."""
    count = [0]
    return _parse(value, 0, count)


def _parse(value: Any, depth: int, count: list[int]) -> Filter:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise _bad("A filter must be an object with a 'type'.")
    kind = value["type"]
    if kind in ("and", "or"):
        if depth >= MAX_DEPTH:
            raise _bad(f"Filters nest at most {MAX_DEPTH} deep.")
        parts = value.get("filters")
        if set(value) != {"type", "filters"} or not isinstance(parts, list):
            raise _bad("A compound filter needs a 'filters' list.")
        if not 1 <= len(parts) <= MAX_FILTERS:
            raise _bad(f"A compound filter takes 1 to {MAX_FILTERS} filters.")
        inner = [_parse(p, depth + 1, count) for p in parts]
        if kind == "and":
            return lambda attrs: all(f(attrs) for f in inner)
        return lambda attrs: any(f(attrs) for f in inner)
    if kind not in _COMPARE:
        raise _bad(f"Unknown filter type '{kind}'.")
    count[0] += 1
    if count[0] > MAX_COMPARISONS:
        raise _bad(f"A filter holds at most {MAX_COMPARISONS} comparisons.")
    key, target = value.get("key"), value.get("value")
    if set(value) != {"type", "key", "value"} or not isinstance(key, str):
        raise _bad("A comparison filter takes 'type', 'key' and 'value'.")
    if kind in ("in", "nin"):
        if not isinstance(target, list) or not all(isinstance(v, _SCALAR) for v in target):
            raise _bad(f"'{kind}' compares with a list of strings, numbers or booleans.")
        if len(target) > MAX_VALUES:
            raise _bad(f"'{kind}' compares with at most {MAX_VALUES} values.")
    elif not isinstance(target, _SCALAR):
        raise _bad("A filter's 'value' must be a string, number or boolean.")
    return lambda attrs: _compare(kind, attrs.get(key), target)


def _same_type(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (isinstance(a, numbers) and isinstance(b, numbers)) or type(a) is type(b)


def _compare(kind: str, found: Any, target: Any) -> bool:
    if kind == "in":
        return any(_same_type(found, t) and found == t for t in target)
    if kind == "nin":
        return not any(_same_type(found, t) and found == t for t in target)
    if found is None or not _same_type(found, target):
        return kind == "ne"
    if kind == "eq":
        return bool(found == target)
    if kind == "ne":
        return bool(found != target)
    if isinstance(found, bool):
        return False
    ordered = {"gt": found > target, "gte": found >= target, "lt": found < target}
    return bool(ordered.get(kind, found <= target))
