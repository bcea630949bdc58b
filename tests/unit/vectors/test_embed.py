"""`ChainEmbedder` against an embedding model that answers badly (a tenant may choose it)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from bulkhead.errors import UpstreamError
from bulkhead.vectors.embed import BATCH, ChainEmbedder


def _answering(dimensions: list[int]) -> Any:
    """An ASGI app answering each embeddings call with the next number of dimensions."""
    calls = iter(dimensions)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = orjson.loads((await receive())["body"])
        size = next(calls)
        data = [
            {"object": "embedding", "index": i, "embedding": [0.5] * size}
            for i in range(len(body["input"]))
        ]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": orjson.dumps({"data": data})})

    return app


def test_batches_of_other_dimensions_are_a_clear_upstream_error() -> None:
    """A model answering one batch in 3 dimensions and the next in 4 made numpy raise a
    ValueError: the file failed as `server_error`, with a traceback logged at ERROR."""
    embedder = ChainEmbedder()
    embedder.app = _answering([3, 4])
    origin = {"type": "http", "headers": []}
    with pytest.raises(UpstreamError, match="dimensions"):
        asyncio.run(embedder(origin, "m", ["text"] * (BATCH + 1)))


def test_batches_of_one_size_are_joined() -> None:
    embedder = ChainEmbedder()
    embedder.app = _answering([3, 3])
    found = asyncio.run(embedder({"type": "http", "headers": []}, "m", ["t"] * (BATCH + 1)))
    assert found.shape == (BATCH + 1, 3)
