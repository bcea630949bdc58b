"""The retention writer's backlog is bounded: a tenant that outruns it gets 503, not loss."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bulkhead.domain import Tenant, TenantStatus, Tier
from bulkhead.errors import Unavailable
from bulkhead.store import retention
from bulkhead.store.retention import Captured, RetentionStore


class Stuck(RetentionStore):
    """A store whose writer waits until told to go on."""

    def __init__(self) -> None:
        super().__init__(db=None, keyring=None)  # type: ignore[arg-type]
        self.go = threading.Event()
        self.kept: list[str] = []

    def store(self, captured: Captured) -> str:
        self.go.wait(10)
        self.kept.append(captured.request_id)
        return captured.request_id


def tenant(name: str) -> Tenant:
    return Tenant(id=f"id-{name}", name=name, tier=Tier.SHARED, status=TenantStatus.ACTIVE)


def captured(who: Tenant, size: int, n: int = 0) -> Captured:
    return Captured(who, f"r{n}", "m", b"x" * size, b"", truncated=False)


def test_a_tenant_that_outruns_the_writer_is_refused_until_it_catches_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retention, "MAX_TENANT_BACKLOG", 1000)
    monkeypatch.setattr(retention, "MAX_BACKLOG", 5000)
    store, fast, calm = Stuck(), tenant("fast"), tenant("calm")
    for n in range(3):
        store.admit(fast)
        store.submit(captured(fast, 400, n))
    with pytest.raises(Unavailable):
        store.admit(fast)
    store.admit(calm)  # another tenant's calls are still kept
    store.go.set()
    store.close()
    assert store.kept == ["r0", "r1", "r2"]
    store.admit(fast)  # caught up


def test_the_whole_backlog_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "MAX_TENANT_BACKLOG", 10_000)
    monkeypatch.setattr(retention, "MAX_BACKLOG", 1000)
    store: Any = Stuck()
    for n in range(3):
        store.submit(captured(tenant(f"t{n}"), 400, n))
    with pytest.raises(Unavailable):
        store.admit(tenant("another"))
    store.go.set()
    store.close()
