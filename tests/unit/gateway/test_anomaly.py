"""The anomaly layer: throttled keys refused before the model, every finished request observed."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from bulkhead.domain import (
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.errors import NotFound, RateLimited
from bulkhead.gateway.anomaly import AnomalyMiddleware, max_tokens, prompt_digest, wants_logprobs
from bulkhead.gateway.endpoints import match
from bulkhead.guard.anomaly import (
    CROSS_TENANT_PROBING,
    EXTRACTION_DIVERSITY,
    LOGPROB_HARVESTING,
    AnomalyDetector,
    Thresholds,
)
from bulkhead.observe.alerts import Alert
from bulkhead.web.scope import (
    CONTEXT,
    ENDPOINT,
    EXCHANGE,
    JSON,
    Exchange,
    Message,
    Receive,
    Scope,
    Send,
)

SECRET_PROMPT = "my card is 6222 0212 3456 7890 123"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def caller(tenant_id: str = "t-acme", key: str = "k-1") -> TenantContext:
    tenant = Tenant(id=tenant_id, name="acme", tier=Tier.SHARED, status=TenantStatus.ACTIVE)
    p = Principal("p-1", tenant.id, "svc", PrincipalKind.SERVICE, frozenset({Role.END_USER}))
    return TenantContext(tenant=tenant, principal=p, role=Role.END_USER, credential_id=key)


class Rig:
    def __init__(self, *, opted_in: bool = False, thresholds: Thresholds | None = None) -> None:
        self.clock = Clock()
        self.alerts: list[Alert] = []
        self.detector = AnomalyDetector(
            alert=self.alerts.append,
            thresholds=thresholds,
            throttle_on_alert=lambda tenant_id: opted_in,
            now=self.clock,
        )
        self.reached = 0

    def call(
        self,
        app: Any,
        path: str = "/v1/chat/completions",
        body: dict[str, Any] | None = None,
        ctx: TenantContext | None = None,
    ) -> list[Message]:
        sent: list[Message] = []
        scope: Scope = {"type": "http", "method": "POST", "path": path, "headers": []}
        scope[ENDPOINT] = match("POST", path)
        scope[EXCHANGE] = Exchange(request_id="req_1", started=time.perf_counter(), client=None)
        scope[CONTEXT] = ctx or caller()

        async def inner(scope: Scope, receive: Receive, send: Send) -> None:
            self.reached += 1
            scope[JSON] = body or {}
            await app(scope, receive, send)

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        layer = AnomalyMiddleware(inner, detector=self.detector)
        asyncio.run(layer(scope, receive, send))
        return sent


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    scope[EXCHANGE].prompt_tokens, scope[EXCHANGE].completion_tokens = 12, 30
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}", "more_body": False})


async def missing(scope: Scope, receive: Receive, send: Send) -> None:
    raise NotFound("No such file.")


def chat(text: str, **options: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **options}


def test_probing_through_the_layer_alerts_and_throttles_then_recovers() -> None:
    rig = Rig(opted_in=True)
    for i in range(20):
        with pytest.raises(NotFound):
            rig.call(missing, path=f"/v1/files/file-{i:04d}")
    assert [a.kind for a in rig.alerts] == [CROSS_TENANT_PROBING]

    reached = rig.reached
    with pytest.raises(RateLimited) as refused:
        rig.call(ok)
    assert refused.value.retry_after_s == 300
    assert rig.reached == reached  # Refused before the model.
    rig.call(ok, ctx=caller(key="k-2"))  # Another key of the same tenant passes.
    rig.call(ok, path="/tenant/v1/keys")  # Management stays open, so the key can be revoked.

    rig.clock.t += 301
    assert rig.call(ok)[0]["status"] == 200


def test_without_opt_in_the_key_is_not_throttled() -> None:
    rig = Rig(opted_in=False)
    for i in range(25):
        with pytest.raises(NotFound):
            rig.call(missing, path=f"/v1/files/file-{i}")
    assert [a.kind for a in rig.alerts] == [CROSS_TENANT_PROBING]
    assert rig.call(ok)[0]["status"] == 200


def test_extraction_features_are_read_from_the_body() -> None:
    rig = Rig(thresholds=Thresholds(diverse_min=100, logprobs_min=50))
    for i in range(160):
        rig.call(ok, body=chat(f"{SECRET_PROMPT} #{i}", logprobs=True, top_logprobs=5))
    assert {a.kind for a in rig.alerts} == {EXTRACTION_DIVERSITY, LOGPROB_HARVESTING}
    assert SECRET_PROMPT not in repr(rig.alerts) + repr([a.to_json() for a in rig.alerts])


def test_embeddings_are_not_counted_for_diversity() -> None:
    rig = Rig(thresholds=Thresholds(diverse_min=100))
    for i in range(160):
        rig.call(ok, path="/v1/embeddings", body={"model": "e", "input": f"doc {i}"})
    assert rig.alerts == []


def test_tokens_come_from_the_exchange() -> None:
    rig = Rig(thresholds=Thresholds(warmup_buckets=0, floors=(1e9, 100.0, 1e9, 1e9)))
    rig.call(ok)
    rig.call(ok)  # 84 tokens in the bucket: under the floor of 100.
    assert rig.alerts == []
    rig.call(ok)
    assert [a.figures["observed"] for a in rig.alerts] == [126.0, 126.0]  # The key and tenant.


def test_requests_without_a_tenant_pass_untouched() -> None:
    rig = Rig()
    p = Principal("p-a", None, "admin", PrincipalKind.USER, frozenset({Role.PLATFORM_ADMIN}))
    admin = TenantContext(tenant=None, principal=p, role=Role.PLATFORM_ADMIN, credential_id="k")
    assert rig.call(ok, ctx=admin)[0]["status"] == 200
    assert rig.detector.tracked == (0, 0, 0)


def test_a_broken_detector_never_fails_the_request(caplog: Any) -> None:
    def alert(alert: Alert) -> None:
        raise RuntimeError(SECRET_PROMPT)

    rig = Rig()
    rig.detector.alert = alert
    with caplog.at_level(logging.ERROR, logger="bulkhead.gateway"):
        for i in range(20):
            with pytest.raises(NotFound):  # The request's own error, not the detector's.
                rig.call(missing, path=f"/v1/files/file-{i}")
    assert "anomaly detector failed: RuntimeError" in caplog.text
    assert SECRET_PROMPT not in caplog.text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"logprobs": True}, True),
        ({"logprobs": False}, False),
        ({"logprobs": 0}, True),  # completions: the sampled token's logprob
        ({"logprobs": 5}, True),
        ({"top_logprobs": 3}, True),
        ({"logprobs": None}, False),
        ({}, False),
    ],
)
def test_wants_logprobs(body: dict[str, Any], expected: bool) -> None:
    assert wants_logprobs(body) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 1}, 1),
        ({"max_completion_tokens": 2, "max_tokens": 9}, 2),
        ({"max_tokens": True}, None),
        ({"max_tokens": "1"}, None),
        ({}, None),
    ],
)
def test_max_tokens(body: dict[str, Any], expected: int | None) -> None:
    assert max_tokens(body) == expected


def test_prompt_digest_follows_what_varies() -> None:
    assert prompt_digest(chat("a")) == prompt_digest(chat("a"))
    assert prompt_digest(chat("a")) != prompt_digest(chat("b"))
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]}
    assert prompt_digest(parts) is not None
    assert prompt_digest({"prompt": "a"}) != prompt_digest({"prompt": ["a", "b"]})
    assert prompt_digest({"prompt": [[1, 2], [3]]}) is not None
    assert prompt_digest({"messages": "not a list"}) is None


def test_no_detector_steps_aside() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/v1/models", "headers": []}
    scope[CONTEXT] = caller()
    scope[EXCHANGE] = Exchange(request_id="req_1", started=time.perf_counter(), client=None)
    asyncio.run(AnomalyMiddleware(ok, detector=None)(scope, receive, send))
    assert sent[0]["status"] == 200


def test_a_refusal_naming_no_model_by_name_is_observed_all_the_same(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A `model` that is a list (unhashable) once made the observation fail, and go unseen."""
    rig = Rig()
    with caplog.at_level(logging.ERROR, logger="bulkhead.gateway"):
        for i in range(20):
            with pytest.raises(NotFound):
                rig.call(missing, path=f"/v1/files/file-{i:04d}", body={"model": [i]})
    assert not caplog.records
    assert [a.kind for a in rig.alerts] == [CROSS_TENANT_PROBING]
