"""The chain's spans: one per layer, composed in by `build_chain` only when tracing is on.

Wrapping each layer where the chain is assembled keeps tracing out of the layers
themselves (they know nothing of it) and costs nothing when it is off: then
`build_chain` never calls `traced`.  The outermost span is the request's (kind
SERVER); each layer's span is a child of the one outside it, so a trace reads as
the chain does (in a request the sampler dropped, only the request's span, not
recorded, is made).  The request's span gets its attributes once the response is
out, from the `Exchange` record: the method, the `/v1` route template (never the
path itself, which names a tenant's objects), the status, the gateway's request
id, the Cedar action and the authenticated tenant's id (platform-level data: the
collector is the operator's, as the metrics listener is; docs/operations.md).
A client's `traceparent`, `tracestate` or `baggage` is never read.

The audit write a model call waits on (`record_forwarding`: its entry durable
before the call is forwarded) is a span too, through `TracedAudit`.
"""

from __future__ import annotations

from typing import Any

from bulkhead.audit import AuditEvent, AuditSink, WriterState
from bulkhead.gateway.endpoints import endpoint_of
from bulkhead.observe.tracing import SERVER, Tracing
from bulkhead.web.scope import EXCHANGE, ASGIApp, Exchange, Receive, Scope, Send

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class TracedLayer:
    """One layer (or the endpoints) inside a span named after it."""

    __slots__ = ("app", "name", "tracing")

    def __init__(self, app: ASGIApp, name: str, tracing: Tracing) -> None:
        self.app, self.name, self.tracing = app, name, tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tracing.recording():
            await self.app(scope, receive, send)
            return
        with self.tracing.span(self.name):
            await self.app(scope, receive, send)


class TracedRequest(TracedLayer):
    """The request's own span, outside every layer's."""

    __slots__ = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.tracing.span(self.name, SERVER) as span:
            try:
                await self.app(scope, receive, send)
            finally:
                span.set_attributes(request_attributes(scope))


def request_attributes(scope: Scope) -> dict[str, Any]:
    """What the request's span says of it: nothing a client wrote but the method."""
    method = scope["method"]
    found: dict[str, Any] = {"http.request.method": method if method in _METHODS else "_OTHER"}
    endpoint = endpoint_of(scope)
    if endpoint is not None:
        found["http.route"] = endpoint.path
    ex: Exchange | None = scope.get(EXCHANGE)
    if ex is not None:
        found["bulkhead.request_id"] = ex.request_id
        if ex.status:
            found["http.response.status_code"] = ex.status
        if ex.action is not None:
            found["bulkhead.action"] = ex.action
        if ex.tenant_id is not None:
            found["bulkhead.tenant_id"] = ex.tenant_id
    return found


def traced(app: ASGIApp, layer: type[Any], tracing: Tracing | None) -> ASGIApp:
    """`app` (an instance of `layer`) inside its span; itself when tracing is off."""
    if tracing is None:
        return app
    return TracedLayer(app, "gateway." + layer.__name__.removesuffix("Middleware"), tracing)


def traced_request(app: ASGIApp, tracing: Tracing | None) -> ASGIApp:
    """The whole chain inside the request's span; itself when tracing is off."""
    return app if tracing is None else TracedRequest(app, "gateway.request", tracing)


def traced_audit(sink: AuditSink, tracing: Tracing | None) -> AuditSink:
    return sink if tracing is None else TracedAudit(sink, tracing)


class TracedAudit:
    """An `AuditSink` whose durable writes (the ones a request waits on) are spans."""

    def __init__(self, sink: AuditSink, tracing: Tracing) -> None:
        self.sink, self.tracing = sink, tracing

    def emit(self, event: AuditEvent) -> int:
        return self.sink.emit(event)

    async def durable(self, ticket: int) -> None:
        with self.tracing.span("audit.write"):
            await self.sink.durable(ticket)

    def flush(self, timeout: float = 5.0) -> None:
        self.sink.flush(timeout)

    def state(self) -> WriterState:
        return self.sink.state()

    def close(self) -> None:
        self.sink.close()
