"""A large JSON body parsed in bounded pieces, so that no parse holds the interpreter lock for long.

orjson parses a body in one C call that holds the interpreter lock from start
to end: for the largest bodies the gateway accepts (8 MiB of text, or a
million values) that is 10 to 25 ms in which the event loop cannot run,
whichever thread parses.  `loads` gives what `orjson.loads` gives (the same
value, or a `JSONDecodeError` for the same bodies) from many orjson calls of
at most about `piece` bytes each:

* the body's layout is found first with numpy, whose operations on arrays
  let go of the lock (the running sums run a slice at a time): where the
  strings are, how deep each byte is nested, where the commas and colons
  between members are;
* a container larger than a piece is split between its members: a run of
  small members is parsed in one call (wrapped in the container's brackets),
  a large member on its own, the same way;
* a string larger than a piece (a long prompt) is decoded in pieces cut
  where no escape sequence, surrogate pair or UTF-8 character is split,
  and joined.

Every piece is parsed by orjson and the pieces' separators are exactly the
commas the layout found, so a malformed body is refused as the whole parse
would refuse it; what the layout alone can tell (brackets that do not match,
text after the value) it refuses itself.  Callers bound the body's shape
first (`jsonbody.check_shape`), which bounds how deep this recurses.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

PIECE = 64 * 1024
_SLICE = 64 * 1024
_GIVE_WAY_S = 0.0001
_WHITESPACE = b" \t\r\n"
_NOT_WHITESPACE = re.compile(rb"[^ \t\r\n]")
_HIGH_SURROGATE = frozenset({b"d8", b"d9", b"da", b"db"})
_CUT_TRIES = 1024
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = {ord("["): ord("]"), ord("{"): ord("}")}


def loads(body: bytes, *, piece: int = PIECE) -> Any:
    """`orjson.loads(body)`, in calls over at most about `piece` bytes of it each."""
    if len(body) <= piece:
        return orjson.loads(body)
    start = _NOT_WHITESPACE.search(body)
    if start is None:
        return orjson.loads(body)  # nothing but whitespace: orjson's own refusal
    return _Layout(body, piece).value(start.start(), _rstrip(body, start.start(), len(body)))


def _malformed(at: int, why: str) -> orjson.JSONDecodeError:
    return orjson.JSONDecodeError(why, "", at)


def _rstrip(body: bytes, start: int, end: int) -> int:
    """Where `body[start:end]` ends without its trailing whitespace (copying a little at a
    time: a copy of megabytes holds the lock for milliseconds)."""
    while end > start:
        tail = body[max(start, end - 4096) : end]
        kept = len(tail.rstrip(_WHITESPACE))
        if kept:
            return end - len(tail) + kept
        end -= len(tail)
    return start


def _spans(start: int, end: int) -> Iterator[tuple[int, int]]:
    """`start` to `end` in slices of `_SLICE`, letting a waiting thread in after each.

    numpy holds the lock for some operations (a cumulative sum that converts,
    finding where a mask is set): on a slice, briefly.  It lets go of it for
    others, and takes it back at once: a thread that waits for the lock (the
    event loop) wakes to find it taken again, and its wait starts over, for as
    long as this runs (tens of milliseconds measured).  A short sleep after
    each slice gives it the lock.
    """
    for at in range(start, end, _SLICE):
        yield at, min(end, at + _SLICE)
        if end - start > _SLICE:
            time.sleep(_GIVE_WAY_S)


def _neutral_escapes(body: bytes) -> np.ndarray:
    """`body`'s bytes with each escaped backslash and escaped quote as `xx`: every quote left
    delimits a string, every backslash left starts another escape.  A slice at a time, never
    cut inside a run of backslashes."""
    if body.find(b"\\") == -1:
        return np.frombuffer(body, dtype=np.uint8)
    out = np.empty(len(body), dtype=np.uint8)
    at = 0
    while at < len(body):
        end = min(len(body), at + _SLICE)
        while end < len(body) and body[end - 1] == _BACKSLASH:
            end += 1
        text = body[at:end].replace(b"\\\\", b"xx").replace(b'\\"', b"xx")
        out[at:end] = np.frombuffer(text, dtype=np.uint8)
        at = end
    return out


class _Layout:
    """Where a body's strings, brackets and separators are, by byte position."""

    def __init__(self, body: bytes, piece: int):
        self.body = body
        self.piece = piece
        size = len(body)
        chars = _neutral_escapes(body)
        self.quotes = np.empty(size, dtype=bool)
        self.commas = np.empty(size, dtype=bool)
        self.colons = np.empty(size, dtype=bool)
        # depth[i]: brackets opened and not closed up to and including byte i.
        self.depth = np.empty(size, dtype=np.int32)
        self.escapes: list[np.ndarray] = []  # where each escape starts, a slice at a time
        quotes, depth = 0, 0  # so far
        for start, end in _spans(0, size):
            part = chars[start:end]
            quote = part == _QUOTE
            counted = np.cumsum(quote, dtype=np.int32) + quotes
            # From an opening quote to the byte before its closing one.
            inside = (counted & 1).astype(bool)
            outside = ~(inside | quote)
            opens = ((part == ord("[")) | (part == ord("{"))) & outside
            closes = ((part == ord("]")) | (part == ord("}"))) & outside
            nested = np.cumsum(opens.astype(np.int32) - closes, dtype=np.int32) + depth
            self.quotes[start:end] = quote
            self.depth[start:end] = nested
            self.commas[start:end] = (part == ord(",")) & outside
            self.colons[start:end] = (part == ord(":")) & outside
            self.escapes.append(np.flatnonzero(part == _BACKSLASH) + start)
            quotes, depth = int(counted[-1]), int(nested[-1])

    def _where(self, marks: np.ndarray, start: int, end: int, level: int) -> np.ndarray:
        """Positions in `start:end` that `marks` marks at nesting `level`."""
        found = [
            np.flatnonzero(marks[a:b] & (self.depth[a:b] == level)) + a
            for a, b in _spans(start, end)
        ]
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)

    def _dips_below(self, start: int, end: int, level: int) -> bool:
        return any(int(self.depth[a:b].min()) < level for a, b in _spans(start, end))

    def value(self, start: int, end: int) -> Any:
        """The value in `body[start:end]`, which starts and ends with other than whitespace."""
        if end - start <= self.piece:
            return orjson.loads(self.body[start:end])
        first = self.body[start]
        if first == _QUOTE:
            return self._string(start, end)
        if first in _OPEN:
            return self._container(start, end)
        return orjson.loads(self.body[start:end])  # no number is this long: orjson refuses it

    def _trimmed(self, start: int, end: int) -> tuple[int, int]:
        found = _NOT_WHITESPACE.search(self.body, start, end)
        if found is None:
            raise _malformed(start, "expected a value")
        return found.start(), _rstrip(self.body, start, end)

    # Containers ---------------------------------------------------------------------------

    def _container(self, start: int, end: int) -> Any:
        body = self.body
        level = int(self.depth[start])
        last = end - 1
        if (
            body[last] != _OPEN[body[start]]
            or int(self.depth[last]) != level - 1
            or self._dips_below(start, last, level)
        ):
            raise _malformed(start, "unbalanced brackets, or text after the value")
        separators = self._where(self.commas, start + 1, last, level)
        firsts = np.concatenate(([start + 1], separators + 1))
        lasts = np.concatenate((separators, [last]))
        is_object = body[start] == ord("{")
        if len(separators) == 0 and _NOT_WHITESPACE.search(body, start + 1, last) is None:
            return {} if is_object else []
        out: Any = {} if is_object else []
        small_from = 0
        for big in [*np.flatnonzero(lasts - firsts > self.piece).tolist(), len(firsts)]:
            self._small_members(out, firsts, lasts, small_from, big)
            if big < len(firsts):
                member = self._trimmed(int(firsts[big]), int(lasts[big]))
                if is_object:
                    key, value = self._member(*member, level)
                    out[key] = value
                else:
                    out.append(self.value(*member))
            small_from = big + 1
        return out

    def _small_members(
        self, out: Any, firsts: np.ndarray, lasts: np.ndarray, begin: int, end: int
    ) -> None:
        """Members `begin` to `end - 1`, each at most a piece, parsed a piece's worth at a time."""
        is_object = isinstance(out, dict)
        at = begin
        while at < end:
            upto = int(np.searchsorted(lasts[at:end], firsts[at] + self.piece, side="right"))
            upto = at + max(1, upto)
            text = self.body[int(firsts[at]) : int(lasts[upto - 1])]
            if _NOT_WHITESPACE.search(text) is None:
                raise _malformed(int(firsts[at]), "expected a value")
            if is_object:
                out.update(orjson.loads(b"{" + text + b"}"))
            else:
                out.extend(orjson.loads(b"[" + text + b"]"))
            at = upto

    def _member(self, start: int, end: int, level: int) -> tuple[str, Any]:
        colons = self._where(self.colons, start, end, level)
        if len(colons) == 0:
            raise _malformed(start, "expected ':' after an object's key")
        colon = int(colons[0])
        key = self.value(*self._trimmed(start, colon))
        if not isinstance(key, str):
            raise _malformed(start, "an object's key must be a string")
        return key, self.value(*self._trimmed(colon + 1, end))

    # Strings ------------------------------------------------------------------------------

    def _string(self, start: int, end: int) -> str:
        body = self.body
        last = end - 1
        if body[last] != _QUOTE or any(self.quotes[a:b].any() for a, b in _spans(start + 1, last)):
            raise _malformed(start, "text after a string")
        parts = []
        at = start + 1
        while last - at > self.piece:
            cut = self._cut(at + self.piece, last)
            parts.append(orjson.loads(b'"' + body[at:cut] + b'"'))
            at = cut
        parts.append(orjson.loads(b'"' + body[at:last] + b'"'))
        return "".join(parts)

    def _cut(self, at: int, limit: int) -> int:
        """A position from `at` on where a string's text splits into two that decode apart to
        what it decodes to whole; `limit` if none is found soon."""
        body = self.body
        for _ in range(_CUT_TRIES):
            if at >= limit:
                break
            escape = body.rfind(b"\\", max(0, at - 6), at)
            if escape == -1:
                # No escape (the longest is 6 bytes) ends at or runs past `at`.
                if body[at] & 0xC0 != 0x80:  # ... and a UTF-8 character starts there
                    return at
                at += 1
                continue
            # Just before the next escape, unless it ends a surrogate pair.
            following = self._next_escape(at)
            if following >= limit:
                at = escape + 7
            elif not self._after_high_surrogate(following):
                return following
            else:
                at = following + 1
        return limit

    def _next_escape(self, at: int) -> int:
        for escapes in self.escapes[at // _SLICE :]:
            found = int(np.searchsorted(escapes, at))
            if found < len(escapes):
                return int(escapes[found])
        return len(self.body)

    def _after_high_surrogate(self, at: int) -> bool:
        """Whether the escape before `at` is the first half of a surrogate pair."""
        escape = at - 6
        return (
            escape >= 0
            and self._next_escape(escape) == escape
            and self.body[escape + 1] == ord("u")
            and self.body[escape + 2 : escape + 4].lower() in _HIGH_SURROGATE
        )
