"""SSE parsing of upstream streams: events survive any split into network chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bulkhead.errors import UpstreamError
from bulkhead.runtime.upstream import _sse_batches

STREAM = (
    b'data: {"n":1}\n\n: a comment\n\ndata: {"n":2}\r\n\r\n'
    b'event: x\ndata: {"n":3}\n\ndata: [DONE]\n\n'
)


class Chunks:
    def __init__(self, *chunks: bytes):
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def events(*chunks: bytes) -> list[Any]:
    async def collect() -> list[Any]:
        return [e["n"] async for batch in _sse_batches(Chunks(*chunks)) for e in batch]  # type: ignore[arg-type]

    return asyncio.run(collect())


def test_whole_stream_in_one_chunk() -> None:
    assert events(STREAM) == [1, 2, 3]


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_byte(cut: int) -> None:
    assert events(STREAM[:cut], STREAM[cut:]) == [1, 2, 3]


def test_stream_without_done_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        events(b'data: {"n":1}\n\n')


@pytest.mark.parametrize(
    "bad", [b"data: {oops\n\n", b"data: [1]\n\n", b'data: {"error": {"message": "boom"}}\n\n']
)
def test_garbage_or_error_events_are_upstream_errors(bad: bytes) -> None:
    with pytest.raises(UpstreamError):
        events(bad + b"data: [DONE]\n\n")
