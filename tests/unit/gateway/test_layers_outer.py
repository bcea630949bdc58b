"""The chain's outer layers, each around a fake inner app: request id, headers, errors, audit.

Each test drives one layer with `bulkhead.testing.asgi` and checks what it
sets in the scope, what it refuses and what it passes through untouched.
"""

from __future__ import annotations

import pytest

from bulkhead.audit import AuditEvent, WriterState
from bulkhead.errors import (
    AuditUnavailable,
    MethodNotAllowed,
    ModelNotFound,
    PermissionDenied,
    RuleRefused,
    Unauthenticated,
)
from bulkhead.gateway.audit import AuditMiddleware
from bulkhead.gateway.endpoints import EndpointMiddleware
from bulkhead.gateway.errors import ErrorMiddleware
from bulkhead.gateway.headers import CONSOLE, HSTS, NOSNIFF, SecurityHeadersMiddleware
from bulkhead.gateway.request_id import RequestIdMiddleware
from bulkhead.observe import Metrics
from bulkhead.testing.asgi import FakeApp, Sent, http_scope, run
from bulkhead.web.scope import ENDPOINT, EXCHANGE, Exchange
from tests.support.chain import scope_at

# Request id ----------------------------------------------------------------------------------


def test_request_id_opens_the_exchange_and_names_the_response() -> None:
    inner = FakeApp()
    scope = http_scope("GET", "/v1/models", headers=[(b"x-request-id", b"client-chosen")])
    sent = run(RequestIdMiddleware(inner), scope)
    ex = inner.seen[EXCHANGE]
    assert isinstance(ex, Exchange) and ex.request_id.startswith("req_")
    assert ex.client == "203.0.113.7" and inner.seen["bulkhead.rid"] == ex.request_id
    # The client's own id is not trusted: ours is the one in the audit log and the answer.
    assert sent.header(b"x-request-id") == ex.request_id.encode()
    assert sent.body == inner.body
    assert ex.status == 200  # recorded here, the outermost layer, as the response started


def test_the_status_of_an_answered_error_is_recorded_by_the_outermost_layer() -> None:
    inner = FakeApp()
    errors = ErrorMiddleware(FakeApp(raises=PermissionDenied("no")))
    sent = run(RequestIdMiddleware(errors), http_scope("GET", "/v1/models"))
    assert sent.status == 403
    ex = errors.app.seen[EXCHANGE]  # type: ignore[attr-defined]
    assert ex.status == 403 and not inner.called


def test_the_endpoint_layer_sets_the_v1_endpoint_once() -> None:
    inner = FakeApp()
    run(EndpointMiddleware(inner), http_scope("POST", "/v1/chat/completions"))
    assert inner.seen[ENDPOINT].action == "v1:chat"
    for method, path in (("GET", "/admin/v1/tenants"), ("PUT", "/v1/chat/completions")):
        other = FakeApp()
        run(EndpointMiddleware(other), http_scope(method, path))
        assert other.called and ENDPOINT not in other.seen
    with pytest.raises(RuntimeError):  # set once: nothing may set it again
        run(EndpointMiddleware(inner), http_scope("GET", "/v1/models", **{ENDPOINT: None}))


def test_request_ids_differ_per_request() -> None:
    ids = {run(RequestIdMiddleware(FakeApp()), http_scope()).header(b"x-request-id")}
    ids.add(run(RequestIdMiddleware(FakeApp()), http_scope()).header(b"x-request-id"))
    assert len(ids) == 2


def test_request_id_leaves_other_scope_types_alone() -> None:
    inner = FakeApp()
    scope = {"type": "lifespan"}
    run(RequestIdMiddleware(inner), scope)
    assert inner.called and EXCHANGE not in scope


# Security headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 404, 500])
def test_nosniff_on_every_response_hsts_only_over_tls(status: int) -> None:
    plain = run(SecurityHeadersMiddleware(FakeApp(status=status), tls=False), http_scope())
    assert NOSNIFF in plain.headers and HSTS not in plain.headers
    tls = run(SecurityHeadersMiddleware(FakeApp(status=status), tls=True), http_scope())
    assert NOSNIFF in tls.headers and HSTS in tls.headers
    assert tls.status == status


@pytest.mark.parametrize("path", ["/console", "/console/keys", "/console/static/x.js", "/console/"])
@pytest.mark.parametrize("status", [200, 303, 401, 404, 500])
def test_the_console_csp_on_every_console_response(path: str, status: int) -> None:
    sent = run(
        SecurityHeadersMiddleware(FakeApp(status=status), tls=False), http_scope("GET", path)
    )
    assert all(h in sent.headers for h in CONSOLE) and NOSNIFF in sent.headers


@pytest.mark.parametrize("path", ["/v1/models", "/tenant/v1/keys", "/consoles", "/healthz"])
def test_no_console_headers_elsewhere(path: str) -> None:
    sent = run(SecurityHeadersMiddleware(FakeApp(), tls=False), http_scope("GET", path))
    assert not any(h in sent.headers for h in CONSOLE)


# Errors (its opaque-500 and mid-stream cases are in test_errors.py) --------------------------


@pytest.mark.parametrize("path", ["/console", "/console/keys"])
def test_a_console_page_without_a_session_goes_to_sign_in(path: str) -> None:
    app = ErrorMiddleware(FakeApp(raises=Unauthenticated("no")))
    sent = run(app, http_scope("GET", path))
    assert sent.status == 303 and sent.header(b"location") == b"/console/login"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/console/api/session"), ("POST", "/console/keys"), ("GET", "/tenant/v1/keys")],
)
def test_apis_and_changes_get_the_401_itself(method: str, path: str) -> None:
    sent = run(ErrorMiddleware(FakeApp(raises=Unauthenticated("no"))), http_scope(method, path))
    assert sent.status == 401 and sent.json()["error"]["type"] == "authentication_error"


def test_errors_passes_an_answer_through_untouched() -> None:
    inner = FakeApp(status=201, body=b'{"id":"x"}')
    sent = run(ErrorMiddleware(inner), http_scope())
    assert sent.status == 201 and sent.body == b'{"id":"x"}' and len(sent.messages) == 2


def test_errors_and_request_id_together_name_a_refusal() -> None:
    app = RequestIdMiddleware(ErrorMiddleware(FakeApp(raises=ModelNotFound("gpt-x"))))
    sent = run(app, http_scope("POST", "/v1/chat/completions"))
    assert sent.status == 404 and sent.json()["error"]["code"] == "model_not_found"
    assert sent.header(b"x-request-id") is not None
    assert sent.header(b"content-length") == str(len(sent.body)).encode()


# Audit ---------------------------------------------------------------------------------------


class Sink:
    def __init__(self, healthy: bool = True) -> None:
        self.events: list[AuditEvent] = []
        self.healthy = healthy

    def emit(self, event: AuditEvent) -> int:
        self.events.append(event)
        return len(self.events)

    async def durable(self, ticket: int) -> None:
        return None

    def flush(self, timeout: float = 5.0) -> None:
        return None

    def state(self) -> WriterState:
        return WriterState(healthy=self.healthy, backlog=0)

    def close(self) -> None:
        return None


def audited(inner: FakeApp, sink: Sink, skip: frozenset[str] = frozenset()) -> AuditMiddleware:
    return AuditMiddleware(inner, sink=sink, metrics=Metrics(), skip=skip)


def test_audit_records_one_event_with_the_status_sent() -> None:
    sink = Sink()
    scope = scope_at("GET", "/v1/models")
    run(audited(FakeApp(status=200), sink), scope)
    (event,) = sink.events
    assert event.status == 200 and event.outcome == "success"
    assert event.request_id == "req_t" and event.action == "http:GET /v1/models"
    assert scope[EXCHANGE].status == 0  # the outermost layer records it, not this one


def test_audit_records_a_refusal_below_as_a_denial_and_lets_it_rise() -> None:
    sink = Sink()
    refusal = PermissionDenied("no", policy="tenant.deny-nights")
    with pytest.raises(PermissionDenied):
        run(audited(FakeApp(raises=refusal), sink), scope_at())
    (event,) = sink.events
    assert event.status == 403 and event.decision == "deny"
    assert event.reason == "permission_denied:tenant.deny-nights"


@pytest.mark.parametrize(
    ("refused", "status", "reason"),
    [
        (MethodNotAllowed("no", allow=("POST",)), 405, "method_not_allowed"),
        (RuleRefused("not yours", rule="rules.grantable"), 400, "rule_refused:rules.grantable"),
    ],
)
def test_a_wrong_method_and_a_self_service_rule_are_denials(
    refused: Exception, status: int, reason: str
) -> None:
    sink = Sink()
    with pytest.raises(type(refused)):
        run(audited(FakeApp(raises=refused), sink), scope_at())
    (event,) = sink.events
    assert (event.status, event.decision, event.reason) == (status, "deny", reason)


def test_audit_refuses_everything_while_the_writer_cannot_write() -> None:
    sink, inner = Sink(healthy=False), FakeApp()
    with pytest.raises(AuditUnavailable):
        run(audited(inner, sink), scope_at())
    assert not inner.called
    assert [e.status for e in sink.events] == [503]  # the refusal is queued too


def test_audit_skips_the_public_paths() -> None:
    sink, inner = Sink(), FakeApp()
    scope = http_scope("GET", "/healthz")  # no exchange: the skipped path never needs one
    run(audited(inner, sink, skip=frozenset({"/healthz"})), scope)
    assert inner.called and not sink.events


def test_audit_records_a_stream_once_when_it_ends() -> None:
    sink = Sink()
    inner = FakeApp(stream=[b"data: {}\n\n", b"data: {}\n\n", b"data: [DONE]\n\n"])
    into = Sent()
    run(audited(inner, sink), scope_at(), into=into)
    assert len(sink.events) == 1 and into.complete
