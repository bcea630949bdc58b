"""Undo the usual disguises before injection rules match: one canonical form per text.

NFKC folds full-width and mathematical letters (U+FF49, U+1D422) to ASCII;
invisible characters (zero-width, bidi controls) are removed; Cyrillic and
Greek look-alikes are folded to Latin (Unicode TR39 confusables, the subset
that passes for Latin letters); the ASCII text that Unicode tag characters
(U+E0000-E007F) smuggle is decoded and kept apart; text is case-folded and
runs of white space become one space (line breaks stay: some rules look at
line starts).  Each disguise found is a signal too:
ordinary text rarely hides letters.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Every pattern here leads with a character class or a literal, so the
# stdlib engine skips ahead to candidates in C; each is run only after a
# cheaper test says it may match.  Ordinary text costs a few C passes.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad\u034f\u3164"
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
_INVISIBLE = str.maketrans(dict.fromkeys(_ZERO_WIDTH + _BIDI))
_INVISIBLE_AS_SPACE = str.maketrans(dict.fromkeys(_ZERO_WIDTH + _BIDI, " "))
_ANY_INVISIBLE = re.compile(f"[{_ZERO_WIDTH}{_BIDI}]")
# A zero-width joiner between emoji builds one glyph (👨‍👩‍👧); only an
# invisible character between two letters hides something.
_HIDDEN_IN_WORD = re.compile(rf"[{_ZERO_WIDTH}]+(?<=[^\W\d_][{_ZERO_WIDTH}])(?=[^\W\d_])")
_BIDI_RE = re.compile(f"[{_BIDI}]")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
# Tag characters after U+1F3F4 spell subdivision flags (🏴 England); any
# other run of them is hidden ASCII.
_FLAG_TAGS = re.compile("\U0001f3f4[\U000e0000-\U000e007f]+")
# The characters NFKC changes in ways that matter here: full-width and
# mathematical letters and digits, circled and parenthesised letters,
# ligatures.  Text without them skips NFKC, which costs more than all the
# rest of a scan.  Full-width punctuation (U+FF01-FF0F, U+FF1A-FF20) is
# not among them: it is in every Chinese text, and the Chinese rules match
# it as it is.
_COMPATIBILITY = re.compile(
    "[\u2100-\u214f\u2460-\u24ff\ufb00-\ufb06\uff10-\uff19\uff21-\uff3a\uff41-\uff5a"
    "\U0001d400-\U0001d7ff\U0001f100-\U0001f1ff]"
)

_CONFUSABLES = str.maketrans(
    # Cyrillic, then Greek, each lower case then upper case.
    "аеорсухіјѕԁԛԝһӏкмтвнАВЕКМНОРСТХУІЈЅαοριντυεκΑΒΕΖΗΙΚΜΝΟΡΤΥΧ\u0261",
    "aeopcyxijsdqwhlkmtbhABEKMHOPCTXYIJSaopivtuekABEZHIKMNOPTYXg",
)
_GREEK_CYRILLIC = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u0261]")
# Anything the slow path handles: tags, invisible characters, compatibility
# forms, look-alikes.  Most non-ASCII text (Chinese, accented Latin) has none.
_UNUSUAL = re.compile(
    "[\U000e0000-\U000e007f"
    + _ZERO_WIDTH
    + _BIDI
    + _COMPATIBILITY.pattern[1:-1]
    + _GREEK_CYRILLIC.pattern[1:-1]
    + "]"
)
_MIXED_SCRIPT = re.compile(r"[\u0370-\u03ff\u0400-\u04ff](?:(?<=[A-Za-z].)|(?=[A-Za-z]))")
_GAP = re.compile(r"[ \t]+")
_CJK = re.compile(r"[\u3400-\u9fff]")
_SPACED_HINT = re.compile(r" [a-z] [a-z] ")
_SPACED_LETTERS = re.compile(r"\b(?:[a-z] ){3,}[a-z]\b")
_LEET = str.maketrans("0134578", "oieastb")


@dataclass(frozen=True, slots=True)
class Normalized:
    """The canonical text, the ASCII hidden in tag characters, and the disguises seen."""

    text: str
    hidden: str = ""
    signals: tuple[str, ...] = ()
    spaced: str = ""
    """Where invisible characters were found: the text with them read as spaces instead."""


def _ascii_form(text: str) -> str:
    """Lower case, each run of spaces one space, line breaks kept; `i g n o r e` joined."""
    folded = _single_spaced(text.lower())
    if _SPACED_HINT.search(folded):
        folded = _SPACED_LETTERS.sub(lambda m: m.group().replace(" ", ""), folded)
    return folded


# The ASCII white space that `str.split` splits on, other than the space and the line break.
_ODD_SPACE = ("\t", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f")


def _single_spaced(text: str) -> str:
    """Each line's words joined by one space, as `" ".join(line.split())` per line does.

    An ASCII text whose only white space is spaces and line breaks (most prompts) gets there
    by a few C passes: no split of a prompt into hundreds of words and join again.
    """
    if text.isascii():
        for odd in _ODD_SPACE:
            if odd in text:
                break
        else:
            while "  " in text:
                text = text.replace("  ", " ")
            if "\n" in text:  # one character is found faster than two
                for gap in (" \n", "\n "):  # a search costs less than a `replace` of nothing
                    if gap in text:
                        text = text.replace(gap, "\n")
            return text.strip(" ")
    return "\n".join(" ".join(line.split()) for line in text.split("\n"))


def _decode_tags(text: str) -> str:
    return "".join(chr(ord(c) - 0xE0000) for m in _TAGS.finditer(text) for c in m.group())


def _invisible_signals(text: str) -> list[str]:
    found = []
    if _ANY_INVISIBLE.search(text):
        if _HIDDEN_IN_WORD.search(text):
            found.append("hidden:zero_width")
        if _BIDI_RE.search(text):
            found.append("hidden:bidi")
    return found


def normalize(text: str) -> Normalized:
    """The canonical form of `text` for rule matching (see the module docstring)."""
    if text.isascii():
        return Normalized(_ascii_form(text))
    if not _UNUSUAL.search(text):
        return Normalized(_ascii_form(_join_cjk(text)))
    hidden = ""
    if _TAGS.search(text):
        text = _FLAG_TAGS.sub("", text)
        hidden = _decode_tags(text)
        text = _TAGS.sub("", text)
    signals = ["hidden:unicode_tags"] if hidden else []
    signals += _invisible_signals(text)
    spaced = ""
    if _ANY_INVISIBLE.search(text):
        spaced = _fold(_nfkc(text.translate(_INVISIBLE_AS_SPACE)))
        text = text.translate(_INVISIBLE)
    text = _nfkc(text)
    if _GREEK_CYRILLIC.search(text) and _MIXED_SCRIPT.search(text):
        signals.append("obfuscation:homoglyph")
    return Normalized(_fold(text), hidden, tuple(signals), spaced)


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text) if _COMPATIBILITY.search(text) else text


def _fold(text: str) -> str:
    if _GREEK_CYRILLIC.search(text):
        text = text.translate(_CONFUSABLES)
    return _ascii_form(_join_cjk(text))


def _join_cjk(text: str) -> str:
    """Remove spaces between two Chinese characters (`忽 略` → `忽略`)."""
    gaps = [m.span() for m in _GAP.finditer(text) if _between_cjk(text, *m.span())]
    if not gaps:
        return text
    parts, position = [], 0
    for start, end in gaps:
        parts.append(text[position:start])
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _between_cjk(text: str, start: int, end: int) -> bool:
    return (
        start > 0
        and end < len(text)
        and bool(_CJK.match(text, start - 1) and _CJK.match(text, end))
    )


# Chinese written a character at a time with the same separator after each (忽/略/之/前,
# 无.视.上.面, 「忽」「略」): four or more characters so split.  A separator is one to three
# characters that are not letters, digits, CJK nor line breaks (`_` may be one); the
# back-reference keeps a list of single characters with mixed punctuation apart.
_SPLIT_CJK = re.compile(
    r"[\u3400-\u9fff]((?:[^\w\n]|_){1,3})[\u3400-\u9fff](?:\1[\u3400-\u9fff]){2,}"
)


# A Chinese character between two separators of the usual kinds (ASCII punctuation, middle
# dots, corner brackets): the back-reference pattern is run only on a text with one.  Led by a
# small class, the hint costs a third of what a class of every separator would (12 against
# 35 µs on 4,096 characters of Chinese prose, whose punctuation is full width).
_SEP = "[!-/:-@\\[-`{-~·・「」『』]"
_SPLIT_HINT = re.compile(f"{_SEP}[\u3400-\u9fff]{_SEP}{{1,3}}[\u3400-\u9fff]{_SEP}")


def unsplit_cjk(text: str) -> str:
    """The text with each run of split Chinese characters joined; `text` itself (the same
    object) where it has none, so a caller tells by identity whether there is a reading."""
    if text.isascii() or _SPLIT_HINT.search(text) is None or _SPLIT_CJK.search(text) is None:
        return text
    return _SPLIT_CJK.sub(lambda m: m.group().replace(m.group(1), ""), text)


def deleet(text: str) -> str:
    """The text with digits read as letters (`1gn0r3` → `ignore`)."""
    return text.translate(_LEET)


def leet_words(words: set[str]) -> set[str]:
    """The words that mix letters and digits, read as letters."""
    return {w.translate(_LEET) for w in words if not w.isalpha() and not w.isdigit()}
