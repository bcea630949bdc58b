"""`/openapi.json` is made when first asked for (`gateway.chain.Endpoints`), not at start-up."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from bulkhead.gateway.chain import Endpoints
from bulkhead.web.scope import Message


async def not_here(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("only the document is asked for")


def test_the_document_is_made_once_at_the_first_request_and_served_whole() -> None:
    made: list[int] = []

    def document() -> dict[str, Any]:
        made.append(1)
        return {"openapi": "3.1.0", "paths": {"/admin/v1/tenants": {}}}

    endpoints = Endpoints(v1=not_here, files=not_here, management=not_here, openapi=document)
    assert made == []  # building the chain makes nothing

    async def get() -> list[Message]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "method": "GET", "path": "/openapi.json", "headers": []}
        await endpoints(scope, receive, send)
        return sent

    for _ in range(2):
        sent = asyncio.run(get())
        assert sent[0]["status"] == 200
        body = b"".join(m.get("body", b"") for m in sent[1:])
        assert orjson.loads(body)["paths"] == {"/admin/v1/tenants": {}}
    assert made == [1]
