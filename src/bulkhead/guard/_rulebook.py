"""How an injection rule is written, and which rules a text is worth running.

A rule is a regex over normalised text (lower case, NFKC where it matters,
look-alikes folded) with a weight: roughly how sure its match alone makes
us.  Strong phrasings score above the default threshold on their own; weak
hints only push a text over it together with another.

Each rule also names anchors: words, or strings for Chinese and markup,
at least one of which every match of the rule contains.  `RuleIndex` runs a
rule only on texts that hold one of its anchors, so a benign prompt costs
one split into words, a set intersection and one pass for Chinese anchors,
and almost no regex work.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import regex

from bulkhead.guard._paired import Pairs


@dataclass(frozen=True, slots=True)
class Rule:
    """`name` is `category:language`, the reason reported (and logged) when it matches.

    The patterns are compiled at their first use, once per process (`_compiled`): a rule
    runs only on a text that holds one of its anchors, so most are never needed at
    start-up, and compiling all of them cost the start-up 0.06 s of CPU.  Every pattern
    is compiled by the guard's tests (`tests/unit/guard/test_rulebook.py`)."""

    name: str
    weight: float
    source: str
    words: frozenset[str] = frozenset()
    strings: tuple[str, ...] = ()
    unless_source: str | None = None
    """A match whose own text contains this is not counted (e.g. "my previous instructions")."""
    pairs: Pairs | None = None
    """A rule of two clauses near each other: its matches found clause by clause (`_paired`)."""

    @property
    def pattern(self) -> regex.Pattern[str]:
        return _compiled(self.source)

    def finditer(self, text: str) -> Iterator[regex.Match[str]]:
        """`pattern.finditer(text)`: the same matches, for a rule of `pairs` found faster."""
        if self.pairs is None:
            return self.pattern.finditer(text)
        return self.pairs.finditer(self.pattern, text)

    @property
    def unless(self) -> regex.Pattern[str] | None:
        return None if self.unless_source is None else _compiled(self.unless_source)


@functools.cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    # The `regex` engine, unlike `re`, finds a literal that every match must contain and
    # searches for it first: on these patterns it is tens of times faster.
    return regex.compile(pattern)


_warming = threading.Lock()
_warmed = False


def warm_soon(rules: Iterable[Rule]) -> None:
    """Compile every pattern of `rules` on a daemon thread, once per process.

    Called when a tenant's guard with injection rules is built (`Guard`): the first
    text that needs a heavy rule would otherwise compile it on the thread scanning it,
    up to some 20 ms of the event loop once per process; the start-up does not pay
    it (session 16).  The thread gives the interpreter lock up between patterns as
    any thread does; a scan that gets to a pattern first compiles it itself
    (`functools.cache` keeps one of the two, equal)."""
    global _warmed
    with _warming:
        if _warmed:
            return
        _warmed = True
    todo = tuple(rules)
    threading.Thread(target=_warm, args=(todo,), name="bulkhead-rules", daemon=True).start()


def _warm(rules: tuple[Rule, ...]) -> None:
    for r in rules:
        _compiled(r.source)
        if r.unless_source is not None:
            _compiled(r.unless_source)


def rule(
    name: str,
    weight: float,
    pattern: str,
    *,
    words: str = "",
    strings: tuple[str, ...] = (),
    unless: str | None = None,
    pairs: Pairs | None = None,
) -> Rule:
    """A rule; `words` is a space-separated list of anchor words."""
    return Rule(name, weight, pattern, frozenset(words.split()), strings, unless or None, pairs)


# Every ASCII character that is not a letter or digit separates words.
_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
_WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str) -> set[str]:
    """The lower-case ASCII words of a normalised text."""
    if text.isascii():
        return set(text.translate(_SEPARATORS).split())
    return set(_WORD.findall(text))


class RuleIndex:
    """Which rules a text can possibly match, from its words and anchor strings.

    Anchor strings outside ASCII (the Chinese ones) are found in one pass of
    an alternation.  That pass does not report an anchor that overlaps one
    found just before it; with contained anchors folded (`_fold_contained`),
    only two anchors that partly overlap could hide each other, and the rule
    tables have none.
    """

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self._by_word: dict[str, set[int]] = {}
        self._by_string: dict[str, set[int]] = {}
        for i, r in enumerate(rules):
            for word in r.words:
                self._by_word.setdefault(word, set()).add(i)
            for anchor in r.strings:
                self._by_string.setdefault(anchor, set()).add(i)
        self._fold_contained()
        self.words = frozenset(self._by_word)
        self._ascii = tuple((a, ids) for a, ids in self._by_string.items() if a.isascii())
        # The characters the ASCII anchors start with (`<`, `[`): a text holding none of them
        # (most prose) holds no anchor, and one `in` of a character scans at memory speed.
        self._ascii_first = tuple(dict.fromkeys(a[0] for a, _ in self._ascii))
        others = sorted((a for a in self._by_string if not a.isascii()), key=len, reverse=True)
        self._others = re.compile("|".join(map(re.escape, others)))

    def _fold_contained(self) -> None:
        """Give each anchor that contains a shorter one to that one: a text holding the
        longer holds the shorter, and one pass of the alternation then finds every rule.
        """
        anchors = sorted(self._by_string, key=len)
        for i, longer in enumerate(anchors):
            shorter = next((a for a in anchors[:i] if a in longer and a in self._by_string), None)
            if shorter is not None:
                self._by_string[shorter] |= self._by_string.pop(longer)

    def candidates(self, text: str, words: set[str]) -> list[Rule]:
        """The rules worth running on `text` (normalised), whose words are `words`."""
        ids: set[int] = set()
        for word in self.words.intersection(words):
            ids |= self._by_word[word]
        for first in self._ascii_first:
            if first in text:
                for anchor, rule_ids in self._ascii:
                    if anchor in text:
                        ids |= rule_ids
                break
        if not text.isascii():
            for found in set(self._others.findall(text)):
                ids |= self._by_string[found]
        return [self.rules[i] for i in sorted(ids)]
