"""Traces through the whole gateway, read back from the SDK's in-memory exporter.

One span per chain layer, nested as the chain is; the upstream call and the
audit write; the `traceparent` the upstream gets names the upstream span and
nothing else (no `tracestate`, no `baggage`, nothing of the tenant, and never
the client's own trace context); and, as an attacker would check, no exported
attribute holds the caller's key, the prompt, the answer or what the headers
carried.  With no endpoint configured nothing is wrapped and nothing is sent.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bulkhead.gateway.tracing import TracedLayer
from bulkhead.observe import tracing
from bulkhead.runtime import UpstreamClient
from bulkhead.runtime.traced import TracedUpstreamClient
from bulkhead.runtime.upstream import UpstreamRequest
from bulkhead.testing.transport import MockTransport, Reply, json_reply, sse_reply
from tests.support.inprocess import InProcessGateway, upstream_answer
from tests.unit.gateway.test_chain_order import ORDER

MODEL = "traced-chat"
UPSTREAM = "http://127.0.0.1:9/v1"
SECRET_PROMPT = "my card is 4111 1111 1111 1111, key sk-live-SECRETSECRETSECRET, mail a@b.example"
CLIENT_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
LAYERS = ["gateway." + name.removesuffix("Middleware") for name in ORDER] + ["gateway.Endpoints"]


class Upstream:
    """The fake upstream: answers as `inprocess` does; a 500 for the model `broken`."""

    def __init__(self) -> None:
        self.transport = MockTransport(self.answer)

    def answer(self, request: UpstreamRequest) -> Reply:
        payload = orjson.loads(request.body)
        if payload.get("model") == "broken":
            return json_reply({"error": {"message": "boom"}}, status=500)
        path = request.url.removeprefix(UPSTREAM)
        if payload.get("stream"):
            answer = upstream_answer(path, payload)
            text = answer["choices"][0]["message"]["content"]
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            delta = {"index": 0, "delta": {"content": text}, "finish_reason": "stop"}
            return sse_reply([chunk | {"choices": [delta]}])
        return json_reply(upstream_answer(path, payload))

    @property
    def last(self) -> UpstreamRequest:
        return self.transport.requests[-1]


class Traced:
    def __init__(self, gw: InProcessGateway, exporter: InMemorySpanExporter, upstream: Upstream):
        self.gw, self.exporter, self.upstream = gw, exporter, upstream
        self.key = gw.key("tr")
        self.tenant_id = gw.must("GET", "/admin/v1/tenants/tr")["id"]

    def spans(self) -> list[ReadableSpan]:
        client = self.gw.app.upstreams
        assert isinstance(client, TracedUpstreamClient)
        assert client.tracing.provider.force_flush(5000)
        return list(self.exporter.get_finished_spans())

    def reset(self) -> None:
        """Forget the spans so far, those still queued for export included."""
        self.spans()
        self.exporter.clear()

    def chat(self, text: str = "hi", **extra: Any) -> tuple[Any, list[ReadableSpan]]:
        """One chat completion; its answer and the spans of its trace."""
        self.reset()
        headers = extra.pop("headers", None)
        body = {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}
        answer = self.gw.call("POST", "/v1/chat/completions", self.key, body, headers=headers)
        return answer, self.spans()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    start = functools.partial(tracing.start, exporter=exporter)
    env = {"BULKHEAD_OTLP_ENDPOINT": "http://127.0.0.1:9/v1/traces"}
    with mock.patch.object(tracing, "start", start):
        gw = InProcessGateway(tmp_path_factory.mktemp("trace") / "data", env)
    upstream = Upstream()
    client = gw.app.upstreams
    del client.call, client.stream  # `in_process_upstream`'s: the traced client's own instead
    client.transport = upstream.transport  # type: ignore[assignment]
    gw.tenant("tr")
    gw.tenant("tr-other")
    gw.model(MODEL, UPSTREAM, upstream_model="ok", grant=("tr",))
    gw.model("broken-chat", UPSTREAM, upstream_model="broken", grant=("tr",))
    yield Traced(gw, exporter, upstream)
    gw.stop()


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def test_a_chat_completion_is_one_trace_with_a_span_per_layer_nested_as_the_chain(
    traced: Traced,
) -> None:
    answer, spans = traced.chat()
    assert answer.status == 200, answer.body
    root = by_name(spans, "gateway.request")
    assert root.kind is SpanKind.SERVER and root.parent is None
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    parent = root
    for name in LAYERS:  # each layer's span is a child of the one outside it
        span = by_name(spans, name)
        assert span.parent is not None and span.parent.span_id == parent.context.span_id, name
        parent = span
    for name in ("upstream.call", "audit.write"):  # both inside the endpoints' span
        inner = by_name(spans, name)
        assert inner.parent is not None and inner.parent.span_id == parent.context.span_id
    upstream = by_name(spans, "upstream.call")
    assert upstream.kind is SpanKind.CLIENT
    assert upstream.attributes == {
        "bulkhead.upstream.kind": "upstream",
        "bulkhead.upstream.path": "/chat/completions",
    }
    assert dict(root.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/v1/chat/completions",
        "http.response.status_code": 200,
        "bulkhead.request_id": answer.headers["x-request-id"],
        "bulkhead.action": "v1:chat",
        "bulkhead.tenant_id": traced.tenant_id,
    }


def test_the_upstream_gets_a_traceparent_naming_its_span_and_nothing_else(
    traced: Traced,
) -> None:
    sent = {"traceparent": CLIENT_TRACE, "tracestate": f"t={traced.tenant_id}", "baggage": "a=b"}
    answer, spans = traced.chat(headers=sent)
    assert answer.status == 200
    headers = {k.lower(): v for k, v in traced.upstream.last.headers.items()}
    upstream = by_name(spans, "upstream.call").context
    assert headers["traceparent"] == f"00-{upstream.trace_id:032x}-{upstream.span_id:016x}-01"
    assert not {"tracestate", "baggage"} & headers.keys()
    # The client's trace context is not joined: the trace starts at the gateway.
    assert CLIENT_TRACE.split("-")[1] not in headers["traceparent"]
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", headers["traceparent"])
    root = by_name(spans, "gateway.request")
    assert root.parent is None and not root.links


def test_a_stream_is_one_upstream_span_that_ends_with_it(traced: Traced) -> None:
    answer, spans = traced.chat(stream=True)
    assert answer.status == 200 and b"[DONE]" in answer.raw
    upstream = by_name(spans, "upstream.call")
    assert (upstream.attributes or {})["bulkhead.stream"] is True
    assert upstream.status.status_code is StatusCode.UNSET
    ctx = upstream.context
    sent = traced.upstream.last.headers["traceparent"]
    assert sent == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"


def test_a_failed_call_says_only_the_errors_class(traced: Traced) -> None:
    traced.reset()
    body = {"model": "broken-chat", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    answer = traced.gw.call("POST", "/v1/chat/completions", traced.key, body)
    assert answer.status == 502
    spans = traced.spans()
    upstream = by_name(spans, "upstream.call")
    assert upstream.status.status_code is StatusCode.ERROR
    assert upstream.status.description is None and not upstream.events
    assert (upstream.attributes or {})["error.type"] == "UpstreamError"
    assert (by_name(spans, "gateway.request").attributes or {})["http.response.status_code"] == 502
    assert_nothing_leaks(spans, traced, SECRET_PROMPT, "boom")


def test_no_attribute_holds_a_key_a_prompt_an_answer_or_a_header(traced: Traced) -> None:
    headers = {
        "x-api-key": "sk-live-HEADERSECRET",
        "x-forwarded-for": "203.0.113.9",
        "user-agent": "attacker sk-live-UASECRET",
        "traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
        "baggage": "tenant=tr-other,secret=sk-live-BAGGAGE",
    }
    for stream in (False, True):
        answer, spans = traced.chat(SECRET_PROMPT, stream=stream, user="alice@b.example",
                                    headers=headers)  # fmt: skip
        assert answer.status == 200
        secrets = (SECRET_PROMPT, *headers.values(), "alice@b.example", "lorem", "tr-other")
        assert_nothing_leaks(spans, traced, *secrets)
    # And a refused call (another tenant's model) names nothing of that tenant either.
    traced.reset()
    refused = traced.gw.call("POST", "/v1/chat/completions", "sk-wrong-KEY", {"model": MODEL})
    assert refused.status == 401
    assert_nothing_leaks(traced.spans(), traced, "sk-wrong-KEY")


def assert_nothing_leaks(spans: list[ReadableSpan], traced: Traced, *secrets: str) -> None:
    said: list[str] = []
    for span in spans:
        said += [span.name, str(span.status.description or "")]
        said += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
        said += [str(e.attributes) for e in span.events]
        said += [str(v) for v in span.resource.attributes.values()]
    text = "\n".join(said)
    for secret in (traced.key, *secrets):
        for piece in {secret, *re.findall(r"[\w@.-]{8,}", secret)}:
            assert piece not in text, piece
    assert "tr-other" not in text


def test_the_traceparent_holds_no_tenant_data(traced: Traced) -> None:
    traced.chat()
    value = traced.upstream.last.headers["traceparent"]
    for secret in (traced.tenant_id, "tr", traced.key, traced.key[-8:]):
        assert secret not in value.split("-")[1:3] and secret not in value[3:]


def test_unconfigured_nothing_is_wrapped_and_nothing_is_sent(tmp_path: Path) -> None:
    gw = InProcessGateway(tmp_path / "data")
    try:
        assert type(gw.app.upstreams) is UpstreamClient
        app: Any = gw.app.chain
        while app is not None:  # the chain as built, layer by layer: no span wrappers
            assert not isinstance(app, TracedLayer), app
            app = getattr(app, "app", None)
        upstream = Upstream()
        client = gw.app.upstreams
        del client.call, client.stream
        client.transport = upstream.transport  # type: ignore[assignment]
        gw.tenant("plain")
        gw.model(MODEL, UPSTREAM, upstream_model="ok", grant=("plain",))
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        sent = {"traceparent": CLIENT_TRACE, "tracestate": "a=b", "baggage": "c=d"}
        answer = gw.call("POST", "/v1/chat/completions", gw.key("plain"), body, headers=sent)
        assert answer.status == 200
        assert not {"traceparent", "tracestate", "baggage"} & set(upstream.last.headers)
    finally:
        gw.stop()


def test_unconfigured_opentelemetry_is_never_imported() -> None:
    """Its SDK's tracing and its exporter, that is (redis imports parts of its API itself)."""
    code = (
        "import sys, bulkhead.app, bulkhead.app.build, bulkhead.gateway.chain, "
        "bulkhead.runtime.traced, bulkhead.gateway.tracing\n"
        "prefixes = ('opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "assert not [m for m in sys.modules if m.startswith(prefixes)], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_audit_layers_own_durable_write_is_a_span_of_the_request(traced: Traced) -> None:
    """The response's end waits for its entry: a span inside the one that sent that end."""
    traced.reset()
    assert traced.gw.call("GET", "/v1/models", traced.key).status == 200
    spans = traced.spans()
    write, endpoints = by_name(spans, "audit.write"), by_name(spans, "gateway.Endpoints")
    assert write.parent is not None and write.parent.span_id == endpoints.context.span_id
    assert not [s for s in spans if s.name == "upstream.call"]


def test_tracing_stops_after_the_audit_log_is_committed(tmp_path: Path) -> None:
    """A collector that does not answer delays tracing's last export: the audit log's
    commit at shutdown must already be done by then (docs/kubernetes.md's grace)."""
    exporter = InMemorySpanExporter()
    start = functools.partial(tracing.start, exporter=exporter)
    env = {"BULKHEAD_OTLP_ENDPOINT": "http://127.0.0.1:9/v1/traces"}
    with mock.patch.object(tracing, "start", start):
        gw = InProcessGateway(tmp_path / "data", env)
    client = gw.app.upstreams
    assert isinstance(client, TracedUpstreamClient)
    order: list[str] = []
    audit_close, tracing_stop = gw.app.audit.close, tracing.Tracing.shutdown

    def stop(self: tracing.Tracing) -> None:
        order.append("tracing")
        tracing_stop(self)

    with (
        mock.patch.object(gw.app.audit, "close", lambda: (order.append("audit"), audit_close())),
        mock.patch.object(tracing.Tracing, "shutdown", stop),
    ):
        gw.stop()
    assert order == ["audit", "tracing"]
