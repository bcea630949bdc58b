"""Two clauses near each other, found without trying the second at every position of the gap.

A two-clause rule (`_rules_roleplay`) is one pattern, `A gap B | B' gap A'`: a frame, a
gap of at most `gap` characters, then a clause, or the other way round.  Run as one regex,
every frame in a text tries the clause at each position of its gap, so a text dense with
frames pays some 80 clause attempts per frame (review7, session 16: about 10 ms of CPU per
2 KiB of "扮演扮演限").

`Pairs.finditer` gives the same matches as the pattern's own `finditer`, in the same order
and with the same spans, but runs the whole pattern only where it can match: each clause
is found once, at every position where it starts (an overlapped scan, in POSIX mode so
that each start also tells the longest the clause can be there), and the pattern is tried
at a start of the first clause only if the second starts within `gap` characters of the
first's longest end.  That is a necessary condition of a match (each clause of a match is
also a match of the clause alone, from the same start, no longer than its longest), so no
match is lost, and a position that passes is tried by the pattern itself, so none is
added.  `tests/unit/guard/test_roleplay_rules.py` checks this against the pattern.
"""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
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
        """`pattern.finditer(text)`, where `pattern` is this pair's whole rule."""
        end = 0
        for start in self._candidates(text):
            if start < end:
                continue
            m = pattern.match(text, start)
            if m is not None:
                yield m
                end = m.end()

    def _candidates(self, text: str) -> list[int]:
        # Each clause is scanned at most once plainly and once for its longest ends, and a
        # direction whose second clause is nowhere in the text costs no scan of its first.
        starts: dict[str, list[int]] = {}
        found: set[int] = set()
        reach = _Steps(text, self.gap) if self.words else _Characters(self.gap)
        for first, then in ((self.first, self.then), (self.first_b, self.then_b)):
            if then not in starts:
                starts[then] = _starts(then, text)
            if not starts[then] or starts.get(first) == []:
                continue
            width = _widest(first)
            if width is None:
                firsts, ends = _longest_spans(first, text)
                starts[first] = firsts
            else:
                firsts = starts[first] if first in starts else _starts(first, text)
                starts[first] = firsts
                ends = [start + width for start in firsts]
            found |= _near(firsts, ends, starts[then], reach)
        return sorted(found)


class _Characters:
    """A gap of at most `gap` characters."""

    def __init__(self, gap: int) -> None:
        self.gap = gap

    def __call__(self, end: int, then: int) -> bool:
        return then <= end + self.gap


class _Steps:
    """A gap of at most `steps` steps of `_rules_roleplay._NEAR_EN`: no newline, at most 48
    characters a step, and a step for each stretch of characters that are not letters
    (one with more than apostrophes, which a word may hold): a step's separators lie in one
    such stretch, and the word before them cannot take any of its other characters."""

    def __init__(self, text: str, steps: int) -> None:
        self.text = text
        self.steps = steps
        self.newlines: list[int] = []
        self.stretches: list[int] | None = None

    def __call__(self, end: int, then: int) -> bool:
        if then - end > self.steps * 48:
            return False
        if self.stretches is None:  # found once a text has a pair to measure
            self.newlines = [m.start() for m in _NEWLINE.finditer(self.text)]
            self.stretches = [
                m.start() for m in _STRETCH.finditer(self.text) if m.group().strip("'")
            ]
        i = bisect_left(self.newlines, end)
        if i < len(self.newlines) and self.newlines[i] < then:
            return False
        crossed = bisect_left(self.stretches, then) - bisect_left(self.stretches, end)
        return crossed <= self.steps


_NEWLINE = regex.compile(r"\n")
_STRETCH = regex.compile(r"\W+")


def _near(
    firsts: list[int], ends: list[int], then: list[int], reach: Callable[[int, int], bool]
) -> set[int]:
    """The starts of the first clause from whose longest end the nearest later start of
    `then` is within reach (or lies before that end): a later one is no nearer."""
    found = set()
    for start, end in zip(firsts, ends, strict=True):
        i = bisect_right(then, start)
        if i < len(then) and (then[i] <= end or reach(end, then[i])):
            found.add(start)
    return found


def _starts(source: str, text: str) -> list[int]:
    """Every position where `source` matches in `text`."""
    return [m.start() for m in _compiled(source).finditer(text, overlapped=True)]


def _longest_spans(source: str, text: str) -> tuple[list[int], list[int]]:
    """Every position where `source` matches in `text`, and the end of its longest match there."""
    starts: list[int] = []
    ends: list[int] = []
    for m in _longest(source).finditer(text, overlapped=True):
        starts.append(m.start())
        ends.append(m.end())
    return starts, ends


@functools.cache
def _widest(source: str) -> int | None:
    """The most characters `source` can match, or None where it has no bound: a clause
    of bounded width needs no scan for its longest ends."""
    widest = int(re_parser.parse(source).getwidth()[1])
    return widest if widest < re_parser.MAXREPEAT else None


@functools.cache
def _compiled(source: str) -> regex.Pattern[str]:
    return regex.compile(source)


@functools.cache
def _longest(source: str) -> regex.Pattern[str]:
    return regex.compile(source, regex.POSIX)
