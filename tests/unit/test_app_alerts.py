"""Break-glass's alarm (`app.alerts.break_glass_alert`): counted for the alert rule, and
posted to the webhook when one is set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bulkhead.app.alerts import break_glass_alert
from bulkhead.observe import Metrics


def count(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("bulkhead_break_glass_total")


def test_each_break_glass_is_counted_and_posted() -> None:
    metrics, posted = Metrics(), []

    def webhook(payload: Mapping[str, Any]) -> None:
        posted.append(payload)

    alarm = break_glass_alert(metrics, webhook)
    alarm({"event": "pam.break_glass", "id": "r1"})
    alarm({"event": "pam.break_glass", "id": "r2"})
    assert count(metrics) == 2
    assert [p["id"] for p in posted] == ["r1", "r2"]


def test_without_a_webhook_it_is_still_counted() -> None:
    metrics = Metrics()
    break_glass_alert(metrics, None)({"event": "pam.break_glass"})
    assert count(metrics) == 1
