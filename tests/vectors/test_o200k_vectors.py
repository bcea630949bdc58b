"""The shipped compact o200k vocabulary is OpenAI's table, and counts match tiktoken's.

The reference encoder is built from OpenAI's published file in `tests/vectors/o200k/`
with a parser of its own, so a fault in `bulkhead.limits._o200k` cannot hide itself.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from importlib import resources
from pathlib import Path

import pytest
import tiktoken

from bulkhead.limits import _o200k
from bulkhead.limits.tokens import _O200K_PATTERN, _SPECIAL, O200kCounter

PUBLISHED = Path(__file__).with_name("o200k") / "o200k_base.tiktoken.gz"


@pytest.fixture(scope="module")
def published() -> bytes:
    raw = gzip.decompress(PUBLISHED.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == _o200k.O200K_SHA256
    return raw


@pytest.fixture(scope="module")
def published_ranks(published: bytes) -> dict[bytes, int]:
    ranks = {}
    for line in published.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@pytest.fixture(scope="module")
def reference(published_ranks: dict[bytes, int]) -> tiktoken.Encoding:
    return tiktoken.Encoding(
        name="o200k_reference",
        pat_str=_O200K_PATTERN,
        mergeable_ranks=published_ranks,
        special_tokens=_SPECIAL,
    )


@pytest.fixture(scope="module", params=["tiktoken", "compact"])
def counter(request: pytest.FixtureRequest) -> O200kCounter:
    made = O200kCounter(request.param)
    made.load()
    return made


def test_the_shipped_file_is_the_published_table_converted(published: bytes) -> None:
    shipped = resources.files("bulkhead.limits").joinpath(_o200k.COMPACT_FILE).read_bytes()
    assert _o200k.compact(published) == shipped
    assert hashlib.sha256(shipped).hexdigest() == _o200k.COMPACT_SHA256


def test_the_compact_ranks_are_the_published_ranks(published_ranks: dict[bytes, int]) -> None:
    assert _o200k.ranks() == published_ranks


TEXTS = {
    "empty": "",
    "english": "The quick brown fox jumps over the lazy dog. It's 12,345.67 — isn't it?",
    "chinese": "我们的季度报告已经准备好了，请在周五之前审阅。北京、上海和深圳的数据都包括在内。",  # noqa: RUF001
    "japanese_korean": "東京の天気は晴れです。서울의 날씨는 맑습니다.",
    "emoji": "ship it 🚀🚀 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽 keycap 1️⃣",
    "arabic_hindi": "مرحبا بالعالم — नमस्ते दुनिया",
    "code": "def f(x):\n\treturn {'a': [1, 2, 3], \"b\": x ** 2}  # comment\r\n",
    "whitespace": "a  b   c\n\n\n  \t\t d \r\n\r\n   ",
    "numbers": "3.14159265358979 1e-10 0xdeadbeef 12345678901234567890",
    "special_text": "<|endoftext|> and <|endofprompt|> are ordinary text here",
    "contractions": "I'LL you'd WE'VE they're it's SHE'D",
    "accents": "naïve café résumé Ångström Zürich ñandú",
    "long_words": "pneumonoultramicroscopicsilicovolcanoconiosis" * 20,
    "binaryish": "".join(chr(c) for c in range(1, 600)),
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_counts_equal_tiktoken(
    name: str, counter: O200kCounter, reference: tiktoken.Encoding
) -> None:
    text = TEXTS[name]
    assert counter.count(text) == len(reference.encode_ordinary(text))


def test_lone_surrogates_count_as_tiktoken_counts_them(
    counter: O200kCounter, reference: tiktoken.Encoding
) -> None:
    text = "before \ud800 after \udfff end"
    assert counter.count(text) == len(reference.encode_ordinary(text))


@pytest.mark.parametrize("script", ["english", "chinese", "emoji", "code"])
def test_long_inputs_up_to_a_piece_count_exactly(
    script: str, counter: O200kCounter, reference: tiktoken.Encoding
) -> None:
    base, piece = TEXTS[script] + " ", counter._piece
    text = (base * (piece // len(base) + 1))[:piece]
    assert len(text) == piece
    assert counter.count(text) == len(reference.encode_ordinary(text))


def test_longer_inputs_with_words_count_exactly(
    counter: O200kCounter, reference: tiktoken.Encoding
) -> None:
    """A long text is counted in pieces cut where the split pattern cuts: no count moves."""
    text = (TEXTS["chinese"] + TEXTS["english"] + "\n" + TEXTS["code"]) * 2000
    assert len(text) > 2 * counter._piece
    assert counter.count(text) == len(reference.encode_ordinary(text))


def test_longer_inputs_without_words_count_piece_by_piece(
    counter: O200kCounter, reference: tiktoken.Encoding
) -> None:
    text = TEXTS["chinese"] * 6000  # no space between two ASCII letters: cut hard
    piece = counter._piece
    pieces = [text[i : i + piece] for i in range(0, len(text), piece)]
    assert len(pieces) > 2
    assert counter.count(text) == sum(len(reference.encode_ordinary(p)) for p in pieces)
    # Cutting at a piece's edge moves the count by at most a token or so per cut.
    assert abs(counter.count(text) - len(reference.encode_ordinary(text))) <= 2 * len(pieces)
