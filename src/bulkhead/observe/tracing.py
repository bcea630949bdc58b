"""Traces: OpenTelemetry spans, exported over OTLP/HTTP, only when the operator asks.

Why it is built this way:

- The gateway's CPU per request is budgeted (issue 21).  With no OTLP endpoint
  configured no `Tracing` exists: `opentelemetry` is never imported, the chain is
  built without span wrappers (`gateway.tracing`), the plain `UpstreamClient` is
  used, and no span, context or header is made.  Everything that traces is
  composed in at build time, so the cost of "off" is nothing, not a check per layer.
- Export never blocks a request: spans go to a `BatchSpanProcessor`, whose own
  thread sends them; an unreachable collector costs dropped spans, never a failed
  or slower request.  Tracing is no security control (the audit log is): it stops
  after the audit log's last commit, and within `EXPORT_TIMEOUT_S`.
- What leaves in a span is chosen here and in the few callers, never the SDK's
  defaults: exceptions are not recorded (their messages may quote input), only
  the error's class name (`error.type`); no body, header, prompt, answer, key or
  URL of a tenant's upstream is ever an attribute.
- The trace context sent to an upstream is one `traceparent` built from the
  upstream span's own ids (`traceparent`): never `tracestate` or `baggage`, and
  never a client's (a client's trace context is not read at all: each request's
  trace starts at the gateway).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
"""Trace context headers: only the gateway's own `traceparent` goes to an upstream."""
SERVER, CLIENT, INTERNAL = "server", "client", "internal"
EXPORT_TIMEOUT_S = 5.0


class Tracing:
    """A tracer over one provider; `span` and `detached` make the only spans Bulkhead makes."""

    __slots__ = ("_current", "_kinds", "_status", "provider", "tracer")

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace import SpanKind, StatusCode, get_current_span

        self.provider = provider
        self.tracer = provider.get_tracer("bulkhead")
        self._kinds = {
            SERVER: SpanKind.SERVER,
            CLIENT: SpanKind.CLIENT,
            INTERNAL: SpanKind.INTERNAL,
        }
        self._status = StatusCode.ERROR
        self._current = get_current_span

    def recording(self) -> bool:
        """Whether the current span is recorded: below one the sampler dropped, a layer's
        span would be dropped too, so the chain skips making it."""
        return self._current().is_recording()

    @contextlib.contextmanager
    def span(
        self, name: str, kind: str = INTERNAL, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[Span]:
        """A span that is the current one (its callees' parent) while the block runs."""
        with self.tracer.start_as_current_span(
            name,
            kind=self._kinds[kind],
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                self.failed(span, exc)
                raise

    @contextlib.contextmanager
    def detached(
        self, name: str, kind: str = INTERNAL, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[Span]:
        """A child of the current span that is not made current: safe across an async
        generator's yields, where attaching a context would leak into the consumer's."""
        span = self.tracer.start_span(name, kind=self._kinds[kind], attributes=attributes)
        try:
            yield span
        except BaseException as exc:
            self.failed(span, exc)
            raise
        finally:
            span.end()

    def failed(self, span: Span, exc: BaseException) -> None:
        """Mark `span` failed by the error's class alone: its message may quote input.
        A generator closed early (a stream the gateway stopped reading) did not fail."""
        if isinstance(exc, GeneratorExit):
            return
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(self._status)

    def shutdown(self) -> None:
        """Export what is queued and stop, waiting `EXPORT_TIMEOUT_S` at most: the SDK's own
        shutdown exports batch after batch for up to 30 s when the collector does not
        answer, and the process's exit (the audit log's last commit) must not wait on it.
        What is still queued then is dropped with the process (the thread is a daemon)."""
        stopping = threading.Thread(target=self.provider.shutdown, name="otel-shutdown")
        stopping.daemon = True
        stopping.start()
        stopping.join(EXPORT_TIMEOUT_S)


def traceparent(span: Span) -> str:
    """The W3C `traceparent` naming `span`: its trace id, span id and sampled flag, no more."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags) & 1:02x}"


def outgoing(headers: Mapping[str, str], span: Span) -> dict[str, str]:
    """`headers` without any trace context they carry, with `span`'s `traceparent`."""
    kept = {k: v for k, v in headers.items() if k.lower() not in TRACE_HEADERS}
    kept["traceparent"] = traceparent(span)
    return kept


def start(
    *,
    service_name: str,
    sample_ratio: float,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
) -> Tracing:
    """Tracing that exports to `endpoint` over OTLP/HTTP (or to `exporter`: tests pass
    the SDK's in-memory one), sampling `sample_ratio` of the traces the gateway starts."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if exporter is None:
        import requests
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Spans go to the endpoint the operator named and nowhere else, as every other
        # egress of the gateway: no proxy or netrc from the environment (the exporter
        # follows no redirect either, which would carry the collector's token; a test pins
        # both).
        session = requests.Session()
        session.trust_env = False
        exporter = OTLPSpanExporter(
            endpoint=endpoint,
            headers=dict(headers or {}),
            timeout=EXPORT_TIMEOUT_S,
            session=session,
        )
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        resource=Resource.create({"service.name": service_name}),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    # A full queue (a collector away) would log a warning per dropped span, so a flood per
    # request: the failed exports are logged, once a batch, by the exporter's own logger.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
    return Tracing(provider)
