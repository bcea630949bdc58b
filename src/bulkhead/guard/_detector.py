"""What a detector is, and the windows of a text the numeric ones search.

Numbers are the expensive part of a scan, so the numeric detectors (ID,
card, bank account, phone, IPv4) search only the windows around runs of
seven or more digit-like characters, which `numeric_windows` finds once for
all of them; `EntityScanner` hands each detector, in one call, the windows
with at least its `min_digits` ASCII digits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import regex

from bulkhead.guard._entities import Entity, Finding

# A run of digits and the characters written between them; the window
# around it reaches back to a `+86 (` prefix and on to an ID's `X`.
# (`regex` finds a character class in a long text several times faster than `re`.)
_NUMERIC_RUN = regex.compile(r"[0-9][0-9 ()+.\-]{5,}")
_BEFORE, _AFTER = 8, 2


class Detector(Protocol):
    """One check: finds the entities it knows in `text[start:end]`."""

    entities: frozenset[Entity]
    numeric: bool
    """Whether every match holds a run of seven digit-like characters (see the docstring)."""
    min_digits: int
    """The fewest ASCII digits a finding of a numeric detector holds: a window with fewer
    is not searched."""

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]: ...


Windows = Sequence[tuple[int, int]]


@runtime_checkable
class NumericDetector(Detector, Protocol):
    """A numeric detector: the scanner hands it every window it has enough digits for in one
    call (one Python call per detector and text, not one generator per window)."""

    def find_windows(self, text: str, windows: Windows) -> list[Finding]:
        """What `find` finds in each window of `text`, window by window."""
        ...


def numeric_windows(text: str) -> list[tuple[int, int]]:
    """The merged windows of `text` in which a numeric entity can be."""
    windows: list[tuple[int, int]] = []
    for m in _NUMERIC_RUN.finditer(text):
        start, end = max(0, m.start() - _BEFORE), min(len(text), m.end() + _AFTER)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


# Each byte of an ASCII text as its shape: `A` for a capital, `0` for a digit, a space for
# any other.  Two C passes and a byte search tell whether a text holds what a pattern must
# start with, where a regex tries every position.
SHAPES = bytes(
    0x41 if 0x41 <= b <= 0x5A else 0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256)
)
CAPS_DIGITS = b"AA00"
