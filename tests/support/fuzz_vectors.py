"""Hypothesis strategies for `/v1/vector_stores` requests (issue 18), for `test_no_5xx`.

Every route of the table (`gateway.endpoints.VECTOR_STORES`) with a real store
id (made by the fixture) or any id, and bodies valid, near-valid or hostile:
names, metadata, chunking strategies, attributes, queries, nested filters.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from bulkhead.gateway.endpoints import VECTOR_STORES
from tests.support.fuzz_requests import FILE_IDS, ODD_HEADERS, Sent, _typed, queries
from tests.support.openai_bodies import (
    CONTENT_TYPES,
    JSON_VALUES,
    SHORT,
    TEXT,
    encode,
    near_valid,
    raw_hostile,
)

STORE_IDS = (
    st.sampled_from(["vs_0", "vs_", "..", "%2e%2e", "vs_" + "a" * 300, " ", "\x00"])
    | st.text(max_size=40).filter(lambda t: "/" not in t and t)
    | st.from_regex(r"\Avs_[0-9a-f]{8,30}\Z")
)
ODD = JSON_VALUES | TEXT
SIZES = st.sampled_from([0, 99, 100, 400, 800, 4096, 4097, -1, 2**40]) | ODD
CHUNKING = (
    st.just({"type": "auto"})
    | st.fixed_dictionaries(
        {
            "type": st.just("static"),
            "static": st.fixed_dictionaries(
                {"max_chunk_size_tokens": SIZES, "chunk_overlap_tokens": SIZES}
            ),
        }
    )
    | ODD
)
SCALARS = SHORT | st.integers(-5, 5) | st.booleans() | st.floats(allow_nan=True)
ATTRIBUTES = st.dictionaries(SHORT, SCALARS | ODD, max_size=4) | ODD
METADATA = st.dictionaries(SHORT, SHORT | ODD, max_size=4) | ODD
COMPARE = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "zz"]),
        "key": SHORT | ODD,
        "value": SCALARS | st.lists(SCALARS, max_size=3) | ODD,
    }
)
FILTERS = (
    st.recursive(
        COMPARE,
        lambda inner: st.fixed_dictionaries(
            {"type": st.sampled_from(["and", "or", "xor"]), "filters": st.lists(inner, max_size=3)}
        ),
        max_leaves=8,
    )
    | ODD
)


def _bodies(model: str, files: list[str]) -> dict[str, st.SearchStrategy[dict[str, Any]]]:
    file_ids = st.sampled_from(files) | FILE_IDS if files else FILE_IDS
    return {
        "create": st.fixed_dictionaries(
            {},
            optional={
                "name": SHORT | ODD,
                "metadata": METADATA,
                "file_ids": st.lists(file_ids, max_size=2) | ODD,
                "chunking_strategy": CHUNKING,
                "embedding_model": st.sampled_from([model, "nope"]) | ODD,
                "expires_after": ODD,
            },
        ),
        "update": st.fixed_dictionaries({}, optional={"name": SHORT | ODD, "metadata": METADATA}),
        "search": st.fixed_dictionaries(
            {"query": SHORT | st.lists(SHORT, max_size=9) | ODD},
            optional={
                "max_num_results": st.integers(-1, 60) | ODD,
                "filters": FILTERS,
                "ranking_options": st.fixed_dictionaries(
                    {}, optional={"score_threshold": st.floats() | ODD, "ranker": SHORT}
                )
                | ODD,
                "rewrite_query": ODD,
            },
        ),
        "files.create": st.fixed_dictionaries(
            {"file_id": file_ids | ODD},
            optional={"chunking_strategy": CHUNKING, "attributes": ATTRIBUTES},
        ),
    }


@st.composite
def vector_store_requests(draw: st.DrawFn, model: str, stores: list[str], files: list[str]) -> Sent:
    endpoint = draw(st.sampled_from(VECTOR_STORES))
    ids = {"vector_store_id": draw(st.sampled_from(stores) | STORE_IDS if stores else STORE_IDS)}
    ids["file_id"] = draw(st.sampled_from(files) | FILE_IDS if files else FILE_IDS)
    path = endpoint.path.replace("{vector_store_id}", ids["vector_store_id"])
    path = path.replace("{file_id}", ids["file_id"])
    action = endpoint.action.removeprefix("v1:vector_stores.")
    bodies = _bodies(model, files)
    body = b""
    if action in bodies:
        kind = draw(st.sampled_from(["valid", "valid", "near", "hostile-json", "hostile-bytes"]))
        valid = draw(bodies[action])
        if kind == "hostile-bytes":
            body = draw(raw_hostile(encode(valid)))
        elif kind == "hostile-json":
            body = encode(draw(JSON_VALUES), draw(st.booleans()))
        else:
            body = encode(valid if kind == "valid" else draw(near_valid(st.just(valid))))
        headers = _typed(draw(CONTENT_TYPES)) + draw(ODD_HEADERS)
    else:
        headers = draw(ODD_HEADERS)
    query = draw(queries()) if endpoint.method == "GET" else b""
    return Sent(endpoint.method, path, body, headers, query)
