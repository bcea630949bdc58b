"""The output guard's `Encoder` gives exactly the bytes the guard makes of the relay's bytes.

The relay holds answers and stream events parsed; under an output guard it asks the
request's `Encoder` for their bytes instead of serialising them for the guard to parse
again.  For random answers and random streams (several choices, tool calls, refusals,
logprobs, usage chunks, escapes, PII and links; any grouping into batches), what the
encoder makes must be what `guarded_send` makes of the plainly serialised bytes, a
refusal included; and only the encoder's own bytes pass `guarded_send` unfiltered.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.errors import ContentBlocked
from bulkhead.gateway.endpoints import match
from bulkhead.gateway.guard_out import (
    ENCODER,
    Encoder,
    GuardOutMiddleware,
    StreamGuard,
    encode_event,
)
from bulkhead.gateway.guards import GuardedCall
from bulkhead.gateway.offload import Offload
from bulkhead.web.scope import ENDPOINT, GUARDED
from tests.unit.gateway.test_guard_out import guarded
from tests.unit.gateway.test_guard_out_fast import _TEXT, CARD, EMAIL, choice

CONFIGS: list[dict[str, Any]] = [
    {"pii": "redact"},
    {"pii": "mask", "secrets": "redact"},
    {"pii": "block"},
]


def _outcome(work: Any) -> bytes:
    try:
        out: bytes = work()
    except ContentBlocked as exc:  # a refusal must be the same refusal
        return repr((exc.code, exc.reasons)).encode()
    return out


@st.composite
def batches(draw: st.DrawFn, chat: bool) -> list[list[dict[str, Any]]]:
    kind = "chat.completion.chunk" if chat else "text_completion"
    events: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 12))):
        event: dict[str, Any] = {"id": "c1", "object": kind, "created": 0, "model": "pub"}
        if not draw(st.integers(0, 7)):
            event |= {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
        else:
            n = 1 if draw(st.integers(0, 3)) else draw(st.integers(2, 3))
            event["choices"] = [draw(choice(chat)) for _ in range(n)]
        events.append(event)
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=4)))
    edges = [0, *cuts, len(events)]
    return [events[a:b] for a, b in itertools.pairwise(edges) if a < b]


def _events_of(encoder: Encoder, group: list[dict[str, Any]], size: int) -> bytes:
    """`Encoder.events` as the relay awaits it (on a worker thread when `size` is large)."""

    async def run() -> bytes:
        return await encoder.events("tenant:t1", group, size)

    return asyncio.run(run())


def _streamed(
    call: GuardedCall,
    groups: list[list[dict[str, Any]]],
    chat: bool,
    fast: bool,
    sizes: list[int] | None = None,
) -> bytes:
    stream = StreamGuard(call, chat=chat)
    encoder = Encoder(call, Offload())
    encoder.stream = stream
    out = []
    for n, group in enumerate(copy.deepcopy(groups)):
        if fast:  # as `guarded_send` takes it: what the encoder did not make, it filters
            size = sum(map(len, map(encode_event, group))) if sizes is None else sizes[n]
            body = _events_of(encoder, group, size)
            out.append(body if encoder.take(body) else stream.events(body, final=False))
        else:
            out.append(stream.events(b"".join(map(encode_event, group)), final=False))
    out.append(stream.events(b"data: [DONE]\n\n", final=True))
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.sampled_from(CONFIGS), st.data())
def test_a_stream_encoded_from_its_events_is_the_stream_filtered_from_its_bytes(
    chat: bool, config: dict[str, Any], data: st.DataObject
) -> None:
    groups = data.draw(batches(chat))
    # A batch's size decides where it is filtered: here, or (over the inline bound) on a
    # worker thread, from the parsed events either way.
    sizes = data.draw(st.lists(st.sampled_from([200, 10**6]), min_size=len(groups)))
    fast = _outcome(lambda: _streamed(guarded(**config), groups, chat, True, sizes))
    slow = _outcome(lambda: _streamed(guarded(**config), groups, chat, fast=False))
    assert fast == slow


@st.composite
def answers(draw: st.DrawFn, chat: bool) -> dict[str, Any]:
    choices = []
    for index in range(draw(st.integers(0, 3))):
        found: dict[str, Any] = {"index": index, "finish_reason": "stop"}
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": draw(_TEXT)}
            if not draw(st.integers(0, 3)):
                function = {"name": draw(_TEXT), "arguments": draw(_TEXT)}
                message["tool_calls"] = [{"id": "t", "type": "function", "function": function}]
            found["message"] = message
        else:
            found["text"] = draw(_TEXT)
        if not draw(st.integers(0, 4)):
            token = draw(_TEXT)
            entry = {"token": token, "logprob": -0.1, "top_logprobs": []}
            found["logprobs"] = {"content": [entry]} if chat else {"tokens": [token]}
        choices.append(found)
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    return {"id": "a", "object": "chat.completion", "model": "pub", "choices": choices} | {
        "usage": usage
    }


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.sampled_from(CONFIGS), st.data())
def test_a_whole_answer_encoded_from_its_object_is_the_answer_filtered_from_its_bytes(
    chat: bool, config: dict[str, Any], data: st.DataObject
) -> None:
    answer = data.draw(answers(chat))
    raw = orjson.dumps(answer)
    fast = _outcome(lambda: Encoder(guarded(**config), Offload()).whole(copy.deepcopy(answer)))
    slow = _outcome(lambda: GuardOutMiddleware._whole(200, raw, guarded(**config)))
    assert fast == slow


# Through the layer: the relay's way (the encoder) and the plain way send the same. -----------

CHAT = "/v1/chat/completions"
TEXT = f"mail {EMAIL} or pay with {CARD} at [x](https://evil.example/a)"


def _scope(call: GuardedCall) -> dict[str, Any]:
    endpoint = match("POST", CHAT)
    return {"type": "http", "method": "POST", "path": CHAT, GUARDED: call, ENDPOINT: endpoint}


async def _through(inner: Any, call: GuardedCall) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    await GuardOutMiddleware(inner, offload=Offload())(_scope(call), receive, send)
    return sent


def _answer() -> dict[str, Any]:
    message = {"role": "assistant", "content": TEXT}
    choices = [{"index": 0, "message": message, "finish_reason": "stop"}]
    return {"id": "a", "object": "chat.completion", "model": "pub", "choices": choices}


def _events() -> list[dict[str, Any]]:
    words = TEXT.split(" ")
    return [
        {"id": "c", "object": "chat.completion.chunk", "model": "pub",
         "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]}
        for w in words
    ]  # fmt: skip


def _start(headers: list[tuple[bytes, bytes]], length: int | None = None) -> dict[str, Any]:
    if length is not None:
        headers = [*headers, (b"content-length", str(length).encode())]
    return {"type": "http.response.start", "status": 200, "headers": headers}


def _body(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": more}


def _app(way: str, stream: bool) -> Any:
    json_headers = [(b"content-type", b"application/json")]
    sse_headers = [(b"content-type", b"text/event-stream")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        encoder: Encoder | None = scope.get(ENCODER) if way == "encoder" else None
        if not stream:
            data = _answer()
            body = orjson.dumps(data) if encoder is None else encoder.whole(data)
            if way == "forged":  # made by the encoder, then swapped: filtered all the same
                assert scope[ENCODER].whole(_answer())
            await send(_start(json_headers, len(body)))
            await send(_body(body, False))
            return
        await send(_start(sse_headers))
        for event in _events():
            body = (
                encode_event(event) if encoder is None else await encoder.events("t", [event], 200)
            )
            await send(_body(body, True))
        await send(_body(b"data: [DONE]\n\n", False))

    return app


@pytest.mark.parametrize("stream", [False, True])
def test_through_the_layer_the_encoder_sends_what_the_plain_bytes_become(stream: bool) -> None:
    outs = {}
    # "forged": the encoder made an answer, another was sent (filtered all the same).
    for way in ("encoder", "plain", "forged") if not stream else ("encoder", "plain"):
        sent = asyncio.run(_through(_app(way, stream), guarded(pii="redact")))
        outs[way] = (sent[0]["headers"], b"".join(m.get("body", b"") for m in sent[1:]))
    assert outs["encoder"] == outs["plain"] == outs.get("forged", outs["plain"])
    body = outs["encoder"][1]
    assert EMAIL.encode() not in body and CARD.encode() not in body
    assert b"[REDACTED:" in body


def test_only_the_bytes_the_encoder_made_last_pass_and_only_once() -> None:
    encoder = Encoder(guarded(pii="redact"), Offload())
    encoder.stream = StreamGuard(encoder.call, chat=True)
    made = _events_of(encoder, _events()[:2], 200)
    assert made and not encoder.take(bytes(bytearray(made)))  # equal is not enough
    assert encoder.take(made) and not encoder.take(made)
    assert not encoder.take(b"") and not encoder.take(None)
    # Nothing to send (a usage chunk the client did not ask for) marks nothing.
    assert _events_of(encoder, [], 0) == b"" and not encoder.take(b"")
    # Too large to scan on the event loop: filtered on a worker thread as here, and marked.
    here = Encoder(encoder.call, Offload())
    here.stream = StreamGuard(here.call, chat=True)
    _events_of(here, _events()[:2], 200)  # the same history as `encoder`'s
    big = _events_of(encoder, _events()[2:], 10**6)
    assert big == _events_of(here, _events()[2:], 200) and encoder.take(big)
    # No stream yet: serialised only, never marked.
    early = Encoder(encoder.call, Offload())
    plain = _events_of(early, _events()[:1], 200)
    assert plain == encode_event(_events()[0]) and not early.take(plain)
    assert not Encoder(encoder.call, Offload()).take(Encoder(encoder.call, Offload()).made)
