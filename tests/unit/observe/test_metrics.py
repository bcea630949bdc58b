"""The metrics the alert rules (deploy/prometheus) need: 5xx codes, break-glass, the
limiter's store, workers and key ages, the last read at scrape time."""

from __future__ import annotations

from prometheus_client import generate_latest

from bulkhead.observe import Metrics
from bulkhead.observe.collectors import WorkerFacts


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_5xx_answer_is_counted_by_its_error_code() -> None:
    metrics = Metrics()
    metrics.record("acme", "v1", 503, 0.01, None, "audit_unavailable")
    metrics.record("acme", "v1", 502, 0.01, None, "upstream_error:connect")
    metrics.record("acme", "v1", 503, 0.01, None, "service_unavailable")
    labels = {"tenant": "acme", "surface": "v1"}
    assert sample(metrics, "bulkhead_errors_total", code="audit_unavailable", **labels) == 1
    assert sample(metrics, "bulkhead_errors_total", code="upstream_error", **labels) == 1
    assert sample(metrics, "bulkhead_errors_total", code="service_unavailable", **labels) == 1


def test_a_non_5xx_answer_is_not_an_error_even_with_a_reason() -> None:
    metrics = Metrics()
    metrics.record("acme", "v1", 429, 0.01, "rate_limit_exceeded", "rate_limit_exceeded")
    metrics.record("acme", "v1", 200, 0.01, None, "pii_email")
    assert b"bulkhead_errors_total{" not in generate_latest(metrics.registry)
    labels = {"tenant": "acme", "reason": "rate_limit_exceeded"}
    assert sample(metrics, "bulkhead_denials_total", **labels) == 1


def test_an_unknown_error_code_is_other_so_the_label_stays_a_short_list() -> None:
    metrics = Metrics()
    metrics.record("acme", "v1", 500, 0.01, None, "KeyError")
    metrics.record("acme", "v1", 500, 0.01, None, "pii_email,pii_phone")
    metrics.record("acme", "v1", 500, 0.01, None, None)
    labels = {"tenant": "acme", "surface": "v1", "code": "other"}
    assert sample(metrics, "bulkhead_errors_total", **labels) == 3
    body = generate_latest(metrics.registry)
    assert b"KeyError" not in body and b"pii_email" not in body


def test_break_glass_starts_at_zero_so_an_increase_is_seen() -> None:
    metrics = Metrics()
    assert sample(metrics, "bulkhead_break_glass_total") == 0
    metrics.break_glass.inc()
    assert sample(metrics, "bulkhead_break_glass_total") == 1


def test_the_limiter_gauge_reads_its_store_at_each_scrape() -> None:
    metrics, up = Metrics(), [True]
    metrics.watch_limiter("redis", lambda: up[0])
    assert sample(metrics, "bulkhead_limiter_up", store="redis") == 1
    up[0] = False
    assert sample(metrics, "bulkhead_limiter_up", store="redis") == 0


def test_workers_restarts_readiness_and_failure() -> None:
    metrics = Metrics()
    facts = [
        WorkerFacts("dep-1", "tiny", restarts=3, ready=False, failed=False),
        WorkerFacts("dep-2", "small", restarts=5, ready=False, failed=True),
        WorkerFacts("dep-3", "big", restarts=0, ready=True, failed=False),
    ]
    metrics.watch_workers(lambda: facts)
    one = {"deployment": "dep-1", "model": "tiny"}
    assert sample(metrics, "bulkhead_worker_restarts_total", **one) == 3
    assert sample(metrics, "bulkhead_worker_ready", **one) == 0
    two = {"deployment": "dep-2", "model": "small"}
    assert sample(metrics, "bulkhead_worker_failed", **two) == 1
    three = {"deployment": "dep-3", "model": "big"}
    assert sample(metrics, "bulkhead_worker_ready", **three) == 1
    assert sample(metrics, "bulkhead_worker_failed", **three) == 0
    facts.pop()  # a deployment removed: its series go with it
    assert sample(metrics, "bulkhead_worker_ready", **three) is None


def test_key_ages_and_rotation_due_by_kind_and_api_key_ages_by_tenant() -> None:
    metrics = Metrics()
    metrics.watch_key_ages(lambda: {"ca": 86_400.0, "platform-kek": 10.0})
    metrics.watch_key_rotations(lambda: {"ca": 1_700_000_000.0})
    metrics.watch_api_key_ages(lambda: {"acme": 3600.0, "_platform": 60.0})
    assert sample(metrics, "bulkhead_key_oldest_age_seconds", kind="ca") == 86_400
    assert sample(metrics, "bulkhead_key_oldest_age_seconds", kind="platform-kek") == 10
    due = sample(metrics, "bulkhead_key_rotation_due_timestamp_seconds", kind="ca")
    assert due == 1_700_000_000
    assert sample(metrics, "bulkhead_api_key_oldest_age_seconds", tenant="acme") == 3600
    assert sample(metrics, "bulkhead_api_key_oldest_age_seconds", tenant="_platform") == 60
