"""The validation layer: every body checked, by the client's own paths, before anything uses it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
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
from bulkhead.errors import InvalidRequest, PayloadTooLarge
from bulkhead.gateway.endpoints import match
from bulkhead.gateway.offload import INLINE_BYTES, Offload
from bulkhead.gateway.validation import ValidationMiddleware
from bulkhead.guard import MAX_SCAN_CHARS, MAX_SCAN_TEXTS
from bulkhead.web.scope import (
    BODY,
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


def caller() -> TenantContext:
    tenant = Tenant("t-1", "acme", Tier.SHARED, TenantStatus.ACTIVE)
    p = Principal("p-1", tenant.id, "svc", PrincipalKind.SERVICE, frozenset({Role.END_USER}))
    return TenantContext(tenant=tenant, principal=p, role=Role.END_USER, credential_id="k-1")


class Rig:
    def __init__(self, default: int | None = 256, offload: Offload | None = None) -> None:
        self.reached: list[dict[str, Any]] = []
        self.threads: list[str] = []
        self.layer = ValidationMiddleware(
            self.inner, default_length=lambda ctx: default, offload=offload or Offload()
        )

    async def inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.reached.append(scope.get(JSON) or {})

    def call(self, body: Any, path: str = "/v1/chat/completions", method: str = "POST") -> Scope:
        raw = orjson.dumps(body)
        scope: Scope = {"type": "http", "method": method, "path": path, "headers": []}
        scope.update({ENDPOINT: match(method, path), CONTEXT: caller(), BODY: raw})
        scope[JSON] = orjson.loads(raw)
        scope[EXCHANGE] = Exchange(request_id="r", started=time.perf_counter(), client=None)

        async def receive() -> Message:
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: Message) -> None:
            pass

        asyncio.run(self.layer(scope, receive, send))
        return scope


def user(content: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def test_the_outside_testers_body_is_a_400_naming_the_clients_own_field() -> None:
    rig = Rig()
    with pytest.raises(InvalidRequest) as refused:
        rig.call(user(42))
    # One message, so its index is 0: nothing has inserted a canary before this layer.
    assert refused.value.param == "messages[0].content"
    assert rig.reached == []  # admission, guards and the upstream never see it


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "m", "messages": [{"content": "no role"}]}, "messages[0]"),
        ({**user("hi"), "max_tokens": 5, "n_predict": 500_000}, "n_predict"),
        ({**user("hi"), "max_tokens": 5, "max_new_tokens": 500_000}, "max_new_tokens"),
        ({**user("hi"), "max_tokens": 5, "num_predict": 500_000}, "num_predict"),
        ({**user("hi"), "max_tokens": 1, "max_completion_tokens": 9}, "max_completion_tokens"),
        ({**user("hi"), "max_tokens": "10"}, "max_tokens"),
        ({**user("hi"), "stream": "yes"}, "stream"),
    ],
)
def test_what_would_be_forwarded_unchecked_is_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        Rig().call(body)
    assert refused.value.param == param


def test_the_tiers_default_length_is_written_in_for_the_upstream() -> None:
    rig = Rig(default=256)
    rig.call(user("hi"))
    rig.call({**user("hi"), "max_completion_tokens": 7})
    rig.call({"model": "m", "prompt": "hi"}, path="/v1/completions")
    rig.call({"model": "e", "input": "hi"}, path="/v1/embeddings")
    assert [b.get("max_tokens") for b in rig.reached] == [256, None, 256, None]
    assert Rig(default=None).call(user("hi"))[JSON].get("max_tokens") is None


def test_more_text_than_the_guards_scan_is_refused_before_admission() -> None:
    rig = Rig()
    with pytest.raises(PayloadTooLarge):
        rig.call({"model": "e", "input": ["x"] * (MAX_SCAN_TEXTS + 1)}, path="/v1/embeddings")
    assert rig.reached == []


def test_other_endpoints_pass_untouched() -> None:
    rig = Rig()
    rig.call({}, path="/v1/models", method="GET")
    rig.call({"anything": 1}, path="/tenant/v1/keys")
    assert rig.reached == [{}, {"anything": 1}]


def test_a_large_body_is_checked_on_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []

    def bounds(body: Any, **limits: int) -> None:
        threads.append(threading.current_thread().name)

    monkeypatch.setattr("bulkhead.gateway.validation.check_text_bounds", bounds)
    rig = Rig(offload=Offload(inline_bytes=128))
    rig.call(user("x" * 10))  # within the inline bound: it cannot reach the guards' bounds
    assert threads == []
    rig.call(user("x" * 200))
    assert len(threads) == 1 and threads[0] != threading.main_thread().name


def test_a_body_within_the_inline_bound_cannot_reach_the_guards_bounds() -> None:
    # Why the walk is skipped for small bodies: a text takes at least 3 bytes of JSON ("",).
    assert INLINE_BYTES < MAX_SCAN_CHARS and INLINE_BYTES // 3 < MAX_SCAN_TEXTS
