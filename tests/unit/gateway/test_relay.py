"""Every relay path of the OpenAI endpoints, against an upstream answered in process.

The real `UpstreamClient` runs with a `MockTransport` (bulkhead.testing.transport)
in place of aiohttp's network: its egress check, status mapping, size bounds
and stream parsing are the product's own, only the bytes come from the test.
The endpoints sit under the error layer, so each case ends as the client
would see it: a JSON answer, an SSE stream, or an OpenAI-format error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from bulkhead.gateway.admit import TICKET
from bulkhead.gateway.errors import ErrorMiddleware
from bulkhead.gateway.openai_api import OpenAIEndpoints
from bulkhead.limits import StreamMeter
from bulkhead.runtime import Target, UpstreamClient
from bulkhead.runtime.upstream import OPAQUE_FAILURE, UpstreamRequest
from bulkhead.testing.asgi import Sent, drive
from bulkhead.testing.transport import (
    Chunk,
    MockTransport,
    Reply,
    json_reply,
    raw_reply,
    sse_reply,
)
from bulkhead.web.scope import EXCHANGE, Scope
from tests.support.audit_sink import SlowSink
from tests.support.chain import CHAT_MODEL, EMBED_MODEL, caller, chat_body, scope_at

TARGET = Target(
    base_url="http://upstream.test/v1",
    upstream_model="llama-3",
    timeout_s=0.2,
    headers={"authorization": "Bearer sk-upstream"},
)
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
ANSWER = {
    "id": "cmpl-1",
    "object": "chat.completion",
    "model": "llama-3",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"}}],
    "usage": USAGE,
}


def chunk(text: str) -> dict[str, Any]:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    return {"id": "c1", "object": "chat.completion.chunk", "model": "llama-3", "choices": [choice]}


USAGE_CHUNK = {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}


class Relay:
    """The endpoints (under the error layer) calling an upstream that answers `reply`."""

    def __init__(self, reply: Reply | Callable[[UpstreamRequest], Reply]) -> None:
        self.transport = MockTransport(reply if callable(reply) else lambda request: reply)
        self.scope: Scope = {}

    def __call__(
        self,
        body: dict[str, Any],
        target: Target = TARGET,
        ticket: Any = None,
        audit: Any = None,
        **where: Any,
    ) -> Sent:
        where.setdefault("model", CHAT_MODEL)
        self.scope = scope_at(body=body, ctx=caller(), target=target, **where)
        if ticket is not None:
            self.scope[TICKET] = ticket

        async def go() -> Sent:
            client = UpstreamClient(transport=self.transport)
            endpoints = OpenAIEndpoints(catalog=None, upstreams=client, audit=audit)  # type: ignore[arg-type]
            app = ErrorMiddleware(endpoints)
            try:
                return await drive(app, self.scope)
            finally:
                await client.close()

        return asyncio.run(go())

    @property
    def exchange(self) -> Any:
        return self.scope[EXCHANGE]


def error_of(sent: Sent) -> dict[str, Any]:
    error: dict[str, Any] = sent.json()["error"]
    return error


# Whole answers -------------------------------------------------------------------------------


def test_a_json_answer_comes_back_under_the_public_name() -> None:
    relay = Relay(json_reply(ANSWER))
    sent = relay(chat_body(tenant_id="ten_other", temperature=0.5))
    assert sent.status == 200 and sent.json()["model"] == "chat-small"
    assert sent.json()["choices"] == ANSWER["choices"]
    assert (relay.exchange.prompt_tokens, relay.exchange.completion_tokens) == (5, 2)
    (request,) = relay.transport.requests
    assert request.url == "http://upstream.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-upstream"
    assert request.read_timeout_s == 0.2
    forwarded = relay.transport.last_json
    assert forwarded["model"] == "llama-3" and forwarded["temperature"] == 0.5
    assert "tenant_id" not in forwarded and "stream_options" not in forwarded
    assert relay.transport.open == 0


def test_an_embeddings_answer_is_relayed() -> None:
    data = {"object": "list", "data": [{"index": 0, "embedding": [0.1, 0.2]}], "usage": USAGE}
    relay = Relay(json_reply(data))
    body = {"model": "embed-small", "input": "hi"}
    sent = relay(body, path="/v1/embeddings", model=EMBED_MODEL)
    assert sent.status == 200 and sent.json()["data"] == data["data"]
    assert sent.json()["model"] == "embed-small"
    assert relay.transport.requests[0].url == "http://upstream.test/v1/embeddings"


# Streams -------------------------------------------------------------------------------------


def test_a_stream_is_relayed_event_by_event_and_counted() -> None:
    relay = Relay(sse_reply([chunk("hel"), chunk("lo"), USAGE_CHUNK]))
    sent = relay(chat_body(stream=True))
    assert sent.status == 200 and sent.header(b"content-type") == b"text/event-stream"
    events = sent.events()
    assert [e["choices"][0]["delta"]["content"] for e in events[:-1]] == ["hel", "lo"]
    assert all(e["model"] == "chat-small" for e in events[:-1])
    assert events[-1] == "[DONE]" and sent.complete
    # The upstream is always asked for usage; the client gets it only if it asked.
    assert relay.transport.last_json["stream_options"] == {"include_usage": True}
    assert (relay.exchange.prompt_tokens, relay.exchange.completion_tokens) == (5, 2)
    assert relay.exchange.stream and relay.transport.open == 0


def test_a_client_that_asked_for_usage_gets_the_usage_event() -> None:
    relay = Relay(sse_reply([chunk("x"), USAGE_CHUNK]))
    sent = relay(chat_body(stream=True, stream_options={"include_usage": True}))
    assert sent.events()[-2]["usage"] == USAGE


def test_a_stream_past_its_reservation_is_cut_and_the_upstream_closed() -> None:
    meter = StreamMeter(SimpleNamespace(count=len), allowance=2)  # type: ignore[arg-type]
    ticket = SimpleNamespace(meter=lambda: meter)
    relay = Relay(sse_reply([chunk("a"), chunk("b"), chunk("c"), chunk("d")]))
    events = relay(chat_body(stream=True), ticket=ticket).events()
    assert [e["choices"][0].get("finish_reason") for e in events[:-1]] == [None, None, "length"]
    assert events[-1] == "[DONE]" and relay.transport.open == 0


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        pytest.param(sse_reply([chunk("a")], cut=True, done=False), "unreachable", id="dropped"),
        pytest.param(sse_reply([chunk("a")], done=False), "ended the stream early", id="no-done"),
        pytest.param(sse_reply([chunk("a"), b"{oops"]), "invalid stream", id="garbage-event"),
        pytest.param(sse_reply([chunk("a"), [1, 2]]), "invalid stream", id="not-an-object"),
        pytest.param(
            sse_reply([chunk("a"), {"error": {"message": "secret trace"}}]),
            "failed during the stream",
            id="error-event",
        ),
    ],
)
def test_a_stream_cut_off_midway_ends_with_an_error_event(reply: Reply, message: str) -> None:
    relay = Relay(reply)
    sent = relay(chat_body(stream=True))
    assert sent.status == 200 and sent.complete  # the client is never left hanging
    first, last = sent.events()[0], sent.events()[-1]
    assert first["choices"][0]["delta"]["content"] == "a"
    assert last["error"]["code"] == "upstream_error" and message in last["error"]["message"]
    assert b"secret trace" not in sent.body and relay.transport.open == 0


def test_a_stream_that_stalls_past_its_timeout_ends_with_a_timeout_event() -> None:
    reply = Reply(
        headers={"content-type": "text/event-stream"},
        chunks=(Chunk(b"data: " + b'{"choices":[]}' + b"\n\n"), Chunk(b"", delay_s=5.0)),
        sized=False,
    )
    sent = Relay(reply)(chat_body(stream=True))
    assert sent.events()[-1]["error"]["code"] == "upstream_timeout"


# Upstream errors -----------------------------------------------------------------------------

STATUSES = [
    pytest.param(400, 400, "invalid_request_error", id="400"),
    pytest.param(413, 400, "invalid_request_error", id="413"),
    pytest.param(422, 400, "invalid_request_error", id="422"),
    pytest.param(401, 502, "upstream_error", id="401"),
    pytest.param(404, 502, "upstream_error", id="404"),
    pytest.param(429, 429, "rate_limit_exceeded", id="429"),
    pytest.param(500, 502, "upstream_error", id="500"),
    pytest.param(503, 502, "upstream_error", id="503"),
    pytest.param(504, 504, "upstream_timeout", id="504"),
    pytest.param(302, 502, "upstream_error", id="redirect"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("upstream", "status", "kind"), STATUSES)
def test_upstream_statuses_map_to_the_gateways(
    upstream: int, status: int, kind: str, stream: bool
) -> None:
    error = {"error": {"message": "bad\x1b[31m\nfield 'temperature'\t" + "x" * 500}}
    sent = Relay(json_reply(error, upstream, retry_after="7", location="http://10.0.0.1/"))(
        chat_body(stream=stream)
    )
    assert sent.status == status and sent.header(b"content-type") == b"application/json"
    body = error_of(sent)
    assert kind in (body["code"], body["type"])
    if status == 400:  # the upstream's complaint, cut to one short printable line
        assert body["message"].startswith("bad [31m field 'temperature' xx")
        assert len(body["message"]) <= 200 and "\n" not in body["message"]
    else:
        assert "temperature" not in body["message"]
    if status == 429:
        assert sent.header(b"retry-after") == b"7"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(raw_reply(b"<html>oops</html>"), id="html"),
        pytest.param(json_reply({"answer": "no choices"}), id="no-choices"),
        pytest.param(json_reply([1, 2, 3]), id="a-list"),
        pytest.param(json_reply({"choices": [{"index": 0}] * 129}), id="too-many-choices"),
        pytest.param(json_reply({"choices": [{"index": 9999}]}), id="index-too-high"),
        pytest.param(json_reply({"choices": ["text"]}), id="choice-not-an-object"),
        pytest.param(raw_reply(b"", content_type="application/json"), id="empty"),
    ],
)
def test_a_garbage_answer_is_a_502(reply: Reply) -> None:
    sent = Relay(reply)(chat_body())
    assert sent.status == 502 and error_of(sent)["code"] == "upstream_error"


def test_an_unreachable_upstream_is_a_502() -> None:
    def refuse(request: UpstreamRequest) -> Reply:
        raise aiohttp.ClientConnectionError("connection refused at 10.1.2.3:8000")

    sent = Relay(refuse)(chat_body())
    assert sent.status == 502 and "unreachable" in error_of(sent)["message"]
    assert b"10.1.2.3" not in sent.body


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_an_upstream_slower_than_its_timeout_is_a_504(stream: bool) -> None:
    reply = json_reply(ANSWER)
    slow = Reply(status=200, headers=reply.headers, chunks=reply.chunks, delay_s=5.0)
    sent = Relay(slow)(chat_body(stream=stream))
    assert sent.status == 504 and error_of(sent)["code"] == "upstream_timeout"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("upstream", [400, 429, 500])
def test_a_tenants_own_upstream_fails_opaquely(upstream: int, stream: bool) -> None:
    opaque = Target(base_url="http://upstream.test/v1", upstream_model="m", opaque=True)
    sent = Relay(json_reply({"error": {"message": "port 22 open"}}, upstream))(
        chat_body(stream=stream), target=opaque
    )
    assert sent.status == 502 and error_of(sent)["message"] == OPAQUE_FAILURE


def test_the_egress_policy_holds_with_the_transport_in_place() -> None:
    metadata = Target(base_url="http://169.254.169.254/v1", upstream_model="m")
    relay = Relay(json_reply(ANSWER))
    sent = relay(chat_body(), target=metadata)
    assert sent.status == 502 and "egress policy" in error_of(sent)["message"]
    assert relay.transport.requests == []  # refused before anything was sent


def test_mutual_tls_is_required_with_the_transport_in_place() -> None:
    pinned = Target(base_url="https://upstream.test/v1", upstream_model="m", peer_id="spiffe://x/y")
    relay = Relay(json_reply(ANSWER))
    sent = relay(chat_body(), target=pinned)  # the client has no identity to present
    assert sent.status == 503 and relay.transport.requests == []


# The audit entry before forwarding ------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_nothing_goes_upstream_before_an_entry_saying_so_is_durable(stream: bool) -> None:
    relay = Relay(json_reply(ANSWER))
    sent = relay(chat_body(stream=stream), audit=SlowSink(fails=True))
    assert sent.status == 503 and error_of(sent)["code"] == "audit_unavailable"
    assert relay.transport.requests == []  # the upstream never saw the call
    written = SlowSink()
    written.durable_up_to = 10**6  # every entry durable at once
    relay = Relay(json_reply(ANSWER) if not stream else sse_reply([chunk("hi"), USAGE_CHUNK]))
    assert relay(chat_body(stream=stream), audit=written).status == 200
    (event,) = written.events
    assert event.outcome == "started" and len(relay.transport.requests) == 1
