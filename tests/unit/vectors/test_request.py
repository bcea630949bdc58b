"""The vector store bodies, chunking and filters: OpenAI's bounds, checked at the door."""

from __future__ import annotations

from typing import Any

import pytest

from bulkhead.errors import InvalidRequest
from bulkhead.vectors import request
from bulkhead.vectors.chunking import AUTO, Chunking, parse_chunking, split
from bulkhead.vectors.embed import BATCH, BATCH_CHARS, batches
from bulkhead.vectors.filters import parse_filters


@pytest.mark.parametrize(
    "value",
    [
        {"type": "static"},
        {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
        {"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
        {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 51}},
        {"type": "static", "static": {"max_chunk_size_tokens": True, "chunk_overlap_tokens": 0}},
        {"type": "auto", "x": 1},
        {"type": "other"},
        "auto",
    ],
)
def test_bad_chunking_is_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_chunking(value)
    assert info.value.param == "chunking_strategy"


def test_chunking_defaults_and_windows() -> None:
    assert parse_chunking(None) == AUTO == parse_chunking({"type": "auto"})
    static = {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}
    assert parse_chunking({"type": "static", "static": static}) == Chunking(100, 50)
    chunks = split("word " * 1000, Chunking(100, 50))
    assert 19 <= len(chunks) <= 21 and all(c.startswith("word") for c in chunks)
    assert split("", AUTO) == [] and split("short text", AUTO) == ["short text"]


def test_filters_compare_and_combine() -> None:
    match = parse_filters(
        {
            "type": "and",
            "filters": [
                {"type": "eq", "key": "lang", "value": "en"},
                {"type": "or", "filters": [{"type": "gte", "key": "year", "value": 2020}]},
                {"type": "nin", "key": "tag", "value": ["secret"]},
            ],
        }
    )
    assert match({"lang": "en", "year": 2021, "tag": "public"})
    assert not match({"lang": "en", "year": 2019})
    assert not match({"lang": "en", "year": "2021"})  # another type never compares
    assert not match({"lang": "en", "year": 2021, "tag": "secret"})
    assert parse_filters({"type": "ne", "key": "missing", "value": 1})({})


@pytest.mark.parametrize(
    "value",
    [
        {"type": "eq", "key": "k"},
        {"type": "eq", "key": 1, "value": 1},
        {"type": "eq", "key": "k", "value": {"a": 1}},
        {"type": "in", "key": "k", "value": "x"},
        {"type": "and", "filters": []},
        {"type": "zz", "key": "k", "value": 1},
        {
            "type": "and",
            "filters": [
                {
                    "type": "and",
                    "filters": [
                        {
                            "type": "and",
                            "filters": [
                                {
                                    "type": "and",
                                    "filters": [
                                        {
                                            "type": "and",
                                            "filters": [{"type": "eq", "key": "k", "value": 1}],
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    ],
)
def test_bad_filters_are_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest):
        parse_filters(value)


@pytest.mark.parametrize(
    ("parse", "body", "param"),
    [
        (request.parse_create, {"name": "x" * 257}, "name"),
        (request.parse_create, {"metadata": {"k": 1}}, "metadata"),
        (request.parse_create, {"file_ids": ["../etc"]}, "file_ids"),
        (request.parse_create, {"expires_after": {"anchor": "last_active_at"}}, "expires_after"),
        (request.parse_create, {"embedding_model": "a b"}, "embedding_model"),
        (request.parse_create, {"tenant": "other"}, "tenant"),
        (request.parse_attach, {"file_id": "f", "attributes": {"k": [1]}}, "attributes"),
        (request.parse_attach, {}, "file_id"),
        (request.parse_search, {"query": ""}, "query"),
        (request.parse_search, {"query": ["a"] * 9}, "query"),
        (request.parse_search, {"query": "a", "max_num_results": 0}, "max_num_results"),
        (
            request.parse_search,
            {"query": "a", "ranking_options": {"score_threshold": 2}},
            "ranking_options",
        ),
    ],
)
def test_bad_bodies_name_the_field(parse: Any, body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(body)
    assert info.value.param == param


def test_good_bodies_parse() -> None:
    made = request.parse_create({"name": "docs", "file_ids": ["file-1"]})
    assert made.model == request.DEFAULT_MODEL and made.file_ids == ("file-1",)
    ask = request.parse_search({"query": ["a", "b"], "ranking_options": {"score_threshold": 0.5}})
    assert ask.queries == ("a", "b") and ask.threshold == 0.5 and ask.max_results == 10


def test_embedding_calls_are_batched_by_count_and_size() -> None:
    texts = ["x" * 100] * (BATCH + 1) + ["y" * BATCH_CHARS, "z"]
    found = batches(texts)
    assert [len(b) for b in found] == [BATCH, 1, 1, 1]
    assert [t for b in found for t in b] == texts
