"""`observe.tracing` and the traced upstream client, without a gateway around them."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from bulkhead.errors import InvalidRequest
from bulkhead.gateway.tracing import TracedLayer, TracedRequest
from bulkhead.observe import tracing
from bulkhead.runtime.traced import WORKER_URL, TracedUpstreamClient
from bulkhead.runtime.upstream import Target
from bulkhead.testing.transport import MockTransport, json_reply, sse_reply

ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()


def started(exporter: InMemorySpanExporter, ratio: float = 1.0) -> tracing.Tracing:
    return tracing.start(service_name="test", sample_ratio=ratio, exporter=exporter)


def finished(traced: tracing.Tracing, exporter: InMemorySpanExporter) -> list[Any]:
    assert traced.provider.force_flush(5000)
    return list(exporter.get_finished_spans())


def worker() -> Target:
    headers = {"authorization": "Bearer w0rker-token", "TraceParent": "00-x", "tracestate": "t=1"}
    return Target(WORKER_URL, "m", unix_socket="/nowhere.sock", headers=headers)


def test_a_worker_call_is_a_span_and_the_worker_gets_only_its_traceparent(
    exporter: InMemorySpanExporter,
) -> None:
    traced = started(exporter)
    transport = MockTransport(lambda request: json_reply(ANSWER))
    client = TracedUpstreamClient(tracing=traced, transport=transport)
    asyncio.run(client.call(worker(), "/chat/completions", {"model": "m"}))
    (span,) = finished(traced, exporter)
    assert span.name == "worker.call"
    assert span.attributes == {
        "bulkhead.upstream.kind": "worker",
        "bulkhead.upstream.path": "/chat/completions",
    }
    sent = dict(transport.requests[0].headers)
    ctx = span.context
    assert sent["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"
    assert sent["authorization"] == "Bearer w0rker-token"  # the deployment's own, untouched
    assert {k.lower() for k in sent} == {"content-type", "authorization", "traceparent"}


def test_a_stream_closed_early_is_no_error(exporter: InMemorySpanExporter) -> None:
    traced = started(exporter)
    events = [{"choices": [{"index": 0, "delta": {"content": "a"}}]}] * 3
    client = TracedUpstreamClient(
        tracing=traced, transport=MockTransport(lambda r: sse_reply(events))
    )

    async def first() -> None:
        stream = client.stream(worker(), "/chat/completions", {"model": "m", "stream": True})
        async for _ in stream:
            break
        await stream.aclose()

    asyncio.run(first())
    (span,) = finished(traced, exporter)
    assert span.status.status_code is StatusCode.UNSET and "error.type" not in span.attributes


def test_unsampled_calls_export_nothing_and_still_send_a_traceparent(
    exporter: InMemorySpanExporter,
) -> None:
    traced = started(exporter, ratio=0.0)
    transport = MockTransport(lambda request: json_reply(ANSWER))
    client = TracedUpstreamClient(tracing=traced, transport=transport)
    asyncio.run(client.call(worker(), "/chat/completions", {"model": "m"}))
    assert finished(traced, exporter) == []
    assert transport.requests[0].headers["traceparent"].endswith("-00")


def test_a_layer_that_raises_says_only_the_errors_class(exporter: InMemorySpanExporter) -> None:
    traced = started(exporter)

    async def refuses(scope: Any, receive: Any, send: Any) -> None:
        raise InvalidRequest("the prompt 'sk-live-SECRET' is refused")

    app = TracedRequest(TracedLayer(refuses, "gateway.Refuses", traced), "gateway.request", traced)
    scope = {"type": "http", "method": "BREW", "path": "/v1/files/file-abc"}
    with pytest.raises(InvalidRequest):
        asyncio.run(app(scope, receive_nothing, send_nothing))
    layer, request = finished(traced, exporter)
    assert layer.status.status_code is StatusCode.ERROR and layer.status.description is None
    assert layer.attributes == {"error.type": "InvalidRequest"} and not layer.events
    # No path (it names a tenant's objects) and no method a client made up.
    assert request.attributes == {"http.request.method": "_OTHER", "error.type": "InvalidRequest"}


def test_lifespan_and_websockets_pass_without_a_span(exporter: InMemorySpanExporter) -> None:
    traced = started(exporter)
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    asyncio.run(
        TracedRequest(TracedLayer(app, "x", traced), "r", traced)(
            {"type": "lifespan"}, receive_nothing, send_nothing
        )
    )
    assert seen == ["lifespan"] and finished(traced, exporter) == []


def test_an_unreachable_collector_fails_no_request() -> None:
    """Spans go out from the batch processor's thread: a collector that refuses connections
    costs the spans, never the request (nothing listens on port 9 here)."""
    traced = tracing.start(
        service_name="test", sample_ratio=1.0, endpoint="http://127.0.0.1:9/v1/traces",
        headers={"authorization": "Bearer collector-token"},
    )  # fmt: skip
    answered: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        answered.append(scope["path"])

    chain = TracedRequest(TracedLayer(app, "gateway.Endpoints", traced), "gateway.request", traced)
    for _ in range(3):
        asyncio.run(
            chain(
                {"type": "http", "method": "GET", "path": "/healthz"}, receive_nothing, send_nothing
            )
        )
    assert answered == ["/healthz"] * 3
    traced.provider.force_flush(1)  # the export fails in its own thread; nothing raises here
    traced.shutdown()


async def receive_nothing() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def send_nothing(message: Any) -> None:
    return None


def test_a_dropped_request_makes_no_layer_spans(exporter: InMemorySpanExporter) -> None:
    traced = started(exporter, ratio=0.0)
    made: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        made.append(traced.recording())

    chain = TracedRequest(TracedLayer(app, "gateway.Endpoints", traced), "gateway.request", traced)
    scope = {"type": "http", "method": "GET", "path": "/healthz"}
    real = tracing.Tracing.span
    with mock.patch.object(tracing.Tracing, "span", autospec=True, side_effect=real) as span:
        asyncio.run(chain(scope, receive_nothing, send_nothing))
    assert made == [False] and span.call_count == 1  # the request's alone
    assert finished(traced, exporter) == []


class StuckExporter(SpanExporter):
    """A collector that accepts a batch and never answers (a blackholed address)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Any) -> SpanExportResult:
        self.release.wait(60)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None


@pytest.mark.serial
def test_a_stuck_collector_delays_the_shutdown_by_one_export_timeout_at_most() -> None:
    """The gateway commits its audit log after tracing stops: a collector that never
    answers must not hold that back past the orchestrator's grace (the SDK's own
    shutdown waits up to 30 s, one 5 s export per batch of a full queue)."""
    stuck = StuckExporter()
    traced = tracing.start(service_name="test", sample_ratio=1.0, exporter=stuck)
    for _ in range(2048):
        with traced.span("a"):
            pass
    started_at = time.monotonic()
    traced.shutdown()
    assert time.monotonic() - started_at < tracing.EXPORT_TIMEOUT_S + 1.5
    stuck.release.set()


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records who called (path and the collector header); answers what `reply` says."""

    seen: list[tuple[str, str | None]]
    reply: tuple[int, dict[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.seen.append((self.path, self.headers.get("x-collector-token")))
        status, headers = self.reply
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: Any) -> None:
        return None


@contextlib.contextmanager
def _listener(reply: tuple[int, dict[str, str]]) -> Iterator[tuple[str, list[Any]]]:
    seen: list[Any] = []
    handler = type("Handler", (_Recorder,), {"seen": seen, "reply": reply})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _export_one(endpoint: str) -> None:
    traced = tracing.start(
        service_name="test", sample_ratio=1.0, endpoint=f"{endpoint}/v1/traces",
        headers={"x-collector-token": "collector-token"},
    )  # fmt: skip
    with traced.span("gateway.request"):
        pass
    traced.provider.force_flush(5)
    traced.shutdown()


def test_a_collector_redirect_is_not_followed_with_its_token() -> None:
    """A redirect would carry the collector's headers (its token) to wherever it points."""
    with (
        _listener((200, {})) as (elsewhere, stolen),
        _listener((307, {"location": f"{elsewhere}/steal"})) as (collector, seen),
    ):
        _export_one(collector)
    assert seen and seen[0] == ("/v1/traces", "collector-token")
    assert stolen == []


def test_spans_go_to_the_collector_never_through_an_environment_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _listener((200, {})) as (proxy, proxied), _listener((200, {})) as (collector, seen):
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        _export_one(collector)
    assert seen == [("/v1/traces", "collector-token")]
    assert proxied == []
