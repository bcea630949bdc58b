"""What the metrics read at scrape time (`app.observed`): API key ages per tenant, the
limiter's store (a real Redis, stopped mid-test), the local workers, platform key due dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from bulkhead.app.observed import api_key_ages, watch, worker_facts
from bulkhead.domain import ApiKey, Role, Tenant, TenantStatus, Tier
from bulkhead.limits import InMemoryLimiter
from bulkhead.limits.redis_limiter import RedisLimiter
from bulkhead.observe import Metrics
from bulkhead.store import Snapshot
from bulkhead.store.key_status import KeyInventory
from bulkhead.store.platform_keys import KeyInfo
from tests.support.redis_server import redis_server

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = 86_400.0


def key(kid: str, tenant_id: str | None, age_days: float, **extra: Any) -> ApiKey:
    made = NOW - timedelta(days=age_days)
    return ApiKey(kid, tenant_id, "p", Role.END_USER, b"h" * 32, created_at=made, **extra)


def tenant(tid: str, name: str) -> Tenant:
    return Tenant(tid, name, Tier.SHARED, TenantStatus.ACTIVE)


def test_oldest_usable_api_key_per_tenant_by_name() -> None:
    snapshot = Snapshot(
        keys={
            "k1": key("k1", "t1", 10),
            "k2": key("k2", "t1", 200),
            "k3": key("k3", "t1", 400, revoked_at=NOW - timedelta(days=1)),  # revoked
            "k4": key("k4", "t1", 500, expires_at=NOW - timedelta(days=1)),  # expired
            "k5": key("k5", "t2", 5),
            "k6": key("k6", None, 30),  # a platform principal's
            "k7": key("k7", "gone", 900),  # its tenant deleted
        },
        tenants={"t1": tenant("t1", "acme"), "t2": tenant("t2", "globex")},
    )
    ages = api_key_ages(snapshot, NOW)
    assert ages == {"acme": 200 * DAY, "globex": 5 * DAY, "_platform": 30 * DAY}


def test_a_key_without_a_creation_time_is_left_out() -> None:
    old = ApiKey("k1", "t1", "p", Role.END_USER, b"h" * 32)
    snapshot = Snapshot(keys={"k1": old}, tenants={"t1": tenant("t1", "acme")})
    assert api_key_ages(snapshot, NOW) == {}


class Supervisor:
    def __init__(self, rows: list[dict[str, object]]):
        self.rows = rows

    def status(self) -> list[dict[str, object]]:
        return self.rows


def test_worker_facts_come_from_the_supervisors_status() -> None:
    rows: list[dict[str, object]] = [
        {"deployment": "d1", "model": "m1", "restarts": 2, "ready": True, "state": "ready"},
        {"deployment": "d2", "model": "m2", "restarts": 5, "ready": False, "state": "failed"},
    ]
    facts = worker_facts(Supervisor(rows))()  # type: ignore[arg-type]
    assert [(f.deployment, f.restarts, f.ready, f.failed) for f in facts] == [
        ("d1", 2, True, False),
        ("d2", 5, False, True),
    ]


class Catalog:
    snapshot = Snapshot()


def test_the_redis_limiter_is_up_while_redis_answers_and_down_once_it_stops() -> None:
    with redis_server() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        metrics = Metrics()
        watch(metrics, Catalog(), RedisLimiter(client), Supervisor([]))  # type: ignore[arg-type]
        up = {"store": "redis"}
        assert metrics.registry.get_sample_value("bulkhead_limiter_up", up) == 1
        server.stop()
        assert metrics.registry.get_sample_value("bulkhead_limiter_up", up) == 0
        client.close()


def test_the_in_process_limiter_is_always_up() -> None:
    metrics = Metrics()
    watch(metrics, Catalog(), InMemoryLimiter(), Supervisor([]))  # type: ignore[arg-type]
    assert metrics.registry.get_sample_value("bulkhead_limiter_up", {"store": "memory"}) == 1


def info(kind: str, version: int, state: str, made_days: float, due_days: float | None) -> KeyInfo:
    due = None if due_days is None else NOW + timedelta(days=due_days)
    return KeyInfo(kind, "platform", version, state, "db", NOW - timedelta(days=made_days), due, "")


def test_the_inventory_remembers_the_first_rotation_due_among_keys_in_use() -> None:
    keys = [
        info("ca", 1, "trusted-only", 400, -100),  # no longer issues: not watched
        info("ca", 2, "active", 100, -10),  # overdue by ten days
        info("ca", 3, "pending", 1, 89),
        info("audit-signing", 4, "primary", 5, 360),
        info("cache-salt", 1, "primary", 50, None),  # rotation off
    ]
    inventory = KeyInventory([lambda now: keys])
    assert inventory.rotation_due() == {}  # nothing until the first table
    inventory.table(NOW)
    assert inventory.rotation_due() == {
        "ca": (NOW - timedelta(days=10)).timestamp(),
        "audit-signing": (NOW + timedelta(days=360)).timestamp(),
    }
    assert inventory.oldest_ages(NOW) == {
        "ca": 100 * DAY,
        "audit-signing": 5 * DAY,
        "cache-salt": 50 * DAY,
    }
