"""A count-only o200k_base BPE over the compact vocabulary: some 6 MB where tiktoken keeps 43.

tiktoken's `CoreBPE` holds the 200,000 tokens three times over (an encoder
map, a decoder map and a sorted list, each entry its own heap allocation):
43 MB of a gateway's resident memory, for a counter that only needs to know
whether a byte string is a token and which rank it has.  This module keeps
the vocabulary as it ships (`_o200k`: one blob of the tokens' bytes in rank
order) with an array of where each token starts, an open-addressed hash table
of ranks (`array`, 4 bytes a slot) and a dictionary of the `COMMON` lowest
ranks (the most frequent tokens, about 1 MB), built once at start-up.

Counting follows tiktoken's `encode_ordinary` step for step, so the counts
are the same (tests/unit/limits/test_bpe.py checks it against tiktoken on
random text and on every token of the vocabulary):

1. the text is split with o200k_base's pattern (the `regex` module; `\\s`
   spelt out as Unicode's White_Space, which is what Rust's regex, tiktoken's,
   gives it).  The `regex` module knows a newer Unicode than tiktoken's Rust
   regex: the characters it has as letters, marks or numbers that tiktoken
   does not (`NEWER_UNICODE`) are split as tiktoken splits them.  ASCII text is
   split by the standard `re` with the same pattern in ASCII classes, which is
   twice as fast;
2. a piece that is a token whole is one token (most are);
3. any other piece is merged pair by pair, the lowest-ranked pair first and,
   among equal ranks, the leftmost, until no adjacent pair is a token; it
   counts as many tokens as parts are left.  The pairs wait in a heap: n log n
   where tiktoken's scan is n² (a 64 KiB run of one letter is one piece).

It is plain Python, some 5-8 times slower than tiktoken's Rust on dense text
(docs/benchmarks.md, session 15): a worker thread counting a long prompt lets
go of the interpreter lock between bytecodes, so it never holds the event
loop (gateway/offload.py).  It keeps no cache: its memory does not grow with
what it counts.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import re
from array import array
from collections.abc import Callable

import regex

_CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
# Code points the `regex` module's Unicode (17) has as letters, marks or numbers that the
# Unicode tables of tiktoken's Rust regex do not know yet, so there they match none of
# those classes (nor White_Space): found by probing tiktoken with every code point
# (tests/unit/limits/test_bpe.py does it again and names any that differ).
NEWER_UNICODE = (
    (0x558, 0x558),
    (0x58B, 0x58C),
    (0x5C8, 0x5C9),
    (0x88F, 0x88F),
    (0xB53, 0xB54),
    (0xC5C, 0xC5C),
    (0xCDC, 0xCDC),
    (0x1ACF, 0x1AF0),
    (0x208F, 0x208F),
    (0x209D, 0x209F),
    (0xA7CE, 0xA7CF),
    (0xA7D2, 0xA7D2),
    (0xA7D4, 0xA7D4),
    (0xA7DD, 0xA7DD),
    (0xA7E2, 0xA7E2),
    (0xA7F1, 0xA7F1),
    (0xAB6C, 0xAB6D),
    (0x107BB, 0x107BF),
    (0x10940, 0x10959),
    (0x10EC5, 0x10EC7),
    (0x10ECB, 0x10ECF),
    (0x10ED9, 0x10EEE),
    (0x10EF0, 0x10EFB),
    (0x11B0A, 0x11B0A),
    (0x11B60, 0x11B67),
    (0x11DB0, 0x11DDB),
    (0x11DE0, 0x11DE9),
    (0x11DF0, 0x11DF1),
    (0x1246F, 0x1246F),
    (0x12475, 0x1247F),
    (0x12550, 0x12686),
    (0x16EA0, 0x16EB8),
    (0x16EBB, 0x16ED3),
    (0x16FF2, 0x16FF6),
    (0x187F8, 0x187FF),
    (0x18CD6, 0x18CDA),
    (0x18D09, 0x18D20),
    (0x18D80, 0x18DF2),
    (0x18E00, 0x19191),
    (0x191A0, 0x191D2),
    (0x1B123, 0x1B128),
    (0x1B168, 0x1B168),
    (0x1D127, 0x1D128),
    (0x1D250, 0x1D252),
    (0x1D25B, 0x1D25C),
    (0x1D25F, 0x1D25F),
    (0x1D280, 0x1D281),
    (0x1D6A6, 0x1D6A6),
    (0x1DF1F, 0x1DF24),
    (0x1DF2B, 0x1DF81),
    (0x1DF90, 0x1DF96),
    (0x1DFCD, 0x1DFFF),
    (0x1E6C0, 0x1E6DE),
    (0x1E6E0, 0x1E6F5),
    (0x1E6FE, 0x1E6FF),
    (0x2B73A, 0x2B73F),
    (0x2B81E, 0x2B81E),
    (0x2CEA2, 0x2CEAD),
    (0x323B0, 0x33479),
    (0x3D000, 0x3FC3F),
)


def _pattern(*, lead: str, upper: str, lower: str, number: str, other: str, space: str) -> str:
    """o200k_base's split pattern (tiktoken_ext/openai_public.py) over the given classes:
    `lead` is [^\\r\\n\\p{L}\\p{N}], `other` [^\\s\\p{L}\\p{N}], `space` \\s's members."""
    return "|".join(
        [
            rf"{lead}?{upper}*{lower}+{_CONTRACTIONS}",
            rf"{lead}?{upper}+{lower}*{_CONTRACTIONS}",
            rf"{number}{{1,3}}",
            rf" ?{other}+[\r\n/]*",
            rf"[{space}]*[\r\n]+",
            rf"[{space}]+(?![^{space}])",
            rf"[{space}]+",
        ]
    )


PATTERN = _pattern(
    lead=r"[^\r\n\p{L}\p{N}]",
    upper=r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]",
    lower=r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]",
    number=r"\p{N}",
    other=r"[^\p{White_Space}\p{L}\p{N}]",
    space=r"\p{White_Space}",
)
NEWER = "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in NEWER_UNICODE) + "]"
# Unassigned in every version of Unicode: what Rust's regex sees in place of a NEWER one.
_UNASSIGNED = "\u0378"
# The same on ASCII text: White_Space there is \t \n \v \f \r and the space (not \x1c-\x1f).
ASCII_PATTERN = _pattern(
    lead=r"[^\r\nA-Za-z0-9]",
    upper="[A-Z]",
    lower="[a-z]",
    number="[0-9]",
    other=r"[^\t\n\x0b\x0c\r A-Za-z0-9]",
    space=r"\t\n\x0b\x0c\r ",
)
COMMON = 8192  # ranks kept in a dictionary too: o200k's ranks follow the tokens' frequency
_ABSENT = -1


class CompactBPE:
    """Counts o200k_base tokens; built from the tokens' bytes in rank order, once."""

    __slots__ = (
        "_ascii",
        "_blob",
        "_common",
        "_mask",
        "_newer",
        "_pairs",
        "_split",
        "_starts",
        "_table",
    )

    def __init__(self, lengths: bytes, body: bytes) -> None:
        """`lengths`: each token's length, in rank order; `body`: their bytes, concatenated
        (`_o200k.unpack`)."""
        starts = array("I", [0])
        total = 0
        for size in lengths:
            total += size
            starts.append(total)
        if total != len(body):
            raise ValueError("a truncated o200k vocabulary")
        slots = 1 << (2 * len(lengths)).bit_length()  # under half full: short probes
        mask = slots - 1
        table = array("i", [_ABSENT]) * slots
        for rank in range(len(lengths)):
            slot = hash(body[starts[rank] : starts[rank + 1]]) & mask
            while table[slot] != _ABSENT:
                slot = (slot + 1) & mask
            table[slot] = rank
        common = min(COMMON, len(lengths))
        self._pairs = array("i", [_ABSENT]) * 65536  # every two-byte token, by its bytes
        for rank, size in enumerate(lengths):
            if size == 2:
                self._pairs[int.from_bytes(body[starts[rank] : starts[rank] + 2], "big")] = rank
        self._common = {body[starts[r] : starts[r + 1]]: r for r in range(common)}
        self._blob = body
        self._starts = starts
        self._table = table
        self._mask = mask
        # `concurrent`: the `regex` module lets go of the interpreter lock while it matches.
        self._split: Callable[[str], list[str]] = functools.partial(
            regex.compile(PATTERN).findall, concurrent=True
        )
        self._newer = regex.compile(NEWER)
        self._ascii: Callable[[str], list[str]] = re.compile(ASCII_PATTERN, re.ASCII).findall

    def rank(self, token: bytes) -> int:
        """The rank of `token`, or -1 when it is not one."""
        found = self._common.get(token)
        return self._rank(token) if found is None else found

    def _rank(self, token: bytes) -> int:
        """`rank`, for a token not among the common ones."""
        table, starts, blob, mask = self._table, self._starts, self._blob, self._mask
        slot = hash(token) & mask  # bytes keep their hash: the dictionary's lookup made it
        while (rank := table[slot]) != _ABSENT:
            if blob[starts[rank] : starts[rank + 1]] == token:
                return rank
            slot = (slot + 1) & mask
        return _ABSENT

    def split(self, text: str) -> list[str]:
        """The pieces o200k_base's pattern cuts `text` into, as tiktoken cuts them."""
        if text.isascii():
            return self._ascii(text)
        if self._newer.search(text) is None:
            return self._split(text)
        # Split a copy with each newer character replaced by one that is no letter, mark or
        # number in any version (as tiktoken sees it), and cut the text where the copy was cut.
        pieces, at = [], 0
        for piece in self._split(self._newer.sub(_UNASSIGNED, text)):
            pieces.append(text[at : at + len(piece)])
            at += len(piece)
        return pieces

    def count(self, text: str) -> int:
        """The length of tiktoken's `encode_ordinary(text)` (`text` has no lone surrogate)."""
        common, rank = self._common, self._rank
        total = 0
        for piece in self.split(text):
            data = piece.encode()
            if data in common or rank(data) != _ABSENT:
                total += 1
            else:
                total += self._merged(data)
        return total

    def _merged(self, piece: bytes) -> int:
        """How many tokens merging leaves of `piece`, merged as tiktoken merges: the
        lowest-ranked pair of adjacent parts first and, among equal ranks, the leftmost.

        Parts form a linked list (`after`, `before`); `pair[i]` is the rank of part i
        with the part after it; the heap holds (rank, start), so the lowest rank and then
        the leftmost comes first, and an entry whose rank is no longer its part's is stale
        (a part's span only grows, and no two spans share a rank).  n log n where
        tiktoken's scan is n²: a 64 KiB run of one letter is one piece."""
        common, rank = self._common.get, self._rank
        pop, push = heapq.heappop, heapq.heappush
        n = len(piece)
        after = list(range(1, n + 2))
        before = list(range(-1, n))
        pairs = self._pairs
        pair = [pairs[(a << 8) | b] for a, b in itertools.pairwise(piece)] + [_ABSENT]
        heap = [(r << 32) | i for i, r in enumerate(pair) if r != _ABSENT]  # rank, then start
        heapq.heapify(heap)
        parts = n
        while heap:
            key = pop(heap)
            r, i = key >> 32, key & 0xFFFFFFFF
            if pair[i] != r:
                continue
            gone = after[i]  # part i swallows the part after it
            nxt = after[gone]
            after[i] = nxt
            before[nxt] = i
            pair[gone] = _ABSENT
            parts -= 1
            if nxt < n:
                span = piece[i : after[nxt]]
                found = common(span)
                pair[i] = r = rank(span) if found is None else found
                if r != _ABSENT:
                    push(heap, (r << 32) | i)
            else:
                pair[i] = _ABSENT
            prev = before[i]
            if prev >= 0:
                span = piece[prev:nxt]
                found = common(span)
                pair[prev] = r = rank(span) if found is None else found
                if r != _ABSENT:
                    push(heap, (r << 32) | prev)
        return parts
