"""Alerts fan out to a webhook, the audit log and a counter, once per cool-down per finding."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from bulkhead.audit import AuditEvent
from bulkhead.observe import Metrics
from bulkhead.observe.alerts import Alert, Alerter, WebhookPoster, audit_callback
from tests.support.postgres import free_port
from tests.support.webhook import WebhookReceiver

PROBE = Alert("cross_tenant_probing", "t-1", "key-1", "acme", {"not_found": 25.0})


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver().running() as running:
        yield running


def audited() -> tuple[list[tuple[str, str, Mapping[str, Any]]], Any]:
    calls: list[tuple[str, str, Mapping[str, Any]]] = []
    return calls, lambda kind, tenant, detail: calls.append((kind, tenant, detail))


def sent_count(metrics: Metrics, tenant: str, kind: str) -> float:
    value = metrics.registry.get_sample_value(
        "bulkhead_alerts_total", {"tenant": tenant, "kind": kind}
    )
    return value or 0.0


def test_one_alert_reaches_webhook_audit_and_counter(receiver: WebhookReceiver) -> None:
    metrics, (calls, audit) = Metrics(), audited()
    alerter = Alerter(webhook=WebhookPoster(receiver.url), audit=audit, metrics=metrics)

    assert alerter.send(PROBE) is True

    (body,) = receiver.wait_for(1)
    assert body["kind"] == "cross_tenant_probing" and body["scope"] == "key"
    assert body["tenant_id"] == "t-1" and body["key_id"] == "key-1"
    assert body["figures"] == {"not_found": 25.0}
    assert calls == [("anomaly:cross_tenant_probing", "t-1", calls[0][2])]
    assert calls[0][2]["figures"] == {"not_found": 25.0}
    assert sent_count(metrics, "acme", "cross_tenant_probing") == 1


def test_a_flood_sends_one_alert_per_cool_down() -> None:
    clock, (calls, audit) = Clock(), audited()
    alerter = Alerter(audit=audit, cooldown_s=600, now=clock)

    sent = [alerter.send(PROBE) for _ in range(1000)]
    assert sent.count(True) == 1 and len(calls) == 1

    clock.t += 599
    assert alerter.send(PROBE) is False
    clock.t += 1
    assert alerter.send(PROBE) is True
    assert calls[1][2]["held_back"] == 1000  # The next alert says how many were held back.


def test_findings_are_deduplicated_apart() -> None:
    calls, audit = audited()
    alerter = Alerter(audit=audit)
    for alert in (
        PROBE,
        Alert("logprob_harvesting", "t-1", "key-1"),  # another kind
        Alert("cross_tenant_probing", "t-1", "key-2"),  # another key
        Alert("cross_tenant_probing", "t-2", "key-1"),  # another tenant
        Alert("cross_tenant_probing", "t-1"),  # the tenant as a whole
    ):
        assert alerter.send(alert) is True
    assert len(calls) == 5


def test_the_dedupe_memory_is_bounded() -> None:
    alerter = Alerter(max_entries=100)
    for i in range(10_000):
        alerter.send(Alert("request_rate", "t-1", f"key-{i}"))
    assert "tracked=100" in repr(alerter)


def test_figures_are_numbers_only() -> None:
    with pytest.raises(TypeError):
        Alert("extraction_diversity", "t-1", "key-1", figures={"prompt": "ignore all"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        Alert("extraction_diversity", "t-1", "key-1", figures={"flag": True})


def test_infinite_figures_are_sent_as_null() -> None:
    alert = Alert("request_rate", "t-1", figures={"threshold": float("inf")})
    assert alert.to_json()["figures"] == {"threshold": None}
    assert alert.to_json()["scope"] == "tenant"


def test_a_broken_destination_does_not_silence_the_others(caplog: Any) -> None:
    calls, audit = audited()

    def broken(payload: Mapping[str, Any]) -> None:
        raise RuntimeError("receiver exploded")

    alerter = Alerter(webhook=broken, audit=audit, metrics=Metrics())
    with caplog.at_level(logging.ERROR, logger="bulkhead.alerts"):
        assert alerter.send(PROBE) is True
    assert len(calls) == 1
    assert "alert to webhook failed: RuntimeError" in caplog.text


def test_webhook_down_costs_a_warning_only(caplog: Any) -> None:
    poster = WebhookPoster(f"http://127.0.0.1:{free_port()}/hook", timeout_s=1)
    with caplog.at_level(logging.WARNING, logger="bulkhead.alerts"):
        poster({"kind": "request_rate"})  # Returns at once; the POST fails on its thread.
        deadline = time.monotonic() + 5
        while "alert webhook failed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "alert webhook failed: URLError" in caplog.text


def test_webhook_url_is_checked_and_never_shown() -> None:
    with pytest.raises(ValueError):
        WebhookPoster("file:///etc/passwd")
    poster = WebhookPoster("https://hooks.example/T0KEN")
    assert "T0KEN" not in repr(poster)


def test_audit_callback_writes_an_audit_event() -> None:
    events: list[AuditEvent] = []
    alerter = Alerter(audit=audit_callback(events.append))
    alerter.send(PROBE)
    (event,) = events
    assert event.action == "anomaly:cross_tenant_probing"
    assert event.tenant_id == "t-1" and event.credential_id == "key-1"
    assert event.reason == "not_found=25.0"
