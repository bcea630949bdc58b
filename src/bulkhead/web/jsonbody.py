"""A JSON body's size in values and its nesting, bounded before any parser sees it.

A body limit in bytes does not bound what parsing costs: orjson builds one
Python object per value while it holds the interpreter lock, so 8 MiB of
`[],[],...` keeps every other thread (the event loop included) waiting for
a quarter of a second, and nesting deeper than orjson's serializer accepts
(254 levels) turns the first re-serialisation of the body into a server
error.  `check_shape` estimates both with a few byte-string operations that
run in C over the raw body, and refuses a body over either bound:

* strings are dropped first (escaped backslashes and quotes removed, then
  every other piece between two quotes), so brackets and commas inside
  text never count;
* the cost of a parse is about one unit per comma (a number or a member),
  two per string and four per object or array;
* the nesting depth is how many passes of removing innermost bracket pairs
  the brackets take to vanish (objects and arrays alike).

Malformed JSON is left to the parser to report: the estimate only ever
refuses what would be too costly or too deep if it parsed.
"""

from __future__ import annotations

from collections.abc import Iterator

from bulkhead.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from bulkhead.web.scope import Scope, header

MAX_COST = 1_500_000
"""About 25 ms of parsing on one core: 1.5 M numbers, 750 k strings or 375 k containers."""
MAX_DEPTH = 64
"""Far more than any tool schema needs (OpenAI's strict schemas stop at 5 levels)."""

_SMALL = 16 * 1024  # at two units a byte at most, a body this small is always cheap
# Bytes are counted and strings dropped a segment at a time: no C call holds the interpreter
# lock for long (a count over 8 MiB takes milliseconds; a split of 256 KiB of short strings,
# several).
_SEGMENT = 64 * 1024
_OTHER_THAN_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_BACKSLASH = ord("\\")


def check_shape(body: bytes, *, max_cost: int = MAX_COST, max_depth: int = MAX_DEPTH) -> None:
    """Raise `PayloadTooLarge` for a body too costly to parse, `InvalidRequest` for one too deep.

    Linear in the body's size, in C calls over at most `_SEGMENT` bytes each, so a
    worker thread running it lets the event loop in between.
    """
    brackets = _count(body, b"[", b"{")
    if brackets <= max_depth and len(body) <= _SMALL:
        return
    # Counting brackets, commas and quotes inside strings too is an upper bound.
    if brackets <= max_depth and _count(body, b",", b'"') + 4 * brackets <= max_cost:
        return
    structure, strings = _structure(body, max_cost)
    containers = _count(structure, b"[", b"{")
    if _count(structure, b",") + 2 * strings + 4 * containers > max_cost:
        raise _too_costly()
    if containers > max_depth and _depth_exceeds(structure, max_depth):
        raise InvalidRequest(f"The JSON body is nested deeper than {max_depth} levels.")


def require_json_media_type(scope: Scope) -> None:
    """Refuse (415) a body its client labels as other than JSON; an unlabelled one is taken
    as JSON (OpenAI's clients always label theirs)."""
    declared = header(scope, b"content-type")
    if declared is None:
        return
    media = declared.split(b";", 1)[0].strip().lower()
    if media != b"application/json" and not (
        media.startswith(b"application/") and media.endswith(b"+json")
    ):
        raise UnsupportedMediaType(
            "The request body must be JSON: send it with 'Content-Type: application/json'."
        )


def _too_costly() -> PayloadTooLarge:
    return PayloadTooLarge(
        "The JSON body holds too many values to parse; split the request into smaller ones.",
        code="json_too_complex",
    )


def _structure(body: bytes, max_cost: int) -> tuple[bytes, int]:
    """The body without its strings, and how many strings there were."""
    if _count(body, b'"') > max_cost:  # before splitting, which costs an object per piece
        raise _too_costly()
    kept: list[bytes] = []
    strings = 0
    inside = 0  # 1 while a segment starts inside a string
    for segment in _segments(body):
        # In valid JSON every backslash starts an escape; pairing them left to right is
        # what a JSON lexer does, so after these two the only quotes left delimit strings.
        pieces = segment.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')
        kept.append(b"".join(pieces[inside::2]))
        strings += len(pieces) - 1
        inside = (inside + len(pieces) - 1) % 2
    return b"".join(kept), strings // 2


def _count(body: bytes, *needles: bytes) -> int:
    """How many times the one-byte `needles` occur in `body`, a segment at a time."""
    return sum(
        body.count(needle, at, at + _SEGMENT)
        for at in range(0, len(body), _SEGMENT)
        for needle in needles
    )


def _segments(body: bytes) -> Iterator[bytes]:
    """`body` in pieces of about `_SEGMENT` bytes, none ending inside a run of backslashes
    (so no escape is cut in two)."""
    at = 0
    while at < len(body):
        end = min(len(body), at + _SEGMENT)
        while end < len(body) and body[end - 1] == _BACKSLASH:
            end += 1
        yield body[at:end]
        at = end


def _depth_exceeds(structure: bytes, max_depth: int) -> bool:
    """Whether balanced brackets nest deeper than `max_depth` (unbalanced: left to the parser).

    `replace` does not rescan what it joins, so each pass removes exactly one level.
    """
    brackets = structure.translate(_AS_SQUARE, _OTHER_THAN_BRACKETS)
    for _ in range(max_depth):
        shorter = brackets.replace(b"[]", b"")
        if not shorter or len(shorter) == len(brackets):
            return False  # all gone; or nothing pairs up: malformed, the parser says so
        brackets = shorter
    return len(brackets.replace(b"[]", b"")) < len(brackets)
