"""One scan for every enabled entity: the detectors that matter, their findings merged.

A long text is scanned in windows of `WINDOW` characters, each read with
`MARGIN` characters of the text around it: a detector's regular expression
runs in C with the interpreter lock held, so over a whole megabyte it would
keep the event loop waiting for tens of milliseconds even from a worker
thread.  A finding belongs to the window it starts in; with the margin on
both sides, any entity up to `MARGIN` characters long (a 4096-bit PEM key
is about 3,300) is seen whole and with its context, as in a single scan.

Most text a stream's filter scans is prose with nothing in it, scanned again
and again (each piece with the 64 characters sent before it), so `quiet`
rules a text out first: an ASCII text without a digit, `@`, `:`, `=` or `>`
and without the words and prefixes that the detectors open with holds
nothing any detector can find.  Each condition there is the gate a detector
itself starts with, or a character its pattern cannot match without (a digit
for every numeric entity, IBANs and passports; `@` for addresses; `:` for
IPv6, URLs and YAML; `=` and `>` for assignments and XML); a new detector
needs its own gate here (`tests/unit/guard/test_scan_quiet.py` checks both).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable

from bulkhead.guard._accounts import PASSPORT_HINTS
from bulkhead.guard._credentials import PROSE_WORDS
from bulkhead.guard._detector import Detector, NumericDetector, numeric_windows
from bulkhead.guard._entities import Entity, Finding, resolve_overlaps
from bulkhead.guard._pii import pii_detectors
from bulkhead.guard._secrets import ANY_KEY_START, secret_detectors

WINDOW = 64 * 1024
MARGIN = 8 * 1024

# Full-width digits and Latin letters (U+FF10-FF19, U+FF21-FF3A, U+FF41-FF5A: an ID typed
# with a Chinese or Japanese input method) are scanned as their ASCII forms: one character
# for one, so spans hold.
_WIDE = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
_DIGITS = b"0123456789"
_NARROW = {
    c: c - 0xFEE0 for r in ((0xFF10, 0xFF1A), (0xFF21, 0xFF3B), (0xFF41, 0xFF5B)) for c in range(*r)
}

# Characters without which no detector finds anything in an ASCII text (see the docstring).
_LOUD = re.compile(r"[0-9@:=>]")
# The detectors' own opening gates that letters alone can pass, each tested in the lower-case
# text (a gate for either case is then passed too): `Bearer`, AWS secrets' labels, Basic
# credentials, passport words, the words that name a secret in prose; and, as written, PEM
# blocks, JWTs and Twilio SIDs (API-key prefixes are tested apart).
_LOUD_LOWER = tuple(
    dict.fromkeys(
        w.lower() for w in ("earer", "ecret", "asic", *PASSPORT_HINTS, *PROSE_WORDS) if w.isascii()
    )
)
_LOUD_AS_IS = ("PRIVATE KEY", "eyJ", "AC")
_LONGEST_KEY_START = "github_pat_"  # of `ANY_KEY_START`'s (the test measures the pattern)
QUIET_REACH = max(map(len, (*_LOUD_LOWER, *_LOUD_AS_IS, _LONGEST_KEY_START)))
"""The longest text `quiet` looks for.  Each of its tests is of one character, or of a
fixed word or key start of at most this many characters (no anchors, no look-arounds), so
for a quiet `head`, `quiet(head + tail)` is `quiet(head[-(QUIET_REACH - 1):] + tail)`: a
stream's filter need not look at the quiet text it saw before again."""


def quiet(text: str) -> bool:
    """Whether `text` certainly holds nothing any detector finds (False: scan it)."""
    if not text.isascii() or _LOUD.search(text) is not None:
        return False
    for word in _LOUD_AS_IS:  # a loop, not any(): this runs for every piece of a stream
        if word in text:
            return False
    if ANY_KEY_START.search(text) is not None:
        return False
    lowered = text.lower()
    for word in _LOUD_LOWER:  # noqa: SIM110 - a loop, not all(): no generator per piece
        if word in lowered:
            return False
    return True


class EntityScanner:
    """Finds the entities in `entities` (all by default); detectors for others never run."""

    def __init__(
        self,
        entities: Iterable[Entity] = tuple(Entity),
        *,
        phone_regions: tuple[str, ...] = ("CN", "US", "GB"),
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        wanted = frozenset(entities)
        # Secrets come first so that, where spans tie, a credential wins over a
        # number inside it; within each group the order is the detectors' own.
        personal = pii_detectors(phone_regions=phone_regions, today=today, wanted=wanted)
        every = (*secret_detectors(), *personal)
        chosen = [d for d in every if d.entities & wanted]
        self.entities = wanted
        self._whole: tuple[Detector, ...] = tuple(d for d in chosen if not d.numeric)
        self._numeric: tuple[NumericDetector, ...] = tuple(
            d for d in chosen if d.numeric and isinstance(d, NumericDetector)
        )
        if len(self._numeric) != sum(d.numeric for d in chosen):
            raise TypeError("a numeric detector must have `find_windows`")

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in `text`, in order."""
        return [] if quiet(text) else self.find_loud(text)

    def find_loud(self, text: str) -> list[Finding]:
        """`find` for a text known not to be `quiet` (the gate is not tried again)."""
        if not text.isascii() and _WIDE.search(text):
            text = text.translate(_NARROW)
        if len(text) <= WINDOW + 2 * MARGIN:
            return self._find(text)
        found: list[Finding] = []
        for start in range(0, len(text), WINDOW):
            lo = max(0, start - MARGIN)
            piece = text[lo : start + WINDOW + MARGIN]
            found.extend(
                f.shifted(lo) for f in self._find(piece) if start <= f.start + lo < start + WINDOW
            )
        return resolve_overlaps(found) if len(found) > 1 else found

    def _find(self, text: str) -> list[Finding]:
        if not text:
            return []
        found = [f for d in self._whole for f in d.find(text)]
        windows = numeric_windows(text) if self._numeric else []
        if windows:
            # The digit runs are found once; each detector gets, in one call, the windows
            # with at least its `min_digits` ASCII digits.  Its findings stay in the order
            # `resolve_overlaps` breaks ties by: detector by detector, as within a window.
            digits = [_ascii_digits(text, start, end) for start, end in windows]
            for d in self._numeric:
                least = d.min_digits
                mine = [w for w, n in zip(windows, digits, strict=True) if n >= least]
                if mine:
                    found.extend(d.find_windows(text, mine))
        found = [f for f in found if f.entity in self.entities]
        return resolve_overlaps(found) if len(found) > 1 else found


def _ascii_digits(text: str, start: int, end: int) -> int:
    """The ASCII digits in `text[start:end]`, counted in its UTF-8 (no other character's bytes
    fall in 0x30-0x39): a C pass, not ten `count` calls."""
    window = text[start:end].encode("utf-8", "surrogatepass")
    return len(window) - len(window.translate(None, _DIGITS))
