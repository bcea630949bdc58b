"""The count-only o200k BPE counts exactly what tiktoken's `encode_ordinary` counts.

The reference is tiktoken's own encoder over the same bundled vocabulary
(`tests/vectors/test_o200k_vectors.py` checks the vocabulary against OpenAI's
published file, and the counter against an encoder built from that file).
"""

from __future__ import annotations

import functools
import re
import string

import pytest
import regex
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.limits import _o200k, tokens
from bulkhead.limits._bpe import ASCII_PATTERN, NEWER, PATTERN, CompactBPE


@functools.cache
def _reference() -> tiktoken.Encoding:
    return tokens.load_o200k()


@functools.cache
def _bpe() -> CompactBPE:
    return CompactBPE(*_o200k.unpack(_o200k.shipped()))


def _same(text: str) -> None:
    assert _bpe().count(text) == len(_reference().encode_ordinary(text)), repr(text[:200])


_VALID = st.characters(exclude_categories=("Cs",))  # lone surrogates: see the counter's test
# Letters, marks, digits and whitespace of several scripts, the contractions' letters in both
# cases (and the long s, which folds to s), punctuation: what the split pattern looks at.
_MIXED = st.sampled_from(
    list("aAsStTrReEvVmMlLdD\u017f\u212a'\u2019/.,!-_0123456789")
    + list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000")
    + list("éÅñßΣσЖж中文日本語한국어ـعربيअनु\u0301\u0308\u200d")
    + ["🚀", "👍🏽", "🇫🇷", "1️⃣", "\U0001f9d1\u200d\U0001f4bb", "\U000e0041"]
)


@settings(max_examples=400, deadline=None)
@given(st.text(_VALID, max_size=60))
def test_any_unicode_text_counts_as_tiktoken(text: str) -> None:
    _same(text)


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=120))
def test_any_ascii_text_counts_as_tiktoken(text: str) -> None:
    _same(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(_MIXED, max_size=80).map("".join))
def test_mixed_scripts_whitespace_and_contractions_count_as_tiktoken(text: str) -> None:
    _same(text)


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
        | st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
        | st.sampled_from("，。、 \n"),  # noqa: RUF001
        max_size=80,
    )
)
def test_cjk_and_emoji_count_as_tiktoken(text: str) -> None:
    _same(text)


@settings(max_examples=300, deadline=None)
@given(st.text(string.printable, max_size=200))
def test_the_ascii_split_is_the_unicode_split_on_ascii(text: str) -> None:
    """ASCII text is split by `re` with ASCII classes: the same pieces as the full pattern."""
    assert re.findall(ASCII_PATTERN, text, re.ASCII) == regex.findall(PATTERN, text)


def test_every_token_of_the_vocabulary_counts_as_tiktoken() -> None:
    """Each token alone, and after a word: the whole-piece path and the merges over it."""
    bpe, reference = _bpe(), _reference()
    for token in _o200k.tokens(_o200k.shipped()):
        text = token.decode("utf-8", "replace")
        for probe in (text, f"x{text}y"):
            assert bpe.count(probe) == len(reference.encode_ordinary(probe)), token


@pytest.mark.parametrize(
    "text",
    [
        "a" * 5000,
        "ab" * 3000,
        "\u4e2d" * 3000,
        "🚀" * 800,
        "0" * 999,
        "!" * 4000,
        " " * 3000 + "x",
        "\n" * 2000,
        "aA" * 2500,
        "pneumonoultramicroscopicsilicovolcanoconiosis" * 100,
        "".join(chr(c) for c in range(1, 3000)),
    ],
)
def test_long_pieces_count_as_tiktoken(text: str) -> None:
    """Long single pieces merge with a heap, in the same order as tiktoken's scan."""
    _same(text)


def test_a_token_and_an_absent_span_rank() -> None:
    bpe, reference = _bpe(), _reference()
    assert bpe.rank(b" hello") == reference.encode_single_token(b" hello")
    for byte in range(256):  # every byte is a token: a merge always starts from tokens
        assert bpe.rank(bytes([byte])) == reference.encode_single_token(bytes([byte]))
    assert bpe.rank(b"zzqqxxjjzzqq") == -1
    assert bpe.rank(b"") == -1


def test_a_vocabulary_cut_short_is_refused() -> None:
    lengths, body = _o200k.unpack(_o200k.shipped())
    with pytest.raises(ValueError, match="truncated"):
        CompactBPE(lengths, body[:-1])


_STRIDE = 11


def test_code_points_split_as_tiktoken_splits_them() -> None:
    """Each newer code point and every eleventh letter, mark, number or space of the
    `regex` module's Unicode (all of them take half a minute: run it with `_STRIDE` 1
    after a tiktoken or regex upgrade), in a probe where its class decides the pieces.
    A difference means the two Unicode tables moved apart: the message names the code
    points to add to `NEWER_UNICODE` or take out of it."""
    bpe, reference = _bpe(), _reference()
    known = regex.compile(r"[\p{L}\p{N}\p{M}\p{White_Space}]")
    newer = regex.compile(NEWER)
    differ = []
    for point in range(0x110000):
        char = chr(point)
        if newer.match(char) or (point % _STRIDE == 0 and known.match(char)):
            probe = f"a{char}b 1{char}2 {char}'s\n{char} A{char}"
            if bpe.count(probe) != len(reference.encode_ordinary(probe)):
                differ.append(f"{point:#x}")
    assert differ == []


@settings(max_examples=25, deadline=None)
@given(st.lists(_MIXED | st.sampled_from(["word", "It's", "\r\n", "  ", "12345"]), max_size=200))
def test_long_texts_count_exactly_across_the_counters_cuts(parts: list[str]) -> None:
    """Longer than a piece of `O200kCounter.count`, with a space between ASCII words in
    every stretch of text: it is cut only where the pattern cuts, so the count is exact."""
    chunk = "".join(parts) + " ab cd "
    text = chunk * (tokens._PIECES["compact"] // len(chunk) + 3)
    counter = tokens.O200kCounter("compact")
    assert counter.count(text) == len(_reference().encode_ordinary(text))
