"""Where the call goes and what it leaves: route, fair share, retention, guard out.

Each wraps a fake inner app (`bulkhead.testing.asgi`).  The output guard's
filtering is tested at length in test_guard_out.py; here only when it acts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from bulkhead.domain import DeploymentKind, ResolvedModel, Retention
from bulkhead.errors import Unavailable
from bulkhead.gateway.guard import GUARDED
from bulkhead.gateway.guard_out import GuardOutMiddleware
from bulkhead.gateway.retain import RetentionMiddleware
from bulkhead.gateway.route import RouteMiddleware
from bulkhead.gateway.share import FairShareMiddleware
from bulkhead.limits import LimitExceeded
from bulkhead.limits.fairshare import FairQueues
from bulkhead.runtime import ENGINE_OPTION, Target
from bulkhead.runtime.salts import CacheSalts
from bulkhead.store.retention import Captured
from bulkhead.testing.asgi import FakeApp, drive, run
from bulkhead.web.scope import EXCHANGE, TARGET, Scope
from tests.support.chain import (
    CHAT_MODEL,
    EMBED_MODEL,
    TENANT,
    World,
    caller,
    chat_body,
    scope_at,
    tenant_with,
)
from tests.unit.gateway.test_guard_out import EMAIL, guarded


def finished(status: int, prompt: int = 3, completion: int = 4) -> Any:
    """A hook noting the status and usage, as the audit layer and the endpoints do."""

    def note(scope: Scope) -> None:
        ex = scope[EXCHANGE]
        ex.status, ex.prompt_tokens, ex.completion_tokens = status, prompt, completion

    return note


def with_deployment(**changes: Any) -> ResolvedModel:
    return ResolvedModel(CHAT_MODEL.model, dataclasses.replace(CHAT_MODEL.deployment, **changes))


# Route ---------------------------------------------------------------------------------------


class Workers:
    def target(self, key: str, timeout_s: float) -> Target:
        return Target(base_url=f"http://worker/{key}/v1", upstream_model="local", timeout_s=1.0)


def route(model: ResolvedModel | None, salts: CacheSalts | None = None) -> FakeApp:
    inner = FakeApp()
    layer = RouteMiddleware(inner, workers=Workers(), catalog=World(), salts=salts)  # type: ignore[arg-type]
    run(layer, scope_at(body=chat_body(), ctx=caller(), model=model))
    return inner


def test_route_targets_the_models_upstream() -> None:
    target = route(with_deployment(base_url="http://upstream.test/v1/", timeout_s=9.0)).seen[TARGET]
    assert target.base_url == "http://upstream.test/v1"  # no double slash before the path
    assert (target.upstream_model, target.timeout_s) == ("llama-3", 9.0)
    assert not target.opaque and target.egress is None and target.headers == {}


def test_route_sends_a_local_model_to_its_worker() -> None:
    local = with_deployment(kind=DeploymentKind.LOCAL, worker="demo")
    assert route(local).seen[TARGET].base_url == "http://worker/dep_chat/v1"


def test_a_tenants_own_upstream_is_opaque_and_under_its_egress_policy() -> None:
    target = route(with_deployment(chosen_by_tenant=True)).seen[TARGET]
    assert target.opaque and target.egress is not None


def test_a_missing_upstream_credential_is_a_503_naming_no_secret() -> None:
    with pytest.raises(Unavailable, match="credential is not available"):
        route(with_deployment(credential="openai-prod"))


def test_a_vllm_deployment_gets_the_tenants_cache_salt() -> None:
    vllm = with_deployment(options={ENGINE_OPTION: "vllm"})
    with pytest.raises(Unavailable):
        route(vllm)  # no salts configured: never sent unsalted
    salts = CacheSalts(b"s" * 32)
    target = route(vllm, salts).seen[TARGET]
    assert target.body_fields == {"cache_salt": salts.for_tenant(TENANT.id)}


def test_route_passes_calls_without_a_model() -> None:
    inner = route(None)
    assert inner.called and TARGET not in inner.seen


# Fair share ----------------------------------------------------------------------------------


def test_a_shared_model_holds_a_slot_for_the_call_only() -> None:
    queues = FairQueues(default_capacity=1, max_wait_s=0.05)
    queue = queues.for_deployment(CHAT_MODEL.deployment.id, {})
    held: list[int] = []
    inner = FakeApp(hook=lambda scope: held.append(queue.in_flight))
    run(FairShareMiddleware(inner, queues=queues), scope_at(ctx=caller(), model=CHAT_MODEL))
    assert held == [1] and queue.in_flight == 0


def test_a_full_shared_deployment_refuses_after_the_wait() -> None:
    queues = FairQueues(default_capacity=1, max_wait_s=0.05)

    async def two_calls() -> None:
        gate = asyncio.Event()

        async def slow(scope: Scope, receive: Any, send: Any) -> None:
            await gate.wait()

        layer = FairShareMiddleware(slow, queues=queues)
        first = asyncio.create_task(drive(layer, scope_at(ctx=caller(), model=CHAT_MODEL)))
        await asyncio.sleep(0)
        try:
            with pytest.raises(LimitExceeded):
                await drive(layer, scope_at(ctx=caller(), model=CHAT_MODEL))
        finally:
            gate.set()
            await first

    asyncio.run(two_calls())


@pytest.mark.parametrize("model", [EMBED_MODEL, None], ids=["private", "no-model"])
def test_private_models_pass_straight_through(model: ResolvedModel | None) -> None:
    queues = FairQueues(default_capacity=1, max_wait_s=0.05)
    inner = FakeApp()
    run(FairShareMiddleware(inner, queues=queues), scope_at(ctx=caller(), model=model))
    assert inner.called and not queues._queues


# Retention -----------------------------------------------------------------------------------


class Store:
    def __init__(self, refuse: bool = False) -> None:
        self.kept: list[Captured] = []
        self.refuse = refuse

    @staticmethod
    def wanted(tenant: Any) -> bool:
        return tenant is not None and tenant.config.retention is Retention.ENCRYPTED

    def admit(self, tenant: Any) -> None:
        if self.refuse:
            raise Unavailable("behind")

    def submit(self, captured: Captured) -> None:
        self.kept.append(captured)


KEEPING = caller(tenant_with(retention=Retention.ENCRYPTED))


def test_retention_keeps_what_the_caller_was_sent() -> None:
    store = Store()
    inner = FakeApp(body=b'{"answer":1}', hook=finished(200))
    scope = scope_at(body=chat_body(), ctx=KEEPING, model=CHAT_MODEL)
    run(RetentionMiddleware(inner, store=store), scope)  # type: ignore[arg-type]
    (kept,) = store.kept
    assert kept.response == b'{"answer":1}' and kept.request == scope["bulkhead.body"]
    assert kept.request_id == "req_t" and kept.model == "chat-small" and not kept.truncated


@pytest.mark.parametrize(
    ("ctx", "status"), [(caller(), 200), (KEEPING, 400)], ids=["not-wanted", "failed"]
)
def test_retention_keeps_nothing_else(ctx: Any, status: int) -> None:
    store = Store()
    inner = FakeApp(status=status, hook=finished(status))
    scope = scope_at(body=chat_body(), ctx=ctx, model=CHAT_MODEL)
    run(RetentionMiddleware(inner, store=store), scope)  # type: ignore[arg-type]
    assert inner.called and not store.kept


def test_retention_refuses_a_call_it_could_not_keep() -> None:
    inner = FakeApp()
    layer = RetentionMiddleware(inner, store=Store(refuse=True))  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        run(layer, scope_at(body=chat_body(), ctx=KEEPING, model=CHAT_MODEL))
    assert not inner.called


# Guard out (its filtering: test_guard_out.py) ------------------------------------------------


def answer(text: str) -> bytes:
    return b'{"choices":[{"index":0,"message":{"role":"assistant","content":"%s"}}]}' % (
        text.encode()
    )


def test_guard_out_filters_a_guarded_generation() -> None:
    scope = scope_at(body=chat_body(), ctx=caller())
    scope[GUARDED] = guarded(pii="redact")
    sent = run(GuardOutMiddleware(FakeApp(body=answer(f"mail {EMAIL}"))), scope)
    assert EMAIL.encode() not in sent.body
    assert sent.header(b"content-length") == str(len(sent.body)).encode()


@pytest.mark.parametrize(
    ("path", "call"),
    [("/v1/chat/completions", False), ("/v1/embeddings", True)],
    ids=["unguarded", "not-a-generation"],
)
def test_guard_out_passes_everything_else_untouched(path: str, call: bool) -> None:
    scope = scope_at(path=path, body=chat_body(), ctx=caller())
    if call:
        scope[GUARDED] = guarded(pii="redact")
    body = answer(f"mail {EMAIL}")
    assert run(GuardOutMiddleware(FakeApp(body=body)), scope).body == body
