"""Alert wiring: who hears of a failing audit writer, a failed key rotation, an anomaly,
a limiter that fails open (the webhook, the audit log, `bulkhead_alerts_total`) or a
break-glass grant (the webhook, `bulkhead_break_glass_total`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from bulkhead.app.backends import open_limiter
from bulkhead.app.jobs import key_event
from bulkhead.audit import WriterState
from bulkhead.audit.log import AuditLog
from bulkhead.domain import TenantContext
from bulkhead.guard.anomaly import AnomalyDetector
from bulkhead.limits import LimitAdmission, Limiter, O200kCounter
from bulkhead.observe import Metrics
from bulkhead.observe.alerts import Alert, Alerter, Webhook, audit_callback
from bulkhead.settings import Settings
from bulkhead.store import Catalog

log = logging.getLogger("bulkhead")


def audit_alert(metrics: Metrics, webhook: Webhook | None) -> Callable[[WriterState], None]:
    """Tells operators when audit events stop being written, and when they are again.

    The writer also logs it (critical); this adds the webhook and
    `bulkhead_alerts_total`.  Not the audit log itself: it is what failed.
    """
    alerter = Alerter(webhook=webhook, metrics=metrics, cooldown_s=60.0)

    def on_state(state: WriterState) -> None:
        kind = "audit.writer_recovered" if state.healthy else "audit.writer_failing"
        figures: dict[str, float] = {"backlog": state.backlog, "dropped": state.dropped}
        if state.failing_since is not None:
            figures["failing_since"] = state.failing_since
        alerter.send(Alert(kind=kind, tenant_id="-", figures=figures))

    return on_state


def rotation_alerter(
    metrics: Metrics, audit: AuditLog, webhook: Webhook | None
) -> Callable[[str], None]:
    """Tells operators (webhook, audit log, `bulkhead_alerts_total`) of a scheduled key
    rotation that failed (that key goes on doing new work past its period), or of a
    replica that could not follow another's rotation."""
    alerter = Alerter(
        webhook=webhook,
        audit=audit_callback(audit.emit),
        metrics=metrics,
    )

    def failed(what: str) -> None:
        alerter.send(Alert(kind=f"keys.{what}", tenant_id="-"))

    return failed


def break_glass_alert(metrics: Metrics, webhook: Webhook | None) -> Webhook:
    """Counts each break-glass grant (`bulkhead_break_glass_total`, which pages) and
    POSTs it to the webhook when one is set."""

    def alert(payload: Mapping[str, Any]) -> None:
        metrics.break_glass.inc()
        if webhook is not None:
            webhook(payload)

    return alert


def anomaly_detector(
    catalog: Catalog, audit: AuditLog, metrics: Metrics, webhook: Webhook | None
) -> AnomalyDetector:
    """Baselines per key and tenant; alerts to the webhook, the audit log and metrics."""
    alerter = Alerter(
        webhook=webhook,
        audit=audit_callback(audit.emit),
        metrics=metrics,
    )

    def throttle(tenant_id: str) -> bool:
        tenant = catalog.snapshot.tenants.get(tenant_id)
        return tenant is not None and tenant.config.anomaly_throttle

    return AnomalyDetector(alert=alerter.send, throttle_on_alert=throttle)


def admission(
    settings: Settings,
    catalog: Catalog,
    audit: AuditLog,
    alert: Webhook | None,
    metrics: Metrics,
    limiter: Limiter | None = None,
) -> LimitAdmission:
    """Rate limits, budgets and concurrency for every call; fail-open is alerted and audited."""

    def key_quotas(credential_id: str) -> Any:
        key = catalog.snapshot.keys.get(credential_id)
        return key.limits if key is not None else None

    def on_fail_open(ctx: TenantContext) -> None:
        tenant_id = ctx.tenant_id or ""
        log.warning("rate limiter down: tenant %s is failing open", tenant_id)
        audit.emit(key_event("limits.fail_open", tenant_id, "limiter unavailable"))
        tenant = catalog.snapshot.tenants.get(tenant_id)
        metrics.alerts.labels(tenant.name if tenant else tenant_id, "limits.fail_open").inc()
        if alert is not None:
            alert({"alert": "limits.fail_open", "tenant_id": tenant_id})

    return LimitAdmission(
        limiter or open_limiter(settings),
        O200kCounter(settings.token_counter),
        key_quotas=key_quotas,
        on_fail_open=on_fail_open,
    )
