"""A stream's batches filtered on a worker thread come out as filtered on the event loop.

`Encoder.events` filters a batch over the inline bound on a worker thread (review 11 of
wp-hot3).  Through the relay (`OpenAIEndpoints.relay_stream`) and the output guard layer,
random streams (several choices interleaved, tool calls, logprobs, refusals, usage chunks,
PII, links, the canary) whose batches are sized on both sides of the bound must send the
same bytes, or the same refusal, as the same stream with every batch filtered inline.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.errors import ContentBlocked
from bulkhead.gateway.endpoints import match
from bulkhead.gateway.guard_out import GuardOutMiddleware
from bulkhead.gateway.offload import Offload
from bulkhead.gateway.openai_api import OpenAIEndpoints
from bulkhead.runtime import Target
from bulkhead.runtime.upstream import Batch
from bulkhead.web.scope import CONTEXT, ENDPOINT, EXCHANGE, GUARDED, Exchange, Message
from tests.unit.gateway.test_guard import caller
from tests.unit.gateway.test_guard_out import guarded
from tests.unit.gateway.test_guard_out_fast import choice

TARGET = Target(base_url="http://upstream.internal/v1", upstream_model="m")
CONFIGS: list[dict[str, Any]] = [
    {"pii": "redact", "canary": True},
    {"pii": "mask", "secrets": "redact", "strip_links": True},
    {"pii": "block"},
]
# Under the scan bound (2 KiB: filtered here), over it (a worker), and over the relay's own
# bound (the relay serialises the batch; the layer filters its bytes on a worker).
SIZES = [100, 1500, 2100, 5000, 15000, 10**6]


class Upstream:
    def __init__(self, batches: list[tuple[list[dict[str, Any]], int]]) -> None:
        self.batches = batches

    async def stream(self, target: Target, path: str, payload: Any) -> AsyncIterator[Batch]:
        for events, size in self.batches:
            batch = Batch(copy.deepcopy(events))
            batch.size = size
            yield batch


def _sent(
    batches: list[tuple[list[dict[str, Any]], int]], config: dict[str, Any], chat: bool
) -> Any:
    path = "/v1/chat/completions" if chat else "/v1/completions"
    offload = Offload()
    endpoints = OpenAIEndpoints(catalog=None, upstreams=Upstream(batches), offload=offload)  # type: ignore[arg-type]
    sent: list[Message] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        payload = {"model": "m", "stream": True}
        await endpoints.relay_stream(scope, send, TARGET, path[3:], payload, True)

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    ex = Exchange(request_id="r", started=0.0, client=None)
    scope = {"type": "http", "method": "POST", "path": path, GUARDED: guarded(**config)}
    scope |= {ENDPOINT: match("POST", path), EXCHANGE: ex, CONTEXT: caller()}
    try:
        asyncio.run(GuardOutMiddleware(inner, offload=offload)(scope, receive, send))
    except ContentBlocked as exc:
        sent.append({"type": "refused", "body": repr(exc.reasons).encode()})
    return b"".join(m.get("body", b"") for m in sent)


@st.composite
def batches(draw: st.DrawFn, chat: bool) -> list[tuple[list[dict[str, Any]], int]]:
    kind = "chat.completion.chunk" if chat else "text_completion"
    out = []
    for _ in range(draw(st.integers(1, 6))):
        events = []
        for _ in range(draw(st.integers(1, 4))):
            event: dict[str, Any] = {"id": "c1", "object": kind, "created": 0, "model": "m"}
            if not draw(st.integers(0, 7)):
                event |= {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
            else:
                n = 1 if draw(st.integers(0, 2)) else draw(st.integers(2, 3))
                event["choices"] = [draw(choice(chat)) for _ in range(n)]
            events.append(event)
        out.append((events, draw(st.sampled_from(SIZES))))
    return out


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.sampled_from(CONFIGS), st.data())
def test_batches_over_the_inline_bound_send_what_batches_under_it_send(
    chat: bool, config: dict[str, Any], data: st.DataObject
) -> None:
    sized = data.draw(batches(chat))
    inline = [(events, 100) for events, _ in sized]
    assert _sent(sized, config, chat) == _sent(inline, config, chat)
