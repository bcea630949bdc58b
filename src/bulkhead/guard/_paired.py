"""Two clauses near each other, found without trying the second at every position of the gap.

A two-clause rule (`_rules_roleplay`) is one pattern, `A gap B | B' gap A'`: a frame, a
gap of at most `gap` characters, then a clause, or the other way round.  Run as one regex,
every frame in a text tries the clause at each position of its gap, so a text dense with
frames pays some 80 clause attempts per frame (review7, session 16: about 10 ms of CPU per
2 KiB of "扮演扮演限").

`Pairs.finditer` gives the same matches as the pattern's own `finditer`, in the same order
and with the same spans, but runs the whole pattern only where it can match: each clause
is found once, at every position where it starts (an overlapped scan; in POSIX mode, so
that each start also tells the longest the clause can be there, for a clause of unbounded
width, `_widest`), a block of the text at a time, and the pattern is tried
at a start of the first clause only if the second starts within `gap` characters of the
first's longest end.  That is a necessary condition of a match (each clause of a match is
also a match of the clause alone, from the same start, no longer than its longest), so no
match is lost, and a position that passes is tried by the pattern itself, so none is
added.  `tests/unit/guard/test_paired_rules.py` checks this against the pattern.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from re import _parser as re_parser  # type: ignore[attr-defined]

import regex


@dataclass(frozen=True, slots=True)
class Pairs:
    """The clauses of `A gap B | B' gap A'`: `first`, `then` (A, B) and `first_b`, `then_b`
    (B', A'); `gap` bounds the characters between the two clauses of either order."""

    first: str
    then: str
    first_b: str
    then_b: str
    gap: int
    words: bool = False
    """`gap` counts steps of the English gaps (a word of at most 40 letters, then one to
    eight other characters, no newline), not characters."""

    def finditer(self, pattern: regex.Pattern[str], text: str) -> Iterator[regex.Match[str]]:
        """`pattern.finditer(text)`, where `pattern` is this pair's whole rule.

        The text is taken a block at a time and each clause is scanned only as far as the
        block needs, so a caller that stops at the first match pays for about one block."""
        firsts = {self.first, self.first_b}
        clauses = {
            source: _Clause(source, text, longest=source in firsts)
            for source in (self.first, self.then, self.first_b, self.then_b)
        }
        reach = _Steps(text, self.gap) if self.words else _Characters(self.gap)
        directions = (
            (clauses[self.first], clauses[self.then]),
            (clauses[self.first_b], clauses[self.then_b]),
        )
        end = 0
        for block in range(0, len(text), _BLOCK):
            found: set[int] = set()
            for first, then in directions:
                found |= _near(first, then, block, block + _BLOCK, reach)
            for start in sorted(found):
                if start < end:
                    continue
                m = pattern.match(text, start)
                if m is not None:
                    yield m
                    end = m.end()


_BLOCK = 1024


class _Clause:
    """Where one clause starts in a text, and the end of its longest match from each start
    (`longest`: by a scan in POSIX mode, or from its width where it has one), found as far as
    asked."""

    def __init__(self, source: str, text: str, *, longest: bool) -> None:
        self.width = _widest(source)
        posix = longest and self.width is None
        self._found = (_longest(source) if posix else _compiled(source)).finditer(
            text, overlapped=True
        )
        self.starts: list[int] = []
        self.ends: list[int] = []
        self._done = False

    def until(self, limit: int) -> bool:
        """Find every start before `limit`; whether the clause starts at or after it."""
        while not self._done and (not self.starts or self.starts[-1] < limit):
            m = next(self._found, None)
            if m is None:
                self._done = True
                break
            self.starts.append(m.start())
            self.ends.append(m.end() if self.width is None else m.start() + self.width)
        return bool(self.starts) and self.starts[-1] >= limit


class _Characters:
    """A gap of at most `gap` characters."""

    def __init__(self, gap: int) -> None:
        self.characters = gap

    def __call__(self, end: int, then: int) -> bool:
        return then <= end + self.characters


class _Steps:
    """A gap of at most `steps` steps of `_rules_roleplay._NEAR_EN`: no newline, at most 48
    characters a step, and a step for each stretch of characters that are not letters
    (one with more than apostrophes, which a word may hold) wholly inside the gap: a step's
    separators lie in one such stretch, and no word can take its other characters."""

    def __init__(self, text: str, steps: int) -> None:
        self.text = text
        self.steps = steps
        self.characters = steps * 48
        self.newlines: list[int] = []
        self.starts: list[int] | None = None
        self.ends: list[int] = []

    def __call__(self, end: int, then: int) -> bool:
        if then - end > self.characters:
            return False
        if self.starts is None:  # found once a text has a pair to measure
            self.newlines = [m.start() for m in _NEWLINE.finditer(self.text)]
            stretches = [m.span() for m in _STRETCH.finditer(self.text) if m.group().strip("'")]
            self.starts = [start for start, _ in stretches]
            self.ends = [stop for _, stop in stretches]
        i = bisect_left(self.newlines, end)
        if i < len(self.newlines) and self.newlines[i] < then:
            return False
        inside = bisect_right(self.ends, then) - bisect_left(self.starts, end)
        return inside <= self.steps


_NEWLINE = regex.compile(r"\n")
_STRETCH = regex.compile(r"\W+")


_Reach = _Characters | _Steps


def _near(first: _Clause, then: _Clause, block: int, limit: int, reach: _Reach) -> set[int]:
    """The starts of `first` in `block`..`limit` from whose longest end the nearest later
    start of `then` is within reach (or lies before that end): a later one is no nearer.
    A direction whose second clause starts nowhere past the block costs no scan of its first."""
    if not then.until(block + 1):
        return set()
    first.until(limit)
    i, j = bisect_left(first.starts, block), bisect_left(first.starts, limit)
    if i == j:
        return set()
    then.until(max(first.ends[i:j]) + reach.characters + 1)
    found = set()
    for start, end in zip(first.starts[i:j], first.ends[i:j], strict=True):
        k = bisect_right(then.starts, start)
        if k < len(then.starts) and (then.starts[k] <= end or reach(end, then.starts[k])):
            found.add(start)
    return found


@functools.cache
def _widest(source: str) -> int | None:
    """The most characters `source` can match, or None where it has no bound: a clause
    of bounded width needs no scan for its longest ends."""
    try:
        widest = int(re_parser.parse(source).getwidth()[1])
    except re.error:  # syntax of `regex` alone: measured by a scan instead
        return None
    return widest if widest < re_parser.MAXREPEAT else None


@functools.cache
def _compiled(source: str) -> regex.Pattern[str]:
    return regex.compile(source)


@functools.cache
def _longest(source: str) -> regex.Pattern[str]:
    return regex.compile(source, regex.POSIX)
