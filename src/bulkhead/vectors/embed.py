"""Embedding through the tenant's own path: a sub-request to `/v1/embeddings` through the chain.

A store's chunks and queries are embedded exactly as if the caller had sent
`POST /v1/embeddings` itself, with the same credential: the request enters the
whole chain (`gateway.chain.build_chain`) from the top, so authentication,
the model grant, Cedar, validation, admission and budgets, the input guards,
the tenant's compute and the audit log all apply, and nothing here can reach
a model the caller could not call.  The sub-request is a fresh ASGI scope that
carries the caller's connection (client address, TLS extensions) and headers,
never the facts the chain set for the outer request (`bulkhead.*` keys): those
are set again by the layers that own them.

A refusal comes back as the same error class (by status), so a search answers
the client as an embeddings call would have; ingestion records it as the
file's `last_error`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from bulkhead.errors import (
    BulkheadError,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from bulkhead.web.scope import ASGIApp, Message, Scope

if TYPE_CHECKING:
    from bulkhead.vectors.index import Matrix

PATH = "/v1/embeddings"
BATCH = 32  # chunks per embeddings call, at most
BATCH_CHARS = 24_000  # and about this much text: well within the API's body limit
_DROP = frozenset({b"content-length", b"content-type", b"transfer-encoding", b"expect"})
_BY_STATUS: Mapping[int, type[BulkheadError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    503: Unavailable,
    504: UpstreamTimeout,
}


def origin_of(scope: Scope) -> Scope:
    """What of the caller's request a later sub-request carries (no `bulkhead.*` facts)."""
    kept = {k: v for k, v in scope.items() if not str(k).startswith("bulkhead.")}
    kept["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in _DROP]
    return kept


def _error(status: int, body: bytes) -> BulkheadError:
    try:
        found = orjson.loads(body)["error"]
        message, code = str(found["message"]), found.get("code")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message, code = "The embedding model could not be called.", None
    if status == 429:
        return RateLimited(message)
    kind = _BY_STATUS.get(status, UpstreamError)
    return kind(message, code=code if isinstance(code, str) else None)


class ChainEmbedder:
    """Embeds texts by calling the chain `app` (set once the chain is built)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, origin: Scope, model: str, texts: list[str]) -> Matrix:
        import numpy as np  # with the first vector store (`vectors.index`)

        blocks = [await self._call(origin, model, batch) for batch in batches(texts)]
        if len({block.shape[1] for block in blocks}) > 1:  # a model a tenant may have chosen
            raise UpstreamError("The embedding model answered vectors of different dimensions.")
        return np.concatenate(blocks) if blocks else np.zeros((0, 1), dtype=np.float32)

    async def _call(self, origin: Scope, model: str, texts: list[str]) -> Matrix:
        if self.app is None:  # pragma: no cover - build_chain sets it
            raise Unavailable("Embeddings are not available.")
        body = orjson.dumps({"model": model, "input": texts, "encoding_format": "float"})
        scope = dict(origin)
        scope.update(
            method="POST",
            path=PATH,
            raw_path=PATH.encode(),
            query_string=b"",
            headers=[
                *origin["headers"],
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        )
        status, answer = await _exchange(self.app, scope, body)
        if status != 200:
            raise _error(status, answer)
        return _vectors(answer, len(texts))


def batches(texts: list[str]) -> list[list[str]]:
    """`texts` in order, in calls of at most `BATCH` texts and (but one) `BATCH_CHARS`."""
    found: list[list[str]] = []
    size = 0
    for text in texts:
        if not found or len(found[-1]) >= BATCH or size + len(text) > BATCH_CHARS:
            found.append([])
            size = 0
        found[-1].append(text)
        size += len(text)
    return found


async def _exchange(app: ASGIApp, scope: Scope, body: bytes) -> tuple[int, bytes]:
    sent = False
    forever = asyncio.Event()
    status, parts = 500, []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await forever.wait()  # the "client" never disconnects
        return {"type": "http.disconnect"}  # pragma: no cover

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            parts.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    return status, b"".join(parts)


def _vectors(answer: bytes, count: int) -> Matrix:
    import numpy as np

    try:
        data: list[dict[str, Any]] = orjson.loads(answer)["data"]
        rows = sorted(data, key=lambda d: int(d["index"]))
        matrix = np.asarray([d["embedding"] for d in rows], dtype=np.float32)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UpstreamError(
            "The embedding model answered something that is not embeddings."
        ) from None
    if matrix.ndim != 2 or len(matrix) != count or not np.isfinite(matrix).all():
        raise UpstreamError("The embedding model answered something that is not embeddings.")
    return matrix
