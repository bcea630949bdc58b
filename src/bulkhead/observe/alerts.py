"""Operator alerts: one alert fanned out to a webhook, the audit log and a Prometheus counter.

An alert carries ids, kinds and counts, never content: the detectors that
raise alerts see prompts, so `Alert` only accepts numbers as its figures.  A
flood of the same finding sends one alert per cool-down for each
(tenant, key, kind); the ones held back are counted into the next.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from bulkhead.audit import AuditEvent
from bulkhead.observe.metrics import Metrics

log = logging.getLogger("bulkhead.alerts")

# `audit(event_type, tenant_id, detail)`: how an alert reaches the audit log.
AuditCallback = Callable[[str, str, Mapping[str, Any]], None]
Webhook = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Alert:
    """One finding about a tenant, or about one of its keys when `key_id` is set."""

    kind: str
    tenant_id: str
    key_id: str | None = None
    tenant_name: str | None = None
    figures: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Figures are counts, rates and thresholds; a string could smuggle content out.
        for name, value in self.figures.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"alert figure '{name}' must be a number")

    @property
    def scope(self) -> str:
        return "tenant" if self.key_id is None else "key"

    def to_json(self) -> dict[str, Any]:
        figures = {k: _finite(v) for k, v in self.figures.items()}
        return {
            "event": "bulkhead.alert",
            "kind": self.kind,
            "scope": self.scope,
            "tenant_id": self.tenant_id,
            "tenant": self.tenant_name,
            "key_id": self.key_id,
            "figures": figures,
        }


def _finite(value: float) -> float | None:
    # JSON has no infinities; a threshold that is "none yet" is sent as null.
    return round(value, 4) if math.isfinite(value) else None


class WebhookPoster:
    """`poster(payload)` POSTs `payload` as JSON to `url` on a daemon thread, best effort.

    The one webhook client class: the composition root builds one for the
    operator's `BULKHEAD_ALERT_WEBHOOK_URL` and hands it to the platform's
    health alerts (the audit writer, key rotation, a limiter failing open),
    and one each to break-glass (`pam`) and the anomaly detector (which a
    tenant's traffic sets off), so no flood takes another's slots.  Neither the
    event loop nor the request that raised the alert waits for the
    receiver; one that is down costs a warning in the log, never the
    request.  Only http(s) URLs are opened (no ``file:`` or custom
    scheme), and the URL, which may carry a token, is never shown.  At
    most `max_in_flight` POSTs run at once; beyond that an alert is dropped
    with a warning rather than piling up threads behind a receiver that
    hangs (each alert is also in the audit log or the log).
    """

    def __init__(self, url: str, *, timeout_s: float = 3.0, max_in_flight: int = 8):
        if not url.startswith(("http://", "https://")):
            raise ValueError("the alert webhook must be an http(s) URL")
        self.url = url
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def __call__(self, payload: Mapping[str, Any]) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("alert webhook busy: alert dropped")
            return
        body = orjson.dumps(payload)
        threading.Thread(target=self._post, args=(body,), daemon=True).start()

    def _post(self, body: bytes) -> None:
        # The scheme is checked in __init__, so no file: or custom scheme gets opened.
        request = urllib.request.Request(self.url, data=body, method="POST")  # noqa: S310
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s):  # noqa: S310
                pass
        except (urllib.error.URLError, OSError) as exc:
            log.warning("alert webhook failed: %s", type(exc).__name__)
        finally:
            self._slots.release()

    def __repr__(self) -> str:
        return "WebhookPoster(<url>)"  # the URL may carry a token


def audit_callback(emit: Callable[[AuditEvent], object]) -> AuditCallback:
    """An `audit(event_type, tenant_id, detail)` callback that emits to an `AuditSink`."""

    def audit(event_type: str, tenant_id: str, detail: Mapping[str, Any]) -> None:
        figures = detail.get("figures", {})
        emit(
            AuditEvent(
                action=event_type,
                outcome="success",
                status=0,
                tenant_id=tenant_id,
                credential_id=detail.get("key_id"),
                reason=" ".join(f"{k}={v}" for k, v in sorted(figures.items()))[:300],
            )
        )

    return audit


class Alerter:
    """Sends each alert to every configured destination, once per cool-down per finding."""

    def __init__(
        self,
        *,
        webhook: Webhook | None = None,
        audit: AuditCallback | None = None,
        metrics: Metrics | None = None,
        cooldown_s: float = 600.0,
        max_entries: int = 10_000,
        now: Callable[[], float] = time.time,
    ):
        self.webhook, self.audit, self.metrics = webhook, audit, metrics
        self.cooldown_s = cooldown_s
        self.max_entries = max_entries
        self.now = now
        # (tenant, key, kind) -> [time last sent, alerts held back since].
        self._sent: OrderedDict[tuple[str, str | None, str], list[float]] = OrderedDict()

    def send(self, alert: Alert) -> bool:
        """Send `alert` unless the same finding went out within the cool-down; True if sent."""
        now = self.now()
        key = (alert.tenant_id, alert.key_id, alert.kind)
        entry = self._sent.get(key)
        if entry is not None and now - entry[0] < self.cooldown_s:
            entry[1] += 1
            return False
        held_back = int(entry[1]) if entry is not None else 0
        self._remember(key, [now, 0])
        payload = alert.to_json()
        payload["time"] = now
        payload["held_back"] = held_back
        self._deliver(alert, payload)
        return True

    def _remember(self, key: tuple[str, str | None, str], entry: list[float]) -> None:
        self._sent[key] = entry
        self._sent.move_to_end(key)
        while len(self._sent) > self.max_entries:
            self._sent.popitem(last=False)

    def _deliver(self, alert: Alert, payload: dict[str, Any]) -> None:
        # Each destination is tried on its own: a broken one must not silence the others,
        # and an alert must never fail the request that happened to raise it.
        if self.metrics is not None:
            label = alert.tenant_name or alert.tenant_id
            _attempt("metrics", self.metrics.alerts.labels(label, alert.kind).inc)
        if self.audit is not None:
            audit = self.audit
            _attempt("audit", lambda: audit(f"anomaly:{alert.kind}", alert.tenant_id, payload))
        if self.webhook is not None:
            webhook = self.webhook
            _attempt("webhook", lambda: webhook(payload))

    def __repr__(self) -> str:
        return f"Alerter(cooldown_s={self.cooldown_s}, tracked={len(self._sent)})"


def _attempt(destination: str, deliver: Callable[[], object]) -> None:
    try:
        deliver()
    except Exception as exc:
        log.error("alert to %s failed: %s", destination, type(exc).__name__)
