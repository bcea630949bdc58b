"""What the metrics read at scrape time: API key ages, the limiter's store, local workers.

Each reader runs on the metrics listener's thread when Prometheus scrapes, never
on a request: the alert rules in ``deploy/prometheus/`` are written against
what these export (``docs/operations.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from bulkhead.limits import InMemoryLimiter, Limiter
from bulkhead.observe import Metrics
from bulkhead.observe.collectors import WorkerFacts
from bulkhead.runtime import WorkerSupervisor
from bulkhead.store import Catalog, Snapshot
from bulkhead.store.schema import utcnow


def watch(metrics: Metrics, catalog: Catalog, limiter: Limiter, workers: WorkerSupervisor) -> None:
    """Register the scrape-time readers on `metrics` (once per `Metrics`)."""
    metrics.watch_api_key_ages(lambda: api_key_ages(catalog.snapshot, utcnow()))
    if isinstance(limiter, InMemoryLimiter):
        metrics.watch_limiter("memory", lambda: True)
    else:
        # Not imported before: only a gateway with Redis loads its client (`app.backends`).
        from bulkhead.limits.redis_limiter import RedisLimiter

        if isinstance(limiter, RedisLimiter):
            metrics.watch_limiter("redis", limiter.answers)
    metrics.watch_workers(worker_facts(workers))


def api_key_ages(snapshot: Snapshot, now: datetime) -> dict[str, float]:
    """Per tenant (by name; platform principals' keys under ``_platform``), the age in
    seconds of the oldest API key that still works: neither revoked nor expired."""
    oldest: dict[str, datetime] = {}
    for key in snapshot.keys.values():
        if key.created_at is None or not key.usable_at(now):
            continue
        if key.tenant_id is None:
            owner = PLATFORM_KEY_OWNER
        else:
            tenant = snapshot.tenants.get(key.tenant_id)
            if tenant is None:
                continue  # a deleted tenant's key: it authenticates nothing
            owner = tenant.name
        if owner not in oldest or key.created_at < oldest[owner]:
            oldest[owner] = key.created_at
    return {owner: (now - made).total_seconds() for owner, made in oldest.items()}


def worker_facts(workers: WorkerSupervisor) -> Callable[[], list[WorkerFacts]]:
    def read() -> list[WorkerFacts]:
        return [
            WorkerFacts(
                deployment=str(s["deployment"]),
                model=str(s["model"]),
                restarts=int(str(s["restarts"])),
                ready=bool(s["ready"]),
                failed=s["state"] == "failed",
            )
            for s in workers.status()
        ]

    return read
