"""Chunks a store's embedding model reads whole: the bundled MiniLM's 254 word pieces."""

from __future__ import annotations

import pytest

from bulkhead.errors import InvalidRequest
from bulkhead.vectors.chunking import (
    AUTO,
    MINILM,
    MINILM_AUTO,
    MINILM_PIECES,
    _wordpiece,
    fits_for,
    for_model,
    parse_chunking,
    split,
)


def _pieces(text: str) -> int:
    return len(_wordpiece().encode(text, add_special_tokens=False).ids)


def test_auto_is_sized_for_minilm_and_static_beyond_its_window_is_refused() -> None:
    assert for_model(MINILM, parse_chunking({"type": "auto"})) == MINILM_AUTO
    assert for_model(MINILM, parse_chunking(None)) == MINILM_AUTO
    assert for_model("text-embedding-3-small", AUTO) == AUTO  # OpenAI's sizes elsewhere
    static = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 0}}
    with pytest.raises(InvalidRequest, match="at most 200") as caught:
        for_model(MINILM, parse_chunking(static))
    assert caught.value.param == "chunking_strategy"
    assert for_model("other", parse_chunking(static)).size == 800
    small = {"type": "static", "static": {"max_chunk_size_tokens": 150, "chunk_overlap_tokens": 10}}
    assert for_model(MINILM, parse_chunking(small)).size == 150


@pytest.mark.parametrize(
    "text",
    [
        " ".join(
            f"Sentence {i} says the value of item {i * 7919} is unremarkable." for i in range(400)
        ),
        "机器学习是人工智能的一个分支它使计算机能够从数据中学习" * 120,  # more pieces than tokens
        "x9Qz#" * 3000,
    ],
)
def test_every_minilm_chunk_is_read_whole(text: str) -> None:
    chunks = split(text, MINILM_AUTO, fits_for(MINILM))
    assert len(chunks) > 3
    assert max(_pieces(c) for c in chunks) <= MINILM_PIECES
    # Without the measure, the same windows overflow for the CJK text: the halving is needed.
    if text.startswith("机"):
        assert max(_pieces(c) for c in split(text, MINILM_AUTO)) > MINILM_PIECES
