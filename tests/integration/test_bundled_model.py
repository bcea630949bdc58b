"""`make run`'s chat model: the bundled SmolLM2-135M-Instruct answers through the gateway.

`bulkhead init` (with its default `BULKHEAD_DEMO_CHAT_MODEL`) registers
`smollm2-135m` and grants it to the demo tenant; a real gateway starts its
worker (sandboxed, on the CPU here), and the official `openai` SDK calls it.
The model loads once for the module (tens of seconds on two busy cores); the
gateway answers other calls meanwhile, and calls to the loading model get 503.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.gateway import GatewayThread

MODEL = "smollm2-135m"
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


def worker(gw: GatewayThread) -> dict[str, object]:
    return next(w for w in gw.app.workers.status() if w["model"] == MODEL)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    env = {"BULKHEAD_DEMO_CHAT_MODEL": MODEL}
    data = tmp_path_factory.mktemp("bundled") / "data"
    gw = GatewayThread(data, None, workers=True, env=env).start()
    try:
        loading_seen = False
        deadline = time.monotonic() + 240
        while not worker(gw)["ready"]:
            assert time.monotonic() < deadline, gw.app.workers.status()
            # While the model loads, the gateway still answers at once: 503 for it.
            body = {"model": MODEL, "messages": QUESTION, "max_tokens": 1}
            started = time.monotonic()
            answer = gw.call("POST", "/v1/chat/completions", gw.demo_key, body)
            if answer.status == 503:
                loading_seen = True
                assert time.monotonic() - started < 5
            time.sleep(0.5)
        assert loading_seen, "the model was ready before the first call"
        yield gw
    finally:
        gw.stop()


def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.demo_key, max_retries=0, timeout=120)


def test_the_demo_tenant_gets_the_bundled_model(served: GatewayThread) -> None:
    assert {m.id for m in client(served).models.list()} == {MODEL, "minilm-embed"}
    status = worker(served)
    assert status["kind"] == MODEL and status["ready"] and status["restarts"] == 0
    # Held to the same sandbox as every other worker on this host (its tier's limits).
    embed = next(w for w in served.app.workers.status() if w["model"] == "minilm-embed")
    assert status["sandbox"] == embed["sandbox"], (status, embed)


def test_it_answers_sensibly(served: GatewayThread) -> None:
    reply = client(served).chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=24, temperature=0
    )
    text = reply.choices[0].message.content or ""
    assert "Paris" in text, text
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 10  # the template's system prompt and markers
    assert 1 <= reply.usage.completion_tokens < 24


def test_it_streams_token_by_token(served: GatewayThread) -> None:
    chunks = list(
        client(served).chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [c.choices[0].delta.content for c in chunks if c.choices]
    pieces = [p for p in deltas if p]
    assert len(pieces) >= 4, pieces
    assert "Paris" in "".join(pieces)
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens >= len(pieces)


def test_max_tokens_is_honoured(served: GatewayThread) -> None:
    reply = client(served).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_tokens=5,
        temperature=0,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5


def test_a_stop_sequence_stops(served: GatewayThread) -> None:
    count = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    kwargs = {"model": MODEL, "messages": count, "max_tokens": 64, "temperature": 0}
    full = client(served).chat.completions.create(**kwargs)  # type: ignore[call-overload]
    text = full.choices[0].message.content or ""
    assert "7" in text, text
    stopped = client(served).chat.completions.create(**kwargs, stop=["7"])  # type: ignore[call-overload]
    cut = stopped.choices[0].message.content or ""
    assert stopped.choices[0].finish_reason == "stop"
    assert "7" not in cut and text.startswith(cut) and len(cut) < len(text), (cut, text)


def test_sampling_takes_temperature_top_p_and_seed(served: GatewayThread) -> None:
    kwargs = {"model": MODEL, "messages": QUESTION, "max_tokens": 12}
    first, second = (
        client(served).chat.completions.create(  # type: ignore[call-overload]
            **kwargs, temperature=0.8, top_p=0.9, seed=7
        )
        for _ in range(2)
    )
    assert first.choices[0].message.content == second.choices[0].message.content
    bad = served.call("POST", "/v1/chat/completions", served.demo_key, {**kwargs, "top_p": 1.5})
    assert bad.status == 400
