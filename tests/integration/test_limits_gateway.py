"""Limits through the gateway: headers, 429s, budgets, key limits, stream cut-off, fail-closed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayThread, UpstreamThread, http
from tests.support.redis_server import RedisServer, redis_server
from tests.support.webhook import WebhookReceiver


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamThread]:
    thread = UpstreamThread(chunks=40).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver().running() as receiver:
        yield receiver


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, hook: WebhookReceiver
) -> Iterator[GatewayThread]:
    env = {"BULKHEAD_ALERT_WEBHOOK_URL": hook.url}
    if request.param == "redis":
        env["BULKHEAD_REDIS_URL"] = request.getfixturevalue("redis").url
    gw = GatewayThread(tmp_path_factory.mktemp("limits") / "data", None, env=env).start()
    assert gw.app.admission is not None
    gw.app.admission.counter.load()  # type: ignore[attr-defined]
    yield gw
    gw.stop()


_names = iter(range(10_000))


@pytest.fixture
def tenant(gateway: GatewayThread, upstream: UpstreamThread) -> str:
    name = f"lim{next(_names)}"
    gateway.tenant(name)
    gateway.model(f"{name}-m", upstream.url, grant=(name,), upstream_model="fake")
    return name


def chat(name: str, content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": f"{name}-m", "messages": [{"role": "user", "content": content}], **extra}


def set_limits(gateway: GatewayThread, tenant: str, **limits: Any) -> Any:
    return gateway.must("PATCH", f"/admin/v1/tenants/{tenant}/limits", limits)


def test_tier_defaults_and_headers(gateway: GatewayThread, tenant: str) -> None:
    key = gateway.key(tenant)
    shown = gateway.must("GET", f"/admin/v1/tenants/{tenant}/limits")
    assert shown["limits"]["requests_per_minute"] == {
        "value": 600,
        "source": "tier",
        "tier_default": 600,
    }
    r = gateway.call("POST", "/v1/chat/completions", key, chat(tenant, max_tokens=5))
    assert r.status == 200
    assert r.headers["x-ratelimit-limit-requests"] == "600"
    assert r.headers["x-ratelimit-remaining-requests"] == "599"
    assert r.headers["x-ratelimit-limit-tokens"] == "100000"
    assert 100_000 - 50 < int(r.headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert r.headers["x-ratelimit-reset-requests"].endswith("s")


def test_requests_per_minute_through_every_endpoint(gateway: GatewayThread, tenant: str) -> None:
    key = gateway.key(tenant)
    set_limits(gateway, tenant, requests_per_minute=3)
    assert gateway.call("GET", "/v1/models", key).status == 200
    assert gateway.call("GET", "/v1/files", key).status == 200
    assert gateway.call("POST", "/v1/chat/completions", key, chat(tenant)).status == 200
    denied = gateway.call("GET", "/v1/models", key)
    assert denied.status == 429
    assert denied.body["error"]["code"] == "rate_limit_exceeded"
    assert "tenant rpm" in denied.body["error"]["message"]
    assert 1 <= int(denied.headers["retry-after"]) <= 60
    assert denied.headers["x-ratelimit-limit-requests"] == "3"
    assert denied.headers["x-ratelimit-remaining-requests"] == "0"
    shown = set_limits(gateway, tenant, requests_per_minute="default")
    assert shown["limits"]["requests_per_minute"]["source"] == "tier"
    assert gateway.call("GET", "/v1/models", key).status == 200


def test_tokens_per_minute_reserve_prompt_and_max_tokens(
    gateway: GatewayThread, tenant: str
) -> None:
    key = gateway.key(tenant)
    set_limits(gateway, tenant, tokens_per_minute=300)
    # Each call reserves its prompt (~9) plus max_tokens (100); the fake upstream
    # reports 100 completion tokens, so two calls fit and a third does not.
    for _ in range(2):
        assert gateway.call("POST", "/v1/completions", key, completion(tenant, 100)).status == 200
    denied = gateway.call("POST", "/v1/completions", key, completion(tenant, 100))
    assert denied.status == 429
    assert "tpm" in denied.body["error"]["message"]
    assert denied.headers["x-ratelimit-remaining-tokens"] == "0"
    # A smaller request still fits in what is left.
    assert gateway.call("POST", "/v1/completions", key, completion(tenant, 20)).status == 200


def completion(name: str, max_tokens: int) -> dict[str, Any]:
    return {"model": f"{name}-m", "prompt": "say something", "max_tokens": max_tokens}


def test_missing_max_tokens_gets_the_tier_default_and_too_many_is_refused(
    gateway: GatewayThread, upstream: UpstreamThread, tenant: str
) -> None:
    key = gateway.key(tenant)
    set_limits(gateway, tenant, default_max_tokens=7, max_tokens_per_request=50)
    assert gateway.call("POST", "/v1/chat/completions", key, chat(tenant)).status == 200
    assert upstream.fake.last_body is not None
    assert upstream.fake.last_body["max_tokens"] == 7
    too_many = gateway.call("POST", "/v1/chat/completions", key, chat(tenant, max_tokens=51))
    assert too_many.status == 400
    assert too_many.body["error"]["param"] == "max_tokens"


def test_key_limits_narrow_the_tenant(gateway: GatewayThread, tenant: str) -> None:
    narrow, key_id = new_key(gateway, tenant)
    wide = gateway.key(tenant)
    out = gateway.must(
        "PATCH", f"/admin/v1/tenants/{tenant}/keys/{key_id}/limits", {"requests_per_minute": 1}
    )
    assert out["limits"]["requests_per_minute"] == 1
    assert gateway.call("GET", "/v1/models", narrow).status == 200
    denied = gateway.call("GET", "/v1/models", narrow)
    assert denied.status == 429
    assert "key-" in denied.body["error"]["message"]
    assert gateway.call("GET", "/v1/models", wide).status == 200
    # The tenant admin may narrow its own keys; unknown limits are refused.
    bad = gateway.admin(
        "PATCH", f"/admin/v1/tenants/{tenant}/keys/{key_id}/limits", {"share_weight": 3}
    )
    assert bad.status == 400


def new_key(gateway: GatewayThread, tenant: str, **body: Any) -> tuple[str, str]:
    created = gateway.mint(tenant, **body)
    return str(created["secret"]), str(created["key"]["id"])


def test_another_tenants_key_is_not_found(gateway: GatewayThread, tenant: str) -> None:
    other = f"{tenant}x"
    gateway.tenant(other)
    _, foreign = new_key(gateway, other)
    r = gateway.admin(
        "PATCH", f"/admin/v1/tenants/{tenant}/keys/{foreign}/limits", {"concurrency": 1}
    )
    assert r.status == 404


def test_stream_is_cut_off_when_its_reservation_is_spent(
    gateway: GatewayThread, tenant: str
) -> None:
    key = gateway.key(tenant)
    # The fake upstream ignores max_tokens and streams 40 chunks of one or two tokens.
    r = gateway.call("POST", "/v1/chat/completions", key, chat(tenant, stream=True, max_tokens=6))
    assert r.status == 200
    events = [
        json.loads(line[6:]) for line in r.raw.decode().splitlines() if line.startswith("data: {")
    ]
    assert r.raw.endswith(b"data: [DONE]\n\n")
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    pieces = [e["choices"][0]["delta"].get("content") for e in events]
    # Never past the reservation: one generated token per event at the least.
    assert len([p for p in pieces if p]) == 6


def test_budget_per_day(gateway: GatewayThread, tenant: str) -> None:
    key = gateway.key(tenant)
    set_limits(gateway, tenant, tokens_per_day=150)
    assert gateway.call("POST", "/v1/completions", key, completion(tenant, 100)).status == 200
    denied = gateway.call("POST", "/v1/completions", key, completion(tenant, 100))
    assert denied.status == 429
    assert "tokens_per_day" in denied.body["error"]["message"]
    assert int(denied.headers["retry-after"]) <= 86_400


def test_failed_upstream_call_is_refunded(
    gateway: GatewayThread, upstream: UpstreamThread, tenant: str
) -> None:
    key = gateway.key(tenant)
    gateway.model(f"{tenant}-bad", upstream.url, grant=(tenant,), upstream_model="fail-x")
    set_limits(gateway, tenant, tokens_per_minute=1000, requests_per_minute=2)
    body = {"model": f"{tenant}-bad", "prompt": "x", "max_tokens": 900}
    for _ in range(5):
        assert gateway.call("POST", "/v1/completions", key, body).status == 502
    # Neither the requests nor the tokens of the failed calls were kept.
    assert gateway.call("POST", "/v1/completions", key, completion(tenant, 900)).status == 200


def test_concurrency_limit(gateway: GatewayThread, upstream: UpstreamThread, tenant: str) -> None:
    key = gateway.key(tenant)
    gateway.model(f"{tenant}-slow", upstream.url, grant=(tenant,), upstream_model="slow-x")
    set_limits(gateway, tenant, concurrency=1)
    upstream.fake.slow_s = 1.0
    results: list[int] = []
    body = {"model": f"{tenant}-slow", "prompt": "x", "max_tokens": 1}
    t = threading.Thread(
        target=lambda: results.append(gateway.call("POST", "/v1/completions", key, body).status)
    )
    t.start()
    time.sleep(0.3)
    second = gateway.call("GET", "/v1/models", key)
    t.join()
    assert results == [200]
    assert second.status == 429
    assert "concurrency" in second.body["error"]["message"]
    assert gateway.call("GET", "/v1/models", key).status == 200


def test_limits_api_validates(gateway: GatewayThread, tenant: str) -> None:
    for bad in ({"requests_per_minute": -1}, {"share_weight": 0}, {"nope": 1}, {}):
        r = gateway.admin("PATCH", f"/admin/v1/tenants/{tenant}/limits", bad)
        assert r.status == 400, bad
    assert (
        gateway.admin("PATCH", "/admin/v1/tenants/missing/limits", {"concurrency": 1}).status == 404
    )


def test_tenant_sees_its_own_limits_only(gateway: GatewayThread, tenant: str) -> None:
    admin_key = gateway.key(tenant, role="tenant_admin")
    r = gateway.call("GET", "/tenant/v1/limits", admin_key)
    assert r.status == 200
    assert r.body["tenant"] == tenant
    # It narrows one of its keys, and cannot reach another tenant's.
    _, mine = new_key(gateway, tenant)
    path = f"/tenant/v1/keys/{mine}/limits"
    r = gateway.call("PATCH", path, admin_key, {"tokens_per_minute": 500})
    assert r.status == 200
    assert r.body["limits"]["tokens_per_minute"] == 500
    other = f"{tenant}y"
    gateway.tenant(other)
    _, foreign = new_key(gateway, other)
    r = gateway.call("PATCH", f"/tenant/v1/keys/{foreign}/limits", admin_key, {"concurrency": 1})
    assert r.status == 404


def test_redis_down_fails_closed_unless_the_tenant_says_open(
    tmp_path: Path, upstream: UpstreamThread, hook: WebhookReceiver
) -> None:
    with redis_server() as server:
        env = {"BULKHEAD_REDIS_URL": server.url, "BULKHEAD_ALERT_WEBHOOK_URL": hook.url}
        gw = GatewayThread(tmp_path / "data", None, env=env).start()
        try:
            for name in ("closed", "open"):
                gw.tenant(name)
                gw.model(f"{name}-m", upstream.url, grant=(name,), upstream_model="fake")
            gw.must("PATCH", "/admin/v1/tenants/open/config", {"limits_fail_open": True})
            closed, opened = gw.key("closed"), gw.key("open")
            assert gw.call("POST", "/v1/chat/completions", closed, chat("closed")).status == 200
            server.stop()
            before = len(hook.bodies)
            for _ in range(3):
                r = gw.call("POST", "/v1/chat/completions", closed, chat("closed"))
                assert r.status == 503
                assert r.body["error"]["message"] == "The rate limiter is unavailable."
                assert gw.call("POST", "/v1/chat/completions", opened, chat("open")).status == 200
            # One alert and one audit event per tenant and minute, not one per call.
            alerts = hook.wait_for(before + 1)[before:]
            assert alerts == [{"alert": "limits.fail_open", "tenant_id": alerts[0]["tenant_id"]}]
            events = [e for e in gw.audit_events() if e["action"] == "system:limits.fail_open"]
            assert len(events) == 1
            assert gw.admin("GET", "/admin/v1/tenants").status == 200  # management still works
        finally:
            gw.stop()


def test_replicas_on_one_redis_never_admit_more_than_the_limit(
    tmp_path: Path, upstream: UpstreamThread, redis: RedisServer
) -> None:
    """Two gateways (own limiter objects, one Redis), many concurrent clients."""
    env = {"BULKHEAD_REDIS_URL": redis.url}
    first = GatewayThread(tmp_path / "data", None, env=env).start()
    db = f"sqlite:///{tmp_path / 'data' / 'bulkhead.db'}"
    second = GatewayThread(tmp_path / "data", db, env=env).start()
    try:
        first.tenant("rep")
        first.model("rep-m", upstream.url, grant=("rep",), upstream_model="fake")
        set_limits(first, "rep", requests_per_minute=40, tokens_per_minute=2_000)
        key = first.key("rep")
        second.app.catalog.reload()
        statuses: list[int] = []
        tokens: list[int] = []
        lock = threading.Lock()

        def client(gw: GatewayThread) -> None:
            for _ in range(15):
                body = {"model": "rep-m", "prompt": "count me", "max_tokens": 60}
                r = http("POST", gw.url + "/v1/completions", key, body)
                with lock:
                    statuses.append(r.status)
                    if r.status == 200:
                        tokens.append(r.body["usage"]["total_tokens"])

        threads = [threading.Thread(target=client, args=(g,)) for g in (first, second) * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(statuses) <= {200, 429}
        # Each admitted call reserved ~63 tokens: the token limit binds before the request one.
        assert sum(tokens) <= 2_000
        assert statuses.count(200) <= 40
        assert statuses.count(200) >= 2_000 // 70
    finally:
        second.stop()
        first.stop()


def test_vllm_upstreams_get_a_per_tenant_cache_salt(
    gateway: GatewayThread, upstream: UpstreamThread
) -> None:
    a, b = f"salt{next(_names)}", f"salt{next(_names)}"
    for t in (a, b):
        gateway.tenant(t)
    gateway.model(f"{a}-v", upstream.url, grant=(a, b), upstream_model="fake", engine="vllm")
    gateway.model(f"{a}-o", upstream.url, grant=(a,), upstream_model="fake")
    salts = []
    for t in (a, b, a):
        key = gateway.key(t)
        body = {"model": f"{a}-v", "prompt": "x", "max_tokens": 1, "cache_salt": "mine"}
        assert gateway.call("POST", "/v1/completions", key, body).status == 200
        assert upstream.fake.last_body is not None
        salts.append(upstream.fake.last_body["cache_salt"])
    assert salts[0] == salts[2] != salts[1]  # stable per tenant, different across tenants
    assert "mine" not in salts and all(len(s) >= 40 for s in salts)
    # Other upstreams never see a salt, and a client's own is dropped.
    key = gateway.key(a)
    body = {"model": f"{a}-o", "prompt": "x", "max_tokens": 1, "cache_salt": "mine"}
    assert gateway.call("POST", "/v1/completions", key, body).status == 200
    assert upstream.fake.last_body is not None
    assert "cache_salt" not in upstream.fake.last_body


@pytest.mark.serial
def test_a_flooding_tenant_does_not_starve_another_on_a_shared_model(
    tmp_path: Path, upstream: UpstreamThread
) -> None:
    env = {"BULKHEAD_QUEUE_WAIT_MS": "1500"}
    gw = GatewayThread(tmp_path / "data", None, env=env).start()
    try:
        for name in ("flood", "quiet"):
            gw.tenant(name)
            gw.grant("admin:quota_requests.approve", name)  # above the tier: a grant
            set_limits(gw, name, concurrency=None, requests_per_minute=None)
        gw.must("POST", "/admin/v1/models", {
            "name": "cap2", "upstream": upstream.url, "upstream_model": "slow-x",
            "max_in_flight": 2,
        })  # fmt: skip
        gw.must("POST", "/admin/v1/models/cap2/grants", {"tenant": "flood"})
        gw.must("POST", "/admin/v1/models/cap2/grants", {"tenant": "quiet"})
        upstream.fake.slow_s = 0.25
        flood, quiet = gw.key("flood"), gw.key("quiet")
        body = {"model": "cap2", "prompt": "x", "max_tokens": 1}
        statuses: list[int] = []

        def flooding() -> None:
            statuses.append(gw.call("POST", "/v1/completions", flood, body).status)

        threads = [threading.Thread(target=flooding) for _ in range(16)]
        for t in threads:
            t.start()
        time.sleep(0.1)  # the flood holds both slots and queues the rest
        start = time.monotonic()
        assert gw.call("POST", "/v1/completions", quiet, body).status == 200
        waited = time.monotonic() - start
        for t in threads:
            t.join()
        # The quiet tenant is served at the next free slot, not behind 14 queued calls.
        assert waited < 0.9, waited
        # The flood's calls that waited past the bound got 429s, not a hang.
        assert set(statuses) == {200, 429}
    finally:
        upstream.fake.slow_s = 2.0
        gw.stop()


def test_a_tier_change_moves_the_default_limits(gateway: GatewayThread, tenant: str) -> None:
    key = gateway.key(tenant)
    assert gateway.call("GET", "/v1/models", key).headers["x-ratelimit-limit-requests"] == "600"
    moved = gateway.must("PATCH", f"/admin/v1/tenants/{tenant}", {"tier": "dedicated"})
    assert moved["tier"] == "dedicated"
    r = gateway.call("GET", "/v1/models", key)
    assert r.headers["x-ratelimit-limit-requests"] == "12000"
    assert gateway.admin("PATCH", f"/admin/v1/tenants/{tenant}", {}).status == 400
