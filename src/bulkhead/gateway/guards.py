"""Each tenant's `Guard`, built from its configuration once and shared by its requests.

The catalog replaces a tenant's objects whenever anything in the catalog
changes, so the book compares the stored settings, not object identity:
a reload that leaves a tenant's guard settings alone keeps its `Guard`.
Settings that fail to parse (they were validated when written, so this
means a bug or a hand-edited row) fall back to the defaults, with an error
in the log: a tenant is never left unguarded, and never locked out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bulkhead.domain import Tenant, TenantContext
from bulkhead.guard import Canary, Guard, GuardConfig, PseudonymVault, settings_of, with_floor
from bulkhead.web.scope import Exchange

log = logging.getLogger("bulkhead.gateway")

GuardHit = Callable[[TenantContext, str], None]
"""Told of each kind of finding in a request (`pii.email`, `injection`, `canary`)."""


@dataclass(frozen=True, slots=True)
class GuardedCall:
    """What the output layer needs from the input layer, for one request only.

    The vault holds the values behind this request's pseudonyms; it lives in
    the request's scope and goes nowhere else.
    """

    guard: Guard
    vault: PseudonymVault
    canary: Canary | None  # None: the tenant's canary is off
    shift: int = 0  # messages the canary put before the client's own (0 or 1)


class GuardBook:
    """Maps a tenant to the `Guard` for its current settings."""

    def __init__(self, *, build: Callable[[GuardConfig], Guard] = Guard) -> None:
        self._build = build
        self._guards: dict[str, tuple[tuple[Mapping[str, Any], ...], Guard]] = {}

    def for_tenant(self, tenant: Tenant) -> Guard:
        settings = (tenant.config.guard, tenant.config.tenant_guard)
        found = self._guards.get(tenant.id)
        if found is not None and found[0] == settings:
            return found[1]
        guard = self._build(config_of(tenant))
        self._guards[tenant.id] = (settings, guard)
        return guard


def config_of(tenant: Tenant) -> GuardConfig:
    """The tenant's guard settings (the platform's floor, tightened by the tenant's own).

    If the stored ones do not parse, the floor alone, else the defaults.
    """
    try:
        return with_floor(tenant.config.guard, tenant.config.tenant_guard)
    except (ValueError, TypeError) as exc:
        log.error("tenant %s: stored guard settings are invalid (%s); using the floor or "
                  "the defaults", tenant.id, exc)  # fmt: skip
        return settings_of(tenant.config.guard, tenant.config.tenant_guard)


def hit_kinds(reasons: Iterable[str]) -> list[str]:
    """The anomaly detector's kinds for audit reasons: one per entity, one for injection.

    Injection reasons name each rule that matched; the detector counts
    requests with a hit, so they collapse into one `injection`.
    """
    kinds: list[str] = []
    for reason in reasons:
        kind = "injection" if reason.startswith("injection:") else reason.replace(":", ".")
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def report(
    on_hit: GuardHit | None, ctx: TenantContext, ex: Exchange, reasons: Iterable[str]
) -> None:
    """Add `reasons` to the audit record and tell the anomaly detector; never the text."""
    reasons = list(reasons)
    if not reasons:
        return
    ex.finding(reasons)
    if on_hit is None:
        return
    for kind in hit_kinds(reasons):
        try:
            on_hit(ctx, kind)
        except Exception as exc:
            # A broken detector costs a line in the log, never the request.
            log.error("guard hit hook failed: %s", type(exc).__name__)
