"""What relaying an answer costs the event loop: small answers (the common path) and large ones.

    .venv/bin/python bench/answer_bench.py [--requests 20000]

Runs the call (`OpenAIEndpoints` over a real `UpstreamClient` whose HTTP
exchange is replaced by bytes in memory) under the output guard
(`GuardOutMiddleware`, the tenant's `pii: redact`), as the gateway's chain
does, and prints the CPU per request of a small chat answer (about 400
bytes), of a 20-event stream, and, for a large answer, the longest time the
event loop went without a turn (sampled every millisecond by a task on the
same loop).  No network, no database: the figures are the layers' own.  The
collector is set up as the gateway sets it at start-up (`Application.startup`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import AsyncIterator

import orjson

from bulkhead.app import GC_THRESHOLDS
from bulkhead.domain import (
    Deployment,
    DeploymentKind,
    Endpoint,
    Model,
    Principal,
    PrincipalKind,
    ResolvedModel,
    Role,
    Tenant,
    TenantConfig,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.gateway.endpoints import match
from bulkhead.gateway.guard_out import GuardOutMiddleware
from bulkhead.gateway.guards import GuardedCall
from bulkhead.gateway.openai_api import OpenAIEndpoints
from bulkhead.guard import Canary, Guard, GuardConfig, PseudonymVault
from bulkhead.runtime import Target, UpstreamClient
from bulkhead.web.scope import (
    CONTEXT,
    ENDPOINT,
    EXCHANGE,
    GUARDED,
    JSON,
    MODEL,
    TARGET,
    Exchange,
    Message,
    Scope,
)

SMALL = "Sure. The invoice was sent on 12 March; the refund follows within five working days."
PII = "call +1 415 555 0100 or mail user@example.com, card 4111 1111 1111 1111. "
RESOLVED = ResolvedModel(
    Model("mdl_1", "m", None, frozenset({Endpoint.CHAT})),
    Deployment("dep_1", "mdl_1", DeploymentKind.UPSTREAM, "http://upstream", "fake"),
)


class _Content:
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def iter_any(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            await asyncio.sleep(0)  # as from a socket: the loop gets a turn between pieces
            yield piece


class _Response:
    """What `UpstreamClient` reads of an aiohttp response."""

    def __init__(self, body: bytes, pieces: list[bytes] | None = None) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.body = body
        self.content_length = None if pieces is not None else len(body)
        self.content = _Content(pieces if pieces is not None else [body])

    async def read(self) -> bytes:
        return self.body

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def answer(text: str) -> bytes:
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    usage = {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}
    answer = {"id": "c", "object": "chat.completion", "choices": [choice], "usage": usage}
    return orjson.dumps(answer)


def sse(text: str) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    event = {"id": "c", "object": "chat.completion.chunk", "choices": [choice]}
    return b"data: " + orjson.dumps(event) + b"\n\n"


def stream(events: list[bytes]) -> list[bytes]:
    return [*events, b"data: [DONE]\n\n"]


def client(response: _Response) -> UpstreamClient:
    upstreams = UpstreamClient()
    upstreams._request = lambda *a, **k: response  # type: ignore[method-assign]
    return upstreams


def app(upstreams: UpstreamClient) -> GuardOutMiddleware:
    return GuardOutMiddleware(OpenAIEndpoints(catalog=None, upstreams=upstreams))  # type: ignore[arg-type]


def scope_for(max_tokens: int, streamed: bool) -> Scope:
    tenant = Tenant("t-1", "acme", Tier.SHARED, TenantStatus.ACTIVE, config=TenantConfig())
    p = Principal("p-1", tenant.id, "svc", PrincipalKind.SERVICE, frozenset({Role.END_USER}))
    ctx = TenantContext(tenant=tenant, principal=p, role=Role.END_USER, credential_id="k-1")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body |= {"max_tokens": max_tokens, "stream": streamed}
    guard = Guard(GuardConfig.from_dict({"pii": "redact"}))
    scope: Scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}
    scope |= {CONTEXT: ctx, JSON: body, MODEL: RESOLVED, TARGET: Target("http://u/v1", "fake")}
    scope[GUARDED] = GuardedCall(guard, PseudonymVault(), Canary.generate())
    scope[ENDPOINT] = match("POST", scope["path"])  # as the endpoint layer leaves it
    scope[EXCHANGE] = Exchange(request_id="r", started=time.perf_counter(), client=None)
    return scope


async def _nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def one(layer: GuardOutMiddleware, scope: Scope) -> int:
    sent = 0

    async def send(message: Message) -> None:
        nonlocal sent
        sent += len(message.get("body", b""))

    await layer(dict(scope), _nothing, send)
    return sent


async def per_request(layer: GuardOutMiddleware, scope: Scope, n: int) -> float:
    for _ in range(200):
        await one(layer, scope)
    started = time.process_time()
    for _ in range(n):
        await one(layer, scope)
    return (time.process_time() - started) / n * 1e6


async def longest_stall(layer: GuardOutMiddleware, scope: Scope) -> tuple[float, float]:
    """(the longest gap between the sampler's turns, the call's wall time), in ms."""
    done = asyncio.Event()
    worst = 0.0

    async def sampler() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    task = asyncio.create_task(sampler())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    try:
        await one(layer, scope)
    except Exception as exc:  # a refusal is a result too
        print(f"    (refused: {type(exc).__name__}: {exc})")
    took = time.perf_counter() - started
    done.set()
    await task
    return worst * 1000, took * 1000


async def main(requests: int) -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)  # as the gateway runs
    small = app(client(_Response(answer(SMALL))))
    cost = await per_request(small, scope_for(64, False), requests)
    print(f"small answer, guard on: {cost:.1f} us CPU a request")
    events = app(client(_Response(b"", stream([sse("word ")] * 20))))
    cost = await per_request(events, scope_for(64, True), requests // 10)
    print(f"20-event stream: {cost:.1f} us CPU a stream")
    big = answer(PII * 30_000)
    for max_tokens in (2, 1_000_000):
        stall, took = await longest_stall(app(client(_Response(big))), scope_for(max_tokens, False))
        print(f"{len(big) / 1e6:.1f} MB answer, max_tokens {max_tokens}: ", end="")
        print(f"the loop waited {stall:.1f} ms at most; the call took {took:.0f} ms")
    for repeat, count in ((200, 150), (3000, 8)):
        pieces = stream([sse(PII * repeat)] * count)
        layer = app(client(_Response(b"", pieces)))
        stall, took = await longest_stall(layer, scope_for(1_000_000, True))
        size = sum(map(len, pieces))
        print(f"{size / 1e6:.1f} MB stream in {size // count // 1000} KB events: ", end="")
        print(f"the loop waited {stall:.1f} ms at most; the call took {took:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().requests))
