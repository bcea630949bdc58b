"""The bodies of the `/v1/vector_stores` calls, checked field by field before anything uses them.

OpenAI's fields, within OpenAI's bounds (metadata: 16 pairs, keys of 64 and
values of 512 characters; attributes: 16 keys, strings of 512, numbers or
booleans; `max_num_results` 1 to 50).  Bulkhead's own field is
`embedding_model` on create: the embedding model granted to the tenant that
embeds every chunk and query of the store (default: the bundled MiniLM).
Each `validate_*` is the gateway's validator (`gateway.endpoints`); each
`parse_*` gives the endpoint the checked values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bulkhead.errors import InvalidRequest
from bulkhead.vectors.chunking import Chunking, parse_chunking
from bulkhead.vectors.filters import Filter, parse_filters

DEFAULT_MODEL = "minilm-embed"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MODEL = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
MAX_QUERY_CHARS = 4096
MAX_QUERIES = 8


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _only(body: dict[str, Any], allowed: frozenset[str]) -> None:
    for name in body:
        if name not in allowed:
            raise _bad(name, f"Unrecognized request argument supplied: {name}")


def metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16:
        raise _bad("metadata", "'metadata' must be an object of at most 16 pairs.")
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise _bad("metadata", "metadata keys are at most 64, values 512 characters.")
    return dict(value)


def attributes(value: Any) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 16:
        raise _bad("attributes", "'attributes' must be an object of at most 16 keys.")
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str | int | float | bool):
            raise _bad("attributes", "attribute values are strings, numbers or booleans.")
        if isinstance(item, str) and len(item) > 512:
            raise _bad("attributes", "attribute strings are at most 512 characters.")
    return dict(value)


def _name(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 256):
        raise _bad("name", "'name' must be a string of at most 256 characters.")
    return value


def file_id(value: Any, param: str = "file_id") -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise _bad(param, f"'{param}' must be a file id.")
    return value


@dataclass(frozen=True, slots=True)
class CreateStore:
    name: str
    model: str
    metadata: dict[str, str]
    file_ids: tuple[str, ...]
    chunking: Chunking


_CREATE = frozenset(
    {
        "name",
        "metadata",
        "file_ids",
        "chunking_strategy",
        "expires_after",
        "description",
        "embedding_model",
    }
)


def parse_create(body: dict[str, Any]) -> CreateStore:
    _only(body, _CREATE)
    if body.get("expires_after") is not None:
        raise _bad("expires_after", "'expires_after' is not supported by this gateway.")
    model = body.get("embedding_model", DEFAULT_MODEL)
    if not isinstance(model, str) or not _MODEL.fullmatch(model):
        raise _bad("embedding_model", "'embedding_model' must be a model name.")
    files = body.get("file_ids") or []
    if not isinstance(files, list) or len(files) > 100:
        raise _bad("file_ids", "'file_ids' must be a list of at most 100 file ids.")
    return CreateStore(
        name=_name(body.get("name")) or "",
        model=model,
        metadata=metadata(body.get("metadata")) or {},
        file_ids=tuple(file_id(f, "file_ids") for f in files),
        chunking=parse_chunking(body.get("chunking_strategy")),
    )


def validate_create(body: dict[str, Any]) -> bool:
    parse_create(body)
    return False


def parse_modify(body: dict[str, Any]) -> tuple[str | None, dict[str, str] | None]:
    _only(body, frozenset({"name", "metadata", "expires_after"}))
    if body.get("expires_after") is not None:
        raise _bad("expires_after", "'expires_after' is not supported by this gateway.")
    return _name(body.get("name")), metadata(body.get("metadata"))


def validate_modify(body: dict[str, Any]) -> bool:
    parse_modify(body)
    return False


@dataclass(frozen=True, slots=True)
class Attach:
    file_id: str
    chunking: Chunking
    attributes: dict[str, object]


def parse_attach(body: dict[str, Any]) -> Attach:
    _only(body, frozenset({"file_id", "chunking_strategy", "attributes"}))
    return Attach(
        file_id=file_id(body.get("file_id")),
        chunking=parse_chunking(body.get("chunking_strategy")),
        attributes=attributes(body.get("attributes")),
    )


def validate_attach(body: dict[str, Any]) -> bool:
    parse_attach(body)
    return False


@dataclass(frozen=True, slots=True)
class Search:
    queries: tuple[str, ...]
    max_results: int
    threshold: float
    filters: Filter | None


def _queries(value: Any) -> tuple[str, ...]:
    found = [value] if isinstance(value, str) else value
    if not isinstance(found, list) or not 1 <= len(found) <= MAX_QUERIES:
        raise _bad("query", f"'query' must be a string or a list of 1 to {MAX_QUERIES}.")
    for query in found:
        if not isinstance(query, str) or not 1 <= len(query) <= MAX_QUERY_CHARS:
            raise _bad("query", f"Each query is 1 to {MAX_QUERY_CHARS} characters.")
    return tuple(found)


def parse_search(body: dict[str, Any]) -> Search:
    _only(
        body, frozenset({"query", "max_num_results", "filters", "ranking_options", "rewrite_query"})
    )
    count = body.get("max_num_results", 10)
    if type(count) is not int or not 1 <= count <= 50:
        raise _bad("max_num_results", "'max_num_results' must be an integer from 1 to 50.")
    ranking = body.get("ranking_options") or {}
    if not isinstance(ranking, dict) or not set(ranking) <= {"ranker", "score_threshold"}:
        raise _bad("ranking_options", "'ranking_options' takes 'ranker' and 'score_threshold'.")
    if ranking.get("ranker", "auto") not in ("auto", "default-2024-11-15", "none"):
        raise _bad("ranking_options", "'ranker' must be 'auto' or 'default-2024-11-15'.")
    threshold = ranking.get("score_threshold", 0.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise _bad("ranking_options", "'score_threshold' must be a number from 0 to 1.")
    if not 0.0 <= threshold <= 1.0:
        raise _bad("ranking_options", "'score_threshold' must be a number from 0 to 1.")
    filters = body.get("filters")
    return Search(
        queries=_queries(body.get("query")),
        max_results=count,
        threshold=float(threshold),
        filters=parse_filters(filters) if filters is not None else None,
    )


def validate_search(body: dict[str, Any]) -> bool:
    parse_search(body)
    return False
