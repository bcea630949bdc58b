"""How `jsonpieces.loads` parses a body larger than a piece: its layout, found with numpy.

A module of its own so that numpy is imported with the first large body, not by
every gateway at start-up (`jsonpieces` says how the parse works).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

_SLICE = 64 * 1024
_GIVE_WAY_S = 0.0001
_GIVE_WAY_EVERY_S = 0.001
_WHITESPACE = b" \t\r\n"
_NOT_WHITESPACE = re.compile(rb"[^ \t\r\n]")
_HIGH_SURROGATE = frozenset({b"d8", b"d9", b"da", b"db"})
_CUT_TRIES = 64  # a cut is always found within 13 bytes of valid text
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_PAIR_FIRST, _PAIR_SECOND = 1, 2  # an escaped backslash or quote, in `_neutral_escapes`
_OPEN = {ord("["): ord("]"), ord("{"): ord("}")}


def loads_large(body: bytes, piece: int) -> Any:
    """`jsonpieces.loads` of a body over `piece` bytes."""
    start = _lstrip(body, 0, len(body))
    if start is None:
        return orjson.loads(body)  # nothing but whitespace: orjson's own refusal
    return _Layout(body, piece).value(start, _rstrip(body, start, len(body)))


def _malformed(at: int, why: str) -> orjson.JSONDecodeError:
    return orjson.JSONDecodeError(why, "", at)


def _lstrip(body: bytes, start: int, end: int) -> int | None:
    """Where the first byte other than whitespace in `body[start:end]` is (None: there is
    none), searching a slice at a time: one search over megabytes of whitespace holds the
    lock for tens of milliseconds."""
    for at in range(start, end, _SLICE):
        found = _NOT_WHITESPACE.search(body, at, min(end, at + _SLICE))
        if found is not None:
            return found.start()
    return None


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
    """`start` to `end` in slices of `_SLICE`, letting a waiting thread in now and then.

    numpy holds the lock for some operations (a cumulative sum that converts,
    finding where a mask is set): on a slice, briefly.  It lets go of it for
    others, and takes it back at once: a thread that waits for the lock (the
    event loop) wakes to find it taken again, and its wait starts over, for as
    long as this runs (tens of milliseconds measured).  A short sleep after
    each millisecond or so of slices gives it the lock.
    """
    last = time.perf_counter()
    for at in range(start, end, _SLICE):
        yield at, min(end, at + _SLICE)
        if time.perf_counter() - last > _GIVE_WAY_EVERY_S:
            time.sleep(_GIVE_WAY_S)
            last = time.perf_counter()


def _neutral_escapes(body: bytes) -> np.ndarray:
    """`body`'s bytes with each escaped backslash or escaped quote as the bytes 1 and 2: every
    quote left delimits a string, every backslash left starts another escape.  A slice at a
    time; a slice that ends in an odd run of backslashes gives its last to the next one, so
    that no escape is cut in two."""
    if body.find(b"\\") == -1:
        return np.frombuffer(body, dtype=np.uint8)
    out = np.empty(len(body), dtype=np.uint8)
    at = 0
    while at < len(body):
        end = min(len(body), at + _SLICE)
        text = body[at:end]
        if end < len(body) and (len(text) - len(text.rstrip(b"\\"))) % 2:
            end -= 1
            text = text[:-1]
        text = text.replace(b"\\\\", b"\x01\x02").replace(b'\\"', b"\x01\x02")
        out[at:end] = np.frombuffer(text, dtype=np.uint8)
        at = end
    return out


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class _Layout:
    """Where a body's strings, brackets and separators are, by byte position."""

    def __init__(self, body: bytes, piece: int):
        self.body = body
        self.piece = piece
        self.chars = _neutral_escapes(body)
        size = len(body)
        # depth[i]: brackets opened and not closed up to and including byte i.
        self.depth = np.empty(size, dtype=np.int32)
        quotes, commas, colons, closes = [], [], [], []  # positions, a slice at a time
        counted_so_far, depth_so_far = 0, 0
        for start, end in _spans(0, size):
            part = self.chars[start:end]
            quote = part == _QUOTE
            counted = np.cumsum(quote, dtype=np.int32) + counted_so_far
            # From an opening quote to the byte before its closing one.
            inside = (counted & 1).astype(bool)
            outside = ~(inside | quote)
            opens = ((part == ord("[")) | (part == ord("{"))) & outside
            closing = ((part == ord("]")) | (part == ord("}"))) & outside
            nested = np.cumsum(opens.astype(np.int32) - closing, dtype=np.int32) + depth_so_far
            self.depth[start:end] = nested
            quotes.append(np.flatnonzero(quote) + start)
            commas.append(np.flatnonzero((part == ord(",")) & outside) + start)
            colons.append(np.flatnonzero((part == ord(":")) & outside) + start)
            closes.append(np.flatnonzero(closing) + start)
            counted_so_far, depth_so_far = int(counted[-1]), int(nested[-1])
        self.quotes, self.commas = _joined(quotes), _joined(commas)
        self.colons, self.closes = _joined(colons), _joined(closes)

    def _between(self, positions: np.ndarray, start: int, end: int) -> np.ndarray:
        """The sorted `positions` from `start` up to `end`."""
        first, stop = np.searchsorted(positions, (start, end))
        return positions[first:stop]

    def _at_level(self, positions: np.ndarray, start: int, end: int, level: int) -> np.ndarray:
        found = self._between(positions, start, end)
        kept: np.ndarray = found[self.depth[found] == level]
        return kept

    def value(self, start: int, end: int) -> Any:
        """The value in `body[start:end]`, which starts and ends with other than whitespace."""
        if end - start <= self.piece:
            return orjson.loads(self.body[start:end])
        first = self.body[start]
        if first == _QUOTE:
            return self._string(start, end)
        if first in _OPEN:
            return self._container(start, end)
        return orjson.loads(self.body[start:end])  # a number or a literal: orjson judges it

    def _trimmed(self, start: int, end: int) -> tuple[int, int]:
        found = _lstrip(self.body, start, end)
        if found is None:
            raise _malformed(start, "expected a value")
        return found, _rstrip(self.body, start, end)

    # Containers ---------------------------------------------------------------------------

    def _container(self, start: int, end: int) -> Any:
        body = self.body
        level = int(self.depth[start])
        last = end - 1
        closes = self._between(self.closes, start, last)
        if (
            body[last] != _OPEN[body[start]]
            or int(self.depth[last]) != level - 1
            or bool((self.depth[closes] < level).any())
        ):
            raise _malformed(start, "unbalanced brackets, or text after the value")
        separators = self._at_level(self.commas, start + 1, last, level)
        firsts = np.concatenate(([start + 1], separators + 1))
        lasts = np.concatenate((separators, [last]))
        is_object = body[start] == ord("{")
        if len(separators) == 0 and _lstrip(body, start + 1, last) is None:
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
        colons = self._at_level(self.colons, start, end, level)
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
        if body[last] != _QUOTE or len(self._between(self.quotes, start + 1, last)):
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
        """The first position from `at` on where a string's text splits into two that decode
        apart to what it decodes to whole; `limit` if none is found soon (not valid text)."""
        for where in range(at, min(limit, at + _CUT_TRIES)):
            if self._cuttable(where):
                return where
        return limit

    def _cuttable(self, at: int) -> bool:
        body, chars = self.body, self.chars
        if body[at] & 0xC0 == 0x80 or chars[at] == _PAIR_SECOND:
            return False  # inside a UTF-8 character, or an escaped backslash or quote
        for escape in range(max(0, at - 5), at):  # an escape that starts in the 5 bytes before
            if chars[escape] == _BACKSLASH and (body[escape + 1] == ord("u") or escape == at - 1):
                return False  # ... runs past `at`
        escape = at - 6  # the first half of a surrogate pair ends just before
        return not (
            escape >= 0
            and chars[escape] == _BACKSLASH
            and body[escape + 1] == ord("u")
            and body[escape + 2 : escape + 4].lower() in _HIGH_SURROGATE
        )
