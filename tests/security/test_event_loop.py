"""No end-user request stalls the event loop for every tenant (issue 12 item 6).

A real gateway takes hostile requests of every kind in `tests/support/hostile.py`
at once (multipart floods, huge prompts for the token counter and the guard,
huge refused bodies, deeply nested JSON, many small messages, a tenant admin's
Cedar policies, anonymous sign-ins, a tenant's server answering hugely, ...)
while `/healthz` is sampled; its p99 must stay within 50 ms, and no hostile
request may get a 5xx.  Below it, each layer's part without a network: what
runs inline and what on a worker thread, what is refused before any costly
work, and a tenant's own upstream.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

import bulkhead
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
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.errors import PayloadTooLarge, RateLimited, UpstreamError
from bulkhead.gateway.admit import AdmissionMiddleware
from bulkhead.gateway.endpoints import match
from bulkhead.gateway.guard import GuardInMiddleware
from bulkhead.gateway.guards import GuardBook
from bulkhead.gateway.offload import Offload
from bulkhead.guard import Guard, GuardConfig, RequestVerdict
from bulkhead.limits import ByteCounter, InMemoryLimiter, LimitAdmission
from bulkhead.runtime import upstream
from bulkhead.switching import SWITCH
from bulkhead.web.scope import (
    BODY,
    CONTEXT,
    ENDPOINT,
    EXCHANGE,
    JSON,
    MODEL,
    Exchange,
    Receive,
    Scope,
    Send,
)
from tests.support.gateway import GatewayThread
from tests.support.hostile import (
    JUNK_JWT,
    JUNK_SESSION,
    KINDS,
    LoopReport,
    Target,
    hold_healthz,
    send,
    upstream_process,
)

P99_MS = 50.0
# The machine is shared: a run that misses the bound is repeated after a pause (up to this
# many runs in all), and every run's figures are reported.  A real stall misses it every
# time, by seconds (before issue 12: p50 60 s, p99 63 s).  Runs used to miss it by tens of
# milliseconds (p99 40 to 220 ms: one orjson call per large body, 26 ms of Cedar parsing,
# 18 ms of output filtering allowed on the loop, and refused bodies left to collector pauses
# of 50 to 170 ms); with those gone, p99 was 27 to 46 ms in the first run of each of four
# here, so a second run is rare.
ATTEMPTS = 8


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with upstream_process() as upstream:
        gw = GatewayThread(tmp_path_factory.mktemp("loop") / "data", None).start()
        try:
            yield provision(gw, upstream)
        finally:
            gw.stop()


def provision(gw: GatewayThread, upstream: str) -> Target:
    """Tenant `loop` without rate limits (so its calls reach the guard) and `loop-limited`
    with its tier's defaults (so a huge prompt is refused), sharing one model; tenant
    `loop-pii` (`pii: redact`, no rate limits) with a model whose server answers 480 KB of
    personal data, whatever it is asked."""
    from bulkhead.store import repo

    gw.tenant("loop")
    gw.tenant("loop-limited")
    gw.tenant("loop-pii")
    gw.model("loop-m", upstream, grant=("loop", "loop-limited"), upstream_model="fake",
             endpoints=["chat", "completions", "embeddings"])  # fmt: skip
    gw.model("loop-huge", upstream, tenant="loop-pii", upstream_model="huge-480000")
    pii_admin = gw.key("loop-pii", role="tenant_admin")
    assert gw.call("PATCH", "/tenant/v1/guard", pii_admin, {"pii": "redact"}).status == 200
    unlimited = {"requests_per_minute": None, "tokens_per_minute": None, "concurrency": None}
    with gw.app.db.platform_transaction() as session:
        repo.set_tenant_limits(session, "loop", unlimited)
        # Its server reports 120,000 tokens an answer: a minute's worth of the tier's.
        repo.set_tenant_limits(session, "loop-pii", unlimited)
    gw.app.catalog.reload()
    keys = {
        "user": gw.key("loop"),
        "limited": gw.key("loop-limited"),
        "tenant_admin": gw.key("loop", role="tenant_admin"),
        "tenant_auditor": gw.key("loop", role="tenant_auditor"),
        "junk_session": JUNK_SESSION,
        "junk_jwt": JUNK_JWT,
        "pii_user": gw.key("loop-pii"),
    }
    extra = {"huge_model": "loop-huge"}
    return Target(url=gw.url, keys=keys, model="loop-m", tenant="loop", extra=extra)


@pytest.mark.serial
def test_healthz_holds_while_every_hostile_kind_runs(target: Target) -> None:
    reports: list[LoopReport] = []
    for _ in range(ATTEMPTS):
        if reports:
            time.sleep(5)  # let whatever else runs on this machine settle
        report = hold_healthz(target, list(KINDS), seconds=6.0)
        print(report)
        reports.append(report)
        assert not report.server_errors(), report
        assert all(sum(found.values()) >= 3 for found in report.statuses.values()), report
        assert not any("timeout" in found for found in report.statuses.values()), report
        if report.p99_ms <= P99_MS:
            break
    assert reports[-1].p99_ms <= P99_MS, "\n".join(map(str, reports))


# Kinds answered with an error: each error passes through frames that hold the request.
REFUSED = [
    "chat-huge-prompt",
    "embeddings-many-inputs",
    "chat-many-messages",
    "chat-huge-tool",
    "completions-unicode",
    "multipart-many-parts",
    "chat-refused-by-limits",
    "cedar-deep",
]


def test_refused_requests_leave_nothing_for_the_collector(target: Target) -> None:
    """An error's traceback holds the frames it passed through, and their locals the request
    (megabytes, tens of thousands of parsed objects); a frame that also held the error made a
    cycle that only the collector freed, in pauses of 50 to 130 ms measured on the event loop.
    Once answered, nothing of a refused request is left for it."""
    payloads = {name: KINDS[name].build(target) for name in REFUSED}
    for name in REFUSED:  # first-call costs (caches, pools) are not what this looks for
        send(target, KINDS[name], payloads[name])
    ours = os.path.dirname(bulkhead.__file__)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        statuses = {name: send(target, KINDS[name], payloads[name]) for name in REFUSED}
        time.sleep(0.5)  # whatever runs after the answer (the audit record) is done
        gc.collect()
        frames = sorted(
            {
                f"{found.f_code.co_name} ({found.f_code.co_filename})"
                for found in gc.garbage
                if isinstance(found, types.FrameType) and found.f_code.co_filename.startswith(ours)
            }
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert all(status.startswith("4") for status in statuses.values()), statuses
    assert frames == []


# Each layer's part, without a network ------------------------------------------------------

MIB = 1024 * 1024
RESOLVED = ResolvedModel(
    Model("mdl_1", "m", None, frozenset({Endpoint.CHAT})),
    Deployment("dep_1", "mdl_1", DeploymentKind.UPSTREAM, "http://upstream", "fake"),
)


class SpyCounter(ByteCounter):
    """Counts like `ByteCounter`, noting the largest text and the thread it ran on."""

    def __init__(self) -> None:
        self.largest = 0
        self.threads: set[int] = set()

    def count(self, text: str) -> int:
        self.largest = max(self.largest, len(text))
        self.threads.add(threading.get_ident())
        return super().count(text)


def caller(quotas: dict[str, Any] | None = None) -> TenantContext:
    tenant = Tenant("t-loop", "loop", Tier.SHARED, TenantStatus.ACTIVE, quotas=quotas or {})
    p = Principal("p-1", tenant.id, "svc", PrincipalKind.SERVICE, frozenset({Role.END_USER}))
    return TenantContext(tenant=tenant, principal=p, role=Role.END_USER, credential_id="k-1")


def admit(layer: AdmissionMiddleware, ctx: TenantContext, body: dict[str, Any]) -> int:
    """Run one chat call through `layer`; the id of the thread the inner app ran on."""
    raw = orjson.dumps(body)
    scope: Scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}
    scope |= {CONTEXT: ctx, JSON: body, BODY: raw, ENDPOINT: match("POST", scope["path"])}
    scope[EXCHANGE] = Exchange(request_id="r", started=time.perf_counter(), client=None)
    ran: list[int] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        ran.append(threading.get_ident())
        scope[EXCHANGE].responded(200)  # a call that went through: its request stays counted

    async def nothing(*_: Any) -> Any:
        return None

    asyncio.run(AdmissionMiddleware(inner, admission=layer.admission, offload=layer.offload)(
        scope, nothing, nothing))  # fmt: skip
    return ran[0]


def limited(counter: SpyCounter) -> AdmissionMiddleware:
    admission = LimitAdmission(
        InMemoryLimiter(), counter, key_quotas=lambda _: None, on_fail_open=lambda _: None
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    return AdmissionMiddleware(app, admission=admission, offload=Offload())


def chat(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 4}


def test_a_large_body_the_limits_refuse_is_never_tokenised() -> None:
    counter = SpyCounter()
    layer = limited(counter)
    ctx = caller({"requests_per_minute": 1})
    admit(layer, ctx, chat("hello"))
    counter.largest = 0
    with pytest.raises(RateLimited):
        admit(layer, ctx, chat("x" * MIB))
    assert counter.largest == 0


def test_a_large_prompt_is_counted_off_the_event_loop_and_a_small_one_inline() -> None:
    counter = SpyCounter()
    layer = limited(counter)
    ctx = caller({"tokens_per_minute": None})
    loop_thread = admit(layer, ctx, chat("hello"))
    assert counter.threads == {loop_thread}  # the fast path: no thread hop
    counter.threads.clear()
    admit(layer, ctx, chat("x" * MIB))
    assert counter.largest == MIB and loop_thread not in counter.threads


def test_the_guard_refuses_what_it_would_not_scan_whole() -> None:
    guard = Guard(GuardConfig())
    with pytest.raises(PayloadTooLarge):
        guard.scan_request(chat("x" * 1001), max_chars=1000)
    with pytest.raises(PayloadTooLarge):
        guard.scan_request({"input": ["a"] * 11}, max_texts=10)
    assert guard.scan_request(chat("x" * 1000), max_chars=1000).findings == ()


def test_a_large_body_is_scanned_off_the_event_loop() -> None:
    seen: list[int] = []

    class SpyGuard(Guard):
        def scan_request(self, body: Any, **kw: Any) -> RequestVerdict:
            seen.append(threading.get_ident())
            return super().scan_request(body, **kw)

    ctx = caller()
    layer = GuardInMiddleware(
        lambda *_: asyncio.sleep(0), guards=GuardBook(build=SpyGuard), offload=Offload()
    )
    for text in ("hello", "x" * MIB):
        body = chat(text)
        scope: Scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}
        scope |= {CONTEXT: ctx, MODEL: RESOLVED, JSON: body, BODY: orjson.dumps(body)}
        scope[ENDPOINT] = match("POST", scope["path"])
        scope[EXCHANGE] = Exchange(request_id="r", started=time.perf_counter(), client=None)

        async def call(scope: Scope = scope) -> int:
            await layer(scope, None, None)  # type: ignore[arg-type]
            return threading.get_ident()

        seen.append(-asyncio.run(call()))
    small_scan, small_loop, large_scan, large_loop = seen
    assert small_scan == -small_loop and large_scan != -large_loop


def test_one_tenant_cannot_queue_more_than_its_share_of_heavy_work() -> None:
    offload = Offload(workers=1, per_tenant=2)
    gate = threading.Event()

    async def flood() -> list[str]:
        asyncio.get_running_loop().call_later(0.2, gate.set)
        jobs = [offload.run("tenant:a", MIB, gate.wait, 5) for _ in range(3)]
        other = offload.run("tenant:b", MIB, lambda: True)
        done = await asyncio.gather(*jobs, other, return_exceptions=True)
        return [type(d).__name__ for d in done]

    assert asyncio.run(flood()) == ["bool", "bool", "RateLimited", "bool"]


def test_a_flooding_tenant_does_not_delay_another_behind_its_flood() -> None:
    offload = Offload(workers=1, per_tenant=16)
    ran: list[str] = []

    def job(name: str) -> None:
        time.sleep(0.01)
        ran.append(name)

    async def both() -> None:
        flood = [offload.run("tenant:a", MIB, job, f"a{i}") for i in range(8)]
        await asyncio.sleep(0)  # the flood is queued first
        await asyncio.gather(*flood, offload.run("tenant:b", MIB, job, "b"))

    asyncio.run(both())
    assert ran.index("b") <= 2  # after the job running and at most one more of the flood


def quiet_switch_interval() -> float:
    """The interval once no heavy job runs in this process (a gateway of an earlier test may
    still be finishing one)."""
    deadline = time.monotonic() + 10
    while SWITCH.asked and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not SWITCH.asked
    return sys.getswitchinterval()


def test_threads_switch_sooner_only_while_heavy_work_runs() -> None:
    offload = Offload(switch_interval_s=0.001)
    before = quiet_switch_interval()
    seen: list[float] = []

    async def one() -> None:
        await offload.run("tenant:a", MIB, lambda: seen.append(sys.getswitchinterval()))
        await asyncio.sleep(0.05)  # the job's done-callback runs on the worker thread

    asyncio.run(one())
    assert seen == [0.001] and sys.getswitchinterval() == before


def test_two_gateways_overlapping_leave_the_interval_as_it_was() -> None:
    """One interval per process: overlapping jobs of two `Offload`s must not save each other's
    lowered value (the process stayed at 1 ms for good)."""
    first, second = Offload(switch_interval_s=0.001), Offload(switch_interval_s=0.001)
    before = quiet_switch_interval()
    release_first, release_second = threading.Event(), threading.Event()
    seen: list[float] = []

    async def overlap() -> None:
        a = asyncio.ensure_future(first.run("tenant:a", MIB, release_first.wait, 5))
        await asyncio.sleep(0.05)
        b = asyncio.ensure_future(second.run("tenant:b", MIB, release_second.wait, 5))
        await asyncio.sleep(0.05)
        release_first.set()
        await a
        await asyncio.sleep(0.05)
        seen.append(sys.getswitchinterval())  # the second still runs
        release_second.set()
        await b
        await asyncio.sleep(0.05)

    asyncio.run(overlap())
    assert seen == [0.001] and sys.getswitchinterval() == before


# A tenant's own upstream is hostile input too ----------------------------------------------


class Chunks:
    """What aiohttp's stream reader yields, from a generator of chunks."""

    def __init__(self, chunks: Iterator[bytes], content_length: int | None = None):
        self.chunks = chunks
        self.content_length = content_length
        self.content = self

    async def iter_any(self) -> Any:
        for chunk in self.chunks:
            yield chunk


@pytest.mark.serial
def test_a_long_stream_line_is_not_copied_over_and_over() -> None:
    """An event just under the bound, in 64 KiB pieces, then a line over it: the first is
    relayed and the second refused, each in time linear in its length."""
    piece = b"x" * 65536
    pieces = upstream.MAX_EVENT_BYTES // len(piece) - 1
    event = [b'data: {"t": "', *[piece] * pieces, b'"}\n']
    stream = iter([*event, *[piece] * 2 * (pieces + 2)])
    relayed: list[int] = []

    async def drain() -> None:
        async for batch in upstream._sse_batches(Chunks(stream)):  # type: ignore[arg-type]
            relayed.extend(len(e["t"]) for e in batch)

    started = time.perf_counter()
    with pytest.raises(UpstreamError) as refused:
        asyncio.run(drain())
    assert time.perf_counter() - started < 0.3  # appending piece by piece: ~0.7 s here
    assert relayed == [pieces * len(piece)] and "too large" in refused.value.message
