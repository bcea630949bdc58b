"""What is asked: the body, authorization, admission and input-guard layers, each on its own.

Each wraps a fake inner app (`bulkhead.testing.asgi`).  The input guard's
rewriting is tested at length in test_guard.py; here only what the layer
sets and when it steps aside.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from bulkhead.domain import TenantContext
from bulkhead.errors import (
    InvalidRequest,
    MalformedJSON,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UnsupportedMediaType,
)
from bulkhead.gateway.admit import TICKET, AdmissionMiddleware
from bulkhead.gateway.authorize import AuthorizationMiddleware
from bulkhead.gateway.body import BodyMiddleware
from bulkhead.gateway.endpoints import match
from bulkhead.gateway.guard import GUARDED, GuardInMiddleware
from bulkhead.gateway.guards import GuardBook
from bulkhead.limits import LimiterUnavailable
from bulkhead.policy import CedarAuthorizer
from bulkhead.testing.asgi import FakeApp, http_scope, run, scripted_receive
from bulkhead.web.scope import BODY, ENDPOINT, EXCHANGE, JSON, MODEL, OUTGOING, Scope
from tests.support.chain import (
    CHAT_MODEL,
    OPERATOR,
    World,
    caller,
    chat_body,
    scope_at,
    tenant_with,
)

JSON_TYPE = [(b"content-type", b"application/json")]

# Body ----------------------------------------------------------------------------------------


def at(method: str, path: str, **options: Any) -> Scope:
    """A scope as the endpoint layer leaves it."""
    return http_scope(method, path, **options, **{ENDPOINT: match(method, path)})


def body_layer(inner: FakeApp, limit: int = 1024) -> BodyMiddleware:
    return BodyMiddleware(inner, limit=limit, file_limit=4096)


def test_body_is_read_once_parsed_and_replayed() -> None:
    inner = FakeApp()
    raw = orjson.dumps(chat_body())
    scope = at("POST", "/v1/chat/completions", headers=JSON_TYPE)
    run(body_layer(inner), scope, [raw[:10], raw[10:]])
    assert inner.seen[BODY] == raw and inner.seen[JSON] == chat_body()
    assert inner.received == raw  # the inner app can still read the body itself


def test_a_get_passes_without_a_body() -> None:
    inner = FakeApp()
    scope = at("GET", "/v1/models")
    run(body_layer(inner), scope)
    assert inner.called and BODY not in scope and JSON not in scope


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    inner = FakeApp()
    scope = at("POST", "/v1/chat/completions", headers=[(b"content-length", b"5000")])
    with pytest.raises(PayloadTooLarge):
        run(body_layer(inner), scope, b"{}")
    assert not inner.called


def test_a_body_growing_past_the_limit_is_refused() -> None:
    scope = at("POST", "/v1/chat/completions")
    with pytest.raises(PayloadTooLarge):
        run(body_layer(FakeApp()), scope, [b"x" * 600, b"x" * 600])


def test_a_client_that_leaves_mid_body_is_a_400() -> None:
    scope = at("POST", "/v1/chat/completions")
    with pytest.raises(InvalidRequest, match="disconnected"):
        receive = scripted_receive([b'{"a":', b"1}"], disconnect=True)
        run(body_layer(FakeApp()), scope, receive=receive)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{not json", MalformedJSON),
        (b"[1, 2]", InvalidRequest),
        (b"", InvalidRequest),
    ],
)
def test_a_body_that_is_no_json_object_is_refused(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        run(body_layer(FakeApp()), at("POST", "/v1/embeddings"), raw)


def test_a_body_labelled_other_than_json_is_a_415() -> None:
    scope = at("POST", "/v1/chat/completions", headers=[(b"content-type", b"text/plain")])
    with pytest.raises(UnsupportedMediaType):
        run(body_layer(FakeApp()), scope, orjson.dumps(chat_body()))


def test_uploads_and_management_bodies_are_kept_raw() -> None:
    for path in ("/v1/files", "/tenant/v1/keys"):
        inner = FakeApp()
        run(body_layer(inner), at("POST", path), b"not json")
        assert inner.seen[BODY] == b"not json" and JSON not in inner.seen


# Authorization -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cedar() -> CedarAuthorizer:
    return CedarAuthorizer()


def authorize(
    cedar: CedarAuthorizer,
    scope: Scope,
    inner: FakeApp | None = None,
) -> FakeApp:
    inner = inner or FakeApp()
    world = World()
    layer = AuthorizationMiddleware(
        inner,
        authorizer=cedar,
        catalog=world,  # type: ignore[arg-type]
        public=frozenset({"/healthz"}),
    )
    run(layer, scope)
    return inner


def test_a_model_call_resolves_the_model_it_may_use(cedar: CedarAuthorizer) -> None:
    scope = scope_at(body=chat_body(), ctx=caller())
    inner = authorize(cedar, scope)
    assert inner.seen[MODEL] == CHAT_MODEL
    ex = scope[EXCHANGE]
    assert (ex.surface, ex.action, ex.model) == ("v1", "v1:chat", "chat-small")


@pytest.mark.parametrize(
    ("body", "ctx"),
    [
        pytest.param(chat_body(model="no-such-model"), caller(), id="unknown"),
        pytest.param(chat_body(), caller(key_models=frozenset({"other"})), id="key-scoped"),
    ],
)
def test_a_model_the_caller_may_not_use_is_not_found(
    cedar: CedarAuthorizer, body: dict[str, Any], ctx: TenantContext
) -> None:
    inner = FakeApp()
    with pytest.raises(ModelNotFound):
        authorize(cedar, scope_at(body=body, ctx=ctx), inner)
    assert not inner.called


def test_a_model_without_the_endpoint_is_a_400(cedar: CedarAuthorizer) -> None:
    body = {"model": "embed-small", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(InvalidRequest, match="does not support"):
        authorize(cedar, scope_at(body=body, ctx=caller()))


def test_a_platform_credential_cannot_call_models(cedar: CedarAuthorizer) -> None:
    with pytest.raises(PermissionDenied):
        authorize(cedar, scope_at(body=chat_body(), ctx=caller(None, OPERATOR)))


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/nothing"), ("GET", "/other")])
def test_unknown_endpoints_are_404(cedar: CedarAuthorizer, method: str, path: str) -> None:
    with pytest.raises(NotFound):
        authorize(cedar, scope_at(method, path, body={}, ctx=caller()))


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/models", ("GET",)),
        ("GET", "/v1/chat/completions", ("POST",)),
        ("POST", "/v1/files/file-1", ("DELETE", "GET")),
        ("DELETE", "/v1/files/file-1/content", ("GET",)),
        ("GET", "/v1/fine_tuning/jobs/ftjob-1/cancel", ("POST",)),
        ("DELETE", "/v1/fine_tuning/jobs", ("GET", "POST")),
    ],
)
def test_a_known_path_with_another_method_is_405(
    cedar: CedarAuthorizer, method: str, path: str, allow: tuple[str, ...]
) -> None:
    with pytest.raises(MethodNotAllowed) as refused:
        authorize(cedar, scope_at(method, path, body={}, ctx=caller()))
    assert refused.value.allow == allow


def test_management_gets_its_surface_gate(cedar: CedarAuthorizer) -> None:
    scope = scope_at("GET", "/tenant/v1/keys", ctx=caller())
    assert authorize(cedar, scope).called  # the tenant router checks each route's own action
    assert (scope[EXCHANGE].surface, scope[EXCHANGE].action) == ("tenant", "tenant:surface")
    with pytest.raises(PermissionDenied):  # a tenant key may not use the platform API
        authorize(cedar, scope_at("GET", "/admin/v1/tenants", ctx=caller()))


# Admission -----------------------------------------------------------------------------------


class Ticket:
    def __init__(self) -> None:
        self.headers = [(b"x-ratelimit-remaining-requests", b"9")]
        self.outcome: tuple[Any, ...] | None = None

    def meter(self) -> None:
        return None

    def measured(self, text: str) -> tuple[int, int]:
        return 0, 0

    def settle(self, prompt: int | None, completion: int | None) -> None:
        self.outcome = ("settled", prompt, completion)

    def release(self) -> None:
        self.outcome = ("released",)


class Admission:
    """Admits every call, noting each; `refuse` makes it answer 429 instead."""

    def __init__(self, refuse: bool = False) -> None:
        self.admitted: list[str | None] = []
        self.tickets: list[Ticket] = []
        self.refuse = refuse

    def admit(self, ctx: Any, endpoint: str | None, body: Any, size: int = 0, **_: Any) -> Ticket:
        if self.refuse:
            raise RateLimited("slow down", retry_after_s=1.0)
        self.admitted.append(endpoint)
        self.tickets.append(Ticket())
        return self.tickets[-1]

    def precheck(self, *args: Any) -> None:
        return None

    def count(self, endpoint: str | None, body: Any) -> int:
        return 0


def admit(admission: Admission, inner: FakeApp, scope: Scope) -> Any:
    return run(AdmissionMiddleware(inner, admission=admission), scope)  # type: ignore[arg-type]


def status_of(status: int) -> Any:
    """What the audit layer does for the layers inside it: note the response's status."""

    def note(scope: Scope) -> None:
        scope[EXCHANGE].status = status
        scope[EXCHANGE].prompt_tokens, scope[EXCHANGE].completion_tokens = 5, 7

    return note


def test_admission_hands_a_ticket_and_settles_it_with_the_usage() -> None:
    admission, inner = Admission(), FakeApp(hook=status_of(200))
    sent = admit(admission, inner, scope_at(body=chat_body(), ctx=caller()))
    assert admission.admitted == ["chat"] and inner.seen[TICKET] is admission.tickets[0]
    assert admission.tickets[0].outcome == ("settled", 5, 7)
    assert (b"x-ratelimit-remaining-requests", b"9") in sent.headers


def test_a_failed_call_releases_its_reservation() -> None:
    admission = Admission()
    failed = FakeApp(status=502, hook=status_of(502))
    admit(admission, failed, scope_at(body=chat_body(), ctx=caller()))
    assert admission.tickets[0].outcome == ("released",)
    with pytest.raises(RuntimeError):
        admit(admission, FakeApp(raises=RuntimeError()), scope_at(body=chat_body(), ctx=caller()))
    assert admission.tickets[1].outcome == ("released",)


class LostTicket(Ticket):
    """The limiter went away during the call (Redis restarted)."""

    def settle(self, prompt: int | None, completion: int | None) -> None:
        raise LimiterUnavailable("redis")

    def release(self) -> None:
        raise LimiterUnavailable("redis")


def test_a_limiter_lost_during_the_call_leaves_the_answer_alone() -> None:
    admission = Admission()
    admission.admit = lambda *a, **k: LostTicket()  # type: ignore[method-assign]
    sent = admit(admission, FakeApp(hook=status_of(200)), scope_at(body=chat_body(), ctx=caller()))
    assert sent.status == 200
    failed = FakeApp(status=502, hook=status_of(502))
    assert admit(admission, failed, scope_at(body=chat_body(), ctx=caller())).status == 502
    with pytest.raises(RuntimeError):  # the call's own error, not the limiter's
        admit(admission, FakeApp(raises=RuntimeError()), scope_at(body=chat_body(), ctx=caller()))


def test_a_refusal_of_admission_stops_the_call() -> None:
    inner = FakeApp()
    with pytest.raises(RateLimited):
        admit(Admission(refuse=True), inner, scope_at(body=chat_body(), ctx=caller()))
    assert not inner.called


def test_admission_counts_every_v1_call_and_nothing_else() -> None:
    admission = Admission()
    admit(admission, FakeApp(), scope_at("GET", "/v1/models", ctx=caller()))
    admit(admission, FakeApp(), scope_at("GET", "/tenant/v1/keys", ctx=caller()))
    admit(admission, FakeApp(), scope_at("GET", "/v1/models"))  # no context: not a caller's
    assert admission.admitted == [None]


# Input guard (its rewriting: test_guard.py) --------------------------------------------------


@pytest.fixture
def guard_book() -> Iterator[GuardBook]:
    yield GuardBook()


def test_the_input_guard_hands_its_call_to_the_output_side_then_drops_it(
    guard_book: GuardBook,
) -> None:
    inner = FakeApp()
    ctx = caller(tenant_with(guard={"canary": True}))
    scope = scope_at(body=chat_body(), ctx=ctx, model=CHAT_MODEL)
    run(GuardInMiddleware(inner, guards=guard_book), scope)
    assert inner.seen[GUARDED] is not None and GUARDED not in scope  # the vault goes with it
    sent = inner.seen[OUTGOING].body  # what goes upstream: the canary's message first
    assert sent["messages"][0]["role"] == "system" and scope[JSON] == chat_body()


@pytest.mark.parametrize(
    ("path", "model", "book"),
    [
        pytest.param("/v1/chat/completions", CHAT_MODEL, None, id="no-guards"),
        pytest.param("/v1/models", CHAT_MODEL, GuardBook(), id="not-a-model-call"),
        pytest.param("/v1/chat/completions", None, GuardBook(), id="no-model"),
    ],
)
def test_the_input_guard_steps_aside(path: str, model: Any, book: GuardBook | None) -> None:
    inner = FakeApp()
    body = chat_body()
    scope = scope_at(path=path, body=body, ctx=caller(), model=model)
    run(GuardInMiddleware(inner, guards=book), scope)
    assert inner.called and GUARDED not in inner.seen and inner.seen[JSON] is body
