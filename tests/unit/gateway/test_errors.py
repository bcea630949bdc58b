"""The outermost layer: any error below becomes one OpenAI-format response, opaque if unplanned."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from bulkhead.errors import INTERNAL_MESSAGE, NotFound
from bulkhead.gateway.errors import ErrorMiddleware
from bulkhead.web.scope import Message, Receive, Scope, Send

SECRET = "password=hunter2"


def run(app: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v1/models", "headers": []}
    asyncio.run(ErrorMiddleware(app)(scope, receive, send))
    return sent


def test_domain_error_becomes_its_status() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise NotFound("tenant 'x' not found")

    start, body = run(app)
    assert start["status"] == 404
    assert orjson.loads(body["body"])["error"]["message"] == "tenant 'x' not found"


def test_unexpected_exception_is_an_opaque_500() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError(SECRET)

    start, body = run(app)
    assert start["status"] == 500
    assert SECRET.encode() not in body["body"]
    assert orjson.loads(body["body"])["error"]["message"] == INTERNAL_MESSAGE


def test_error_after_a_stream_began_ends_it_with_an_error_event() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
        raise RuntimeError(SECRET)

    *_, last = run(app)
    assert last["more_body"] is False and last["body"].startswith(b"data: ")
    assert SECRET.encode() not in last["body"]
    event = orjson.loads(last["body"].removeprefix(b"data: "))
    assert event["error"]["type"] == "server_error"
