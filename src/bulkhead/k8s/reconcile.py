"""Keep a cluster in step with the catalog: read, render, apply, prune; and again.

`reconcile_once` reads the tenants, models and each tenant's limits from the
management API (`source`: anything with `get(path)`, such as the CLI's
client), renders them with the function it is given, applies everything and
prunes what Bulkhead owns and no longer renders:

- a tenant created: its objects are applied;
- a tier or its limits changed: its quota and placement objects are re-applied;
- a tenant gone from the API (Bulkhead deletes one only after destroying its
  keys): its namespaces are pruned.

It fails safe: when the catalog cannot be read (or rendered) nothing is
applied and nothing is deleted, because an empty answer from a failed read
must never look like "every tenant was deleted".  One object's failed apply
does not stop the others, but makes the run not `ok`.

`watch` runs it every `interval_s`, backing off (doubling, at most
`max_backoff_s`) while runs fail, until `stop` is set (the CLI sets it on
SIGTERM).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from bulkhead.k8s.cluster import Cluster, Report

log = logging.getLogger("bulkhead.k8s")

Json = dict[str, Any]
Renderer = Callable[[list[Json], list[Json], dict[str, Json]], list[Json]]


class ManagementSource(Protocol):
    """The management API, read with a platform key (`bulkhead.cli.client.Client`)."""

    def get(self, path: str) -> Any: ...


class CatalogUnreadable(Exception):
    """The management API did not answer (or answered nonsense): reconcile nothing."""


@dataclass(slots=True)
class ReconcileResult:
    """One run: why it stopped early (`error`), or what apply and prune did."""

    error: str | None = None
    applied: Report = field(default_factory=Report)
    pruned: Report = field(default_factory=Report)

    @property
    def ok(self) -> bool:
        return self.error is None and self.applied.ok and self.pruned.ok

    def counts(self) -> dict[str, int]:
        total: Counter[str] = Counter(self.applied.counts())
        total.update({f"pruned_{k}": v for k, v in self.pruned.counts().items()})
        return dict(total)


def read_catalog(source: ManagementSource) -> tuple[list[Json], list[Json], dict[str, Json]]:
    """Tenants, models and limits by tenant name; `CatalogUnreadable` on any failure."""
    try:
        tenants = _records(source.get("/admin/v1/tenants"))
        models = _records(source.get("/admin/v1/models"))
        limits = {}
        for tenant in tenants:
            name = tenant.get("name")
            if not isinstance(name, str) or not name:
                raise CatalogUnreadable("a tenant without a name")
            answer = source.get(f"/admin/v1/tenants/{quote(name, safe='')}/limits")
            if not isinstance(answer, dict):
                raise CatalogUnreadable(f"tenant {name}'s limits are not an object")
            limits[name] = answer
    except CatalogUnreadable:
        raise
    except Exception as exc:  # Whatever the client raised: a read failed, so stop here.
        raise CatalogUnreadable(f"{type(exc).__name__}: {exc}") from None
    return tenants, models, limits


def _records(answer: Any) -> list[Json]:
    data = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise CatalogUnreadable("a listing without a 'data' list of objects")
    if isinstance(answer, Mapping) and (answer.get("has_more") or answer.get("next")):
        # One page is not the catalog: a tenant on the next one would look deleted.
        raise CatalogUnreadable("a listing cut into pages")
    return data


def reconcile_once(
    source: ManagementSource,
    render: Renderer,
    cluster: Cluster,
    *,
    prune: bool = True,
    dry_run: bool = False,
    force: bool = False,
    allow_empty: bool = False,
) -> ReconcileResult:
    """One pass; see the module's docstring for what it does and when it does nothing.

    A catalog with no tenant at all prunes nothing unless `allow_empty`: a key for the
    wrong (or a freshly initialised) management API must not delete every tenant.
    """
    try:
        tenants, models, limits = read_catalog(source)
    except CatalogUnreadable as exc:
        return _stopped(f"management API unreadable, nothing applied or pruned: {exc}")
    try:
        objects = render(tenants, models, limits)
    except Exception as exc:  # A renderer's bug must not turn into deletions either.
        return _stopped(f"render failed, nothing applied or pruned: {type(exc).__name__}: {exc}")
    result = ReconcileResult()
    try:
        result.applied = cluster.apply(objects, dry_run=dry_run, force=force)
        if prune and not (tenants or allow_empty):
            result.error = EMPTY_CATALOG
            log.warning("k8s reconcile: %s", EMPTY_CATALOG)
        elif prune:
            result.pruned = cluster.prune(objects, dry_run=dry_run)
    except Exception as exc:  # The cluster went away mid-run: report it, try again later.
        result.error = f"{type(exc).__name__}: {exc}"
        log.warning("k8s reconcile: %s", result.error)
    log.info("k8s reconcile: %s", result.counts() or "nothing to do")
    return result


EMPTY_CATALOG = (
    "the catalog lists no tenant: nothing pruned (pass --allow-empty-catalog if every "
    "tenant really is gone)"
)


def _stopped(error: str) -> ReconcileResult:
    log.warning("k8s reconcile: %s", error)
    return ReconcileResult(error=error)


def next_delay(failures: int, interval_s: float, max_backoff_s: float) -> float:
    """The wait before the next run: the interval, doubled for each failure in a row."""
    if failures <= 0:
        return interval_s
    return float(min(max_backoff_s, interval_s * 2 ** min(failures, 32)))


def watch(
    step: Callable[[], ReconcileResult],
    *,
    stop: threading.Event,
    interval_s: float = 30.0,
    max_backoff_s: float = 300.0,
    on_result: Callable[[ReconcileResult], None] | None = None,
) -> int:
    """Run `step` until `stop` is set; the number of runs that were not `ok`."""
    failures = failed_runs = 0
    while not stop.is_set():
        try:
            result = step()
        except Exception as exc:  # One bad run never ends the loop; it backs off instead.
            result = ReconcileResult(error=f"{type(exc).__name__}: {exc}")
            log.warning("k8s reconcile: %s", result.error)
        if on_result is not None:
            on_result(result)
        failures = 0 if result.ok else failures + 1
        failed_runs += 0 if result.ok else 1
        stop.wait(next_delay(failures, interval_s, max_backoff_s))
    return failed_runs
