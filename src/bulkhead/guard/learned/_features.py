"""The learned stage's features: hashed character n-grams of a canonical text.

One canonical form serves training and scoring: `normalize` (invisible
characters removed, look-alikes and full-width letters folded, lower case),
traditional Chinese characters folded to simplified ones (`_hanzi`),
then every run of punctuation and symbols read as a space, spaces between
two Chinese characters removed, and runs of single letters joined
(`i g n o r e`, `i-g-n-o-r-e`); words that mix letters and digits
are read as letters (`1gn0r3` → `ignore`).  Every n-gram of 1 to 5 code points
(1 to 3 in a mostly Chinese text, where a character is about a word: longer ones
learned one author's phrasing, session 15) is hashed (a multiplicative hash over the
code points, then a 64-bit finaliser) into `2**BITS` buckets, all in numpy: a 2 KiB
prompt costs tens of microseconds, not a Python loop per n-gram.
"""

from __future__ import annotations

import itertools
import re
import zlib

import numpy as np
import numpy.typing as npt

from bulkhead.guard._normalize import deleet, normalize
from bulkhead.guard.learned._hanzi import TRADITIONAL

BITS = 18
DIM = 1 << BITS
NGRAMS = (1, 2, 3, 4, 5)
NGRAMS_CJK = (1, 2, 3)
"""The n-gram orders of a mostly Chinese text (at least a quarter of its canonical code
points in the CJK block)."""
WORDS = True
"""Latin words and word pairs are features too."""
SPLIT = False
"""Whether each script has its own half of the buckets (a mostly Chinese text's features
in the upper half, every other text's in the lower), so the two never share a weight."""
_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT = np.uint64(33)
_TOP = np.uint64(64 - BITS)
_SEEDS = {n: np.uint64(0x9E3779B97F4A7C15 * n % (1 << 64)) for n in NGRAMS}
_PUNCT = re.compile(r"[^\w\s]+|_+")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9]+")
_WORD_SEED = np.uint64(0x243F6A8885A308D3)
_CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff]) (?=[\u3400-\u9fff])")
_SINGLES = re.compile(r"\b(?:\w ){2,}\w\b")
_LEET_WORD = re.compile(r"\b(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]*[a-z][a-z\d]*\b")

IntArray = npt.NDArray[np.int64]


def canonical(text: str) -> str:
    """The text the n-grams are taken from (see the module docstring)."""
    normalized = normalize(text)
    folded = normalized.text
    if normalized.hidden:
        folded = f"{folded} {normalized.hidden.lower()}"
    if not folded.isascii():
        folded = folded.translate(TRADITIONAL)
    folded = _SPACES.sub(" ", _PUNCT.sub(" ", folded)).strip()
    folded = _CJK_GAP.sub("", folded)
    if any(c.isdigit() for c in folded):
        folded = _LEET_WORD.sub(lambda m: deleet(m.group()), folded)
    if _SINGLES.search(folded):
        folded = _SINGLES.sub(lambda m: m.group().replace(" ", ""), folded)
    return f" {folded} "


def _mix(h: npt.NDArray[np.uint64]) -> IntArray:
    h ^= h >> _SHIFT
    h *= _MIX1
    h ^= h >> _SHIFT
    h *= _MIX2
    h ^= h >> _SHIFT
    return (h >> _TOP).astype(np.int64)


def features(text: str) -> tuple[IntArray, IntArray, int]:
    """The features of `text`: where each starts in the canonical text, its bucket, and the
    canonical text's length.  Every character n-gram (n in `NGRAMS`), every Latin word and
    every pair of adjacent Latin words.
    """
    canon = canonical(text)
    codes = np.frombuffer(canon.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    positions: list[IntArray] = []
    buckets: list[IntArray] = []
    cjk = 4 * int(np.count_nonzero((codes >= 0x3400) & (codes <= 0x9FFF))) >= len(codes)
    with np.errstate(over="ignore"):
        rolling = np.zeros(len(codes), dtype=np.uint64)
        for n in NGRAMS_CJK if cjk else NGRAMS:
            if len(codes) < n:
                break
            # rolling[i] hashes codes[i : i + n]: extend each (n-1)-gram by one code point.
            rolling = rolling[: len(codes) - n + 1] * _PRIME + codes[n - 1 :]
            buckets.append(_mix(rolling ^ _SEEDS[n]))
            positions.append(np.arange(len(rolling), dtype=np.int64))
        words = [(m.start(), m.group()) for m in _WORD.finditer(canon)]
        if words:
            hashes = [zlib.crc32(w.encode()) for _, w in words]
            hashes += [
                zlib.crc32(f"{a} {b}".encode(), 1) for (_, a), (_, b) in itertools.pairwise(words)
            ]
            starts = [p for p, _ in words] + [p for p, _ in words[:-1]]
            buckets.append(_mix(np.array(hashes, dtype=np.uint64) ^ _WORD_SEED))
            positions.append(np.array(starts, dtype=np.int64))
    if not buckets:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), len(codes)
    found = np.concatenate(buckets)
    if SPLIT:
        found = (found >> 1) | (DIM >> 1 if cjk else 0)
    return np.concatenate(positions), found, len(codes)
