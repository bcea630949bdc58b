"""`upstream_payload`: what the gateway forwards is the client's body, minus reserved fields."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkhead.gateway import validate
from bulkhead.gateway.admit import TICKET
from bulkhead.gateway.openai_api import (
    OpenAIEndpoints,
    record_usage,
    relay_event,
    upstream_payload,
)
from bulkhead.limits import StreamMeter
from bulkhead.runtime import Target
from bulkhead.runtime.upstream import Batch
from bulkhead.web.scope import EXCHANGE, Exchange, Message, Scope
from tests.unit.gateway.test_guard_out import SpyOffload

TARGET = Target(base_url="http://upstream.internal/v1", upstream_model="llama-3-8b-instruct")
MESSAGES = [{"role": "user", "content": "hi"}]


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "public-name", "messages": MESSAGES, **extra}


@pytest.mark.parametrize("field", ["tenant_id", "cache_salt", *validate.RESERVED])
@pytest.mark.parametrize("stream", [False, True])
def test_reserved_fields_are_stripped(field: str, stream: bool) -> None:
    payload = upstream_payload(body(**{field: "ten_someone_else"}), TARGET, stream)
    assert field not in payload


def test_model_is_the_upstream_name() -> None:
    assert upstream_payload(body(), TARGET, False)["model"] == "llama-3-8b-instruct"


def test_other_fields_pass_through_unchanged() -> None:
    extra = {
        "temperature": 0.3,
        "user": "u-42",
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "metadata": {"tenant_id": "nested values are the client's own"},
        "top_k": 7,
        "stream_options": {"include_usage": False},
    }
    payload = upstream_payload(body(**extra), TARGET, False)
    assert payload == {"model": "llama-3-8b-instruct", "messages": MESSAGES, **extra}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(None, {"include_usage": True}, id="absent"),
        pytest.param({}, {"include_usage": True}, id="empty"),
        pytest.param({"include_usage": False}, {"include_usage": True}, id="client-said-no"),
        pytest.param(
            {"include_usage": False, "continuous_usage_stats": True},
            {"include_usage": True, "continuous_usage_stats": True},
            id="other-options-kept",
        ),
    ],
)
def test_streams_always_ask_for_usage(
    options: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    client = body(stream=True) if options is None else body(stream=True, stream_options=options)
    assert upstream_payload(client, TARGET, True)["stream_options"] == expected


def test_non_streams_get_no_stream_options() -> None:
    assert "stream_options" not in upstream_payload(body(), TARGET, False)


def test_client_body_is_not_modified() -> None:
    # The stream relay reads the client's own include_usage after building the payload.
    client = body(stream=True, stream_options={"include_usage": False}, tenant_id="ten_x")
    before = copy.deepcopy(client)
    upstream_payload(client, TARGET, True)
    assert client == before


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
field_names = st.sampled_from([*validate.RESERVED, "model", "n", "seed"]) | st.text(max_size=8)


@given(client=st.dictionaries(field_names, json_values, max_size=8))
def test_payload_is_the_body_minus_reserved_plus_model(client: dict[str, Any]) -> None:
    payload = upstream_payload(client, TARGET, False)
    kept = {k: v for k, v in client.items() if k not in validate.RESERVED and k != "model"}
    assert payload == {**kept, "model": TARGET.upstream_model}


# A large batch of stream events is metered on a worker thread -------------------------------


class ThreadNotingCounter:
    """Four bytes a token, noting the length of each text and the thread it was counted on."""

    def __init__(self) -> None:
        self.counted: list[tuple[int, int]] = []

    def count(self, text: str) -> int:
        self.counted.append((len(text), threading.get_ident()))
        return len(text) // 4


class Streaming:
    """An upstream client whose streams are the given batches."""

    def __init__(self, *batches: list[dict[str, Any]]) -> None:
        self.batches = batches

    async def stream(self, target: Target, path: str, payload: Any) -> AsyncIterator[Batch]:
        for events in self.batches:
            batch = Batch(events)
            batch.size = len(orjson.dumps(events))
            yield batch


def delta(text: str) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}}],
    }


def test_only_a_large_batch_of_stream_events_leaves_the_event_loop() -> None:
    counter = ThreadNotingCounter()
    meter = StreamMeter(counter, allowance=10_000)  # counted once past 20,016 bytes
    offload = SpyOffload()
    upstream = Streaming([delta("hi ")], [delta("y" * 30_000)], [delta("end")])
    endpoints = OpenAIEndpoints(catalog=None, upstreams=upstream, offload=offload)  # type: ignore[arg-type]
    ex = Exchange(request_id="r", started=0.0, client=None)
    scope: Scope = {"type": "http", "path": "/v1/chat/completions", EXCHANGE: ex}
    scope[TICKET] = SimpleNamespace(meter=lambda: meter)
    sent: list[bytes] = []

    async def send(message: Message) -> None:
        sent.append(message.get("body", b""))

    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    asyncio.run(endpoints.relay_stream(scope, send, TARGET, "/chat/completions", payload, False))
    assert b"".join(sent).count(b"data: ") == 4  # the three events and [DONE]
    assert b"length" not in b"".join(sent)
    assert len(offload.sizes) == 1 and offload.sizes[0] > offload.inline_bytes
    large = [thread for size, thread in counter.counted if size > offload.inline_bytes]
    assert large and threading.get_ident() not in large


def test_the_prompt_tokens_the_gateway_added_are_neither_charged_nor_shown() -> None:
    """A canary's tokens (`Exchange.hide_prompt`) come off the usage: recorded and relayed."""
    ex = Exchange(request_id="r", started=0.0, client=None)
    ex.hide_prompt(70)
    usage = {"prompt_tokens": 73, "completion_tokens": 2, "total_tokens": 75}
    record_usage(ex, usage)
    assert usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert (ex.prompt_tokens, ex.completion_tokens) == (3, 2)
    event = {"choices": [], "usage": {"prompt_tokens": 73, "completion_tokens": 9}}
    sent = orjson.loads(relay_event(ex, event, "m", True).removeprefix(b"data: "))
    assert sent["usage"] == {"prompt_tokens": 3, "completion_tokens": 9}
    assert ex.prompt_tokens == 3
    # Never below zero, whatever an upstream reports.
    record_usage(ex, {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5})
    assert ex.prompt_tokens == 0


def test_with_the_callers_own_count_the_upstreams_is_shared_in_proportion() -> None:
    """The upstream's tokenizer is not the gateway's: the caller pays its share, not a
    difference of two tokenizers' counts (which could reach zero)."""
    ex = Exchange(request_id="r", started=0.0, client=None)
    ex.hide_prompt(90, own=10)  # the gateway counted the canary 90, the caller's prompt 10
    usage = {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41}
    record_usage(ex, usage)
    assert usage == {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
    assert ex.prompt_tokens == 4 and ex.caller_prompt(0) == 0
