"""The anomaly detector: quiet on steady traffic, loud on extraction, probing and spikes."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bulkhead.domain import (
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.errors import RateLimited
from bulkhead.guard.anomaly import (
    CROSS_TENANT_PROBING,
    DENY_RATE,
    EXTRACTION_DIVERSITY,
    GUARD_HITS,
    LOGPROB_HARVESTING,
    MAX_TOKENS_PROBING,
    REQUEST_RATE,
    AnomalyDetector,
)
from bulkhead.observe import Metrics
from bulkhead.observe.alerts import Alert, Alerter, WebhookPoster
from tests.support.webhook import WebhookReceiver

HOUR = 3600.0
PROMPT_MARK = "SECRET-PROMPT"


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ctx(tenant: str, key: str) -> TenantContext:
    t = Tenant(id=f"t-{tenant}", name=tenant, tier=Tier.SHARED, status=TenantStatus.ACTIVE)
    p = Principal(f"p-{key}", t.id, key, PrincipalKind.SERVICE, frozenset({Role.END_USER}))
    return TenantContext(tenant=t, principal=p, role=Role.END_USER, credential_id=key)


@dataclass
class Rig:
    clock: Clock = field(default_factory=Clock)
    alerts: list[Alert] = field(default_factory=list)
    opted_in: set[str] = field(default_factory=set)
    detector: AnomalyDetector = field(init=False)

    def __post_init__(self) -> None:
        self.detector = AnomalyDetector(
            alert=self.alerts.append,
            throttle_on_alert=lambda tenant_id: tenant_id in self.opted_in,
            now=self.clock,
        )

    def at(self, t: float, who: TenantContext, **call: Any) -> None:
        self.clock.t = t
        self.detector.observe(who, **{"status": 200, **call})

    def kinds(self, key: str | None = "any") -> set[str]:
        return {a.kind for a in self.alerts if key == "any" or a.key_id == key}


def arrivals(rng: random.Random, rate: float, start: float, end: float) -> Iterator[float]:
    """Poisson arrivals: exponential gaps at `rate` per second."""
    t = start
    while (t := t + rng.expovariate(rate)) < end:
        yield t


def normal_call(rng: random.Random) -> dict[str, Any]:
    """One request of ordinary traffic: mostly fine, a few refusals, 404s and odd options."""
    roll = rng.random()
    status = 429 if roll < 0.02 else 403 if roll < 0.03 else 404 if roll < 0.035 else 200
    return {
        "status": status,
        "tokens": int(rng.lognormvariate(6.5, 0.8)),
        "prompt_digest": hash(f"{PROMPT_MARK} {rng.random()}"),
        "logprobs": rng.random() < 0.03,
        "max_tokens": rng.choice((None, 256, 1024, 1)) if rng.random() < 0.1 else None,
        "not_found_digest": hash(rng.random()) if status == 404 else None,
    }


# Keys of three tenants: (tenant, key, requests per second in the first and second half hour).
NORMAL = (
    ("acme", "k-acme-1", 0.2, 0.2),
    ("acme", "k-acme-2", 2.0, 4.0),
    ("acme", "k-acme-3", 8.0, 8.0),
    ("small", "k-small", 0.02, 0.05),
    ("big", "k-big-1", 6.0, 6.0),
    ("big", "k-big-2", 5.0, 3.0),
)


def normal_traffic(
    rng: random.Random, start: float, end: float
) -> list[tuple[float, TenantContext, dict[str, Any]]]:
    calls = []
    mid = (start + end) / 2
    for tenant, key, first, second in NORMAL:
        who = ctx(tenant, key)
        for a, b, rate in ((start, mid, first), (mid, end, second)):
            calls += [(t, who, normal_call(rng)) for t in arrivals(rng, rate, a, b)]
    return sorted(calls, key=lambda call: call[0])


def replay(rig: Rig, rng: random.Random, calls: list[tuple[float, TenantContext, Any]]) -> None:
    for t, who, call in calls:
        rig.at(t, who, **call)
        if rng.random() < 0.01:
            rig.detector.guard_hit(who, "pii.email")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_steady_normal_traffic_for_an_hour_raises_no_alert(seed: int) -> None:
    rng, rig = random.Random(seed), Rig()
    calls = normal_traffic(rng, 0.0, HOUR)
    assert len(calls) > 50_000
    replay(rig, rng, calls)
    assert rig.alerts == []


def test_scripted_extraction_alerts_webhook_audit_and_metrics() -> None:
    """Ten quiet minutes, then one key sends thousands of diverse prompts, many with logprobs."""
    rng, metrics = random.Random(7), Metrics()
    audit: list[tuple[str, str, Any]] = []
    with WebhookReceiver().running() as hook:
        alerter = Alerter(
            webhook=WebhookPoster(hook.url),
            audit=lambda kind, tenant, detail: audit.append((kind, tenant, detail)),
            metrics=metrics,
        )
        clock = Clock()
        detector = AnomalyDetector(alert=alerter.send, now=clock)
        rig = Rig(clock=clock)
        rig.detector = detector
        thief = ctx("acme", "k-acme-2")
        replay(rig, rng, normal_traffic(rng, 0.0, 600.0))
        for i, t in enumerate(arrivals(rng, 50.0, 600.0, 720.0)):
            prompt = f"{PROMPT_MARK} {i}: complete the sentence '{rng.random()}'"
            clock.t = t
            detector.observe(
                thief, status=200, tokens=40, prompt_digest=hash(prompt),
                logprobs=rng.random() < 0.6, max_tokens=1 if rng.random() < 0.3 else 16,
            )  # fmt: skip

        kinds = {kind.removeprefix("anomaly:") for kind, *_ in audit}
        assert {EXTRACTION_DIVERSITY, LOGPROB_HARVESTING, REQUEST_RATE} <= kinds
        assert MAX_TOKENS_PROBING not in kinds  # Under half the calls ask for one token.
        bodies = hook.wait_for(len(audit))
    assert {b["kind"] for b in bodies} == kinds
    assert all(b["tenant_id"] == "t-acme" for b in bodies)
    assert {b["key_id"] for b in bodies if b["kind"] != REQUEST_RATE} == {"k-acme-2"}
    for kind in (EXTRACTION_DIVERSITY, LOGPROB_HARVESTING):
        labels = {"tenant": "acme", "kind": kind}
        assert metrics.registry.get_sample_value("bulkhead_alerts_total", labels) == 1
    leaked = [PROMPT_MARK.encode() in raw for raw in hook.raw]
    assert not any(leaked) and PROMPT_MARK not in repr(audit) + repr(detector)


def test_a_quiet_tenant_does_not_alert_on_a_tiny_burst() -> None:
    rng, rig = random.Random(3), Rig()
    who = ctx("quiet", "k-quiet")
    for t in arrivals(rng, 0.01, 0.0, 1800.0):
        rig.at(t, who)
    for i in range(60):  # Sixty calls in ten seconds: far above its baseline, below the floor.
        rig.at(1800.0 + i / 6, who)
    assert rig.alerts == []
    for i in range(150):
        rig.at(1810.0 + i / 16, who)
    assert rig.kinds() == {REQUEST_RATE}
    assert {a.key_id for a in rig.alerts} == {"k-quiet", None}  # The key and its tenant.
    figures = rig.alerts[0].figures
    assert figures["observed"] == 101 and figures["threshold"] == 100


def test_no_baseline_alert_during_warm_up() -> None:
    rig, who = Rig(), ctx("new", "k-new")
    for i in range(500):
        rig.at(i / 100, who)  # Five hundred calls in five seconds from a brand-new key.
    assert rig.alerts == []


def test_spike_far_above_a_busy_baseline() -> None:
    rng, rig = random.Random(4), Rig()
    who = ctx("acme", "k-busy")
    for t in arrivals(rng, 20.0, 0.0, 900.0):
        rig.at(t, who)
    assert rig.alerts == []
    for i in range(2000):
        rig.at(900.0 + i / 200, who)  # Two hundred a second against twenty.
    assert rig.kinds() == {REQUEST_RATE}
    alert = next(a for a in rig.alerts if a.key_id == "k-busy")
    assert 15 < alert.figures["baseline_mean"] / 10 < 25


def test_deny_and_guard_hit_spikes() -> None:
    rng, rig = random.Random(5), Rig()
    who = ctx("acme", "k-1")
    for t in arrivals(rng, 2.0, 0.0, 600.0):
        rig.at(t, who)
    for i in range(40):
        rig.at(600.0 + i / 10, who, status=429)
    for _ in range(15):
        rig.detector.guard_hit(who, "injection")
    rig.detector.guard_hit(who, "not a kind name!")
    assert rig.kinds("k-1") == {DENY_RATE, GUARD_HITS}
    hits = next(a for a in rig.alerts if a.kind == GUARD_HITS and a.key_id == "k-1")
    assert hits.figures == {**hits.figures, "kind.injection": 11}


def test_probing_many_distinct_ids_alerts_once() -> None:
    rig, who = Rig(), ctx("acme", "k-probe")
    for i in range(100):
        rig.at(i / 2, who, status=404, not_found_digest=hash(f"/v1/files/file-{i}"))
    assert [a.kind for a in rig.alerts] == [CROSS_TENANT_PROBING]
    assert rig.alerts[0].figures["not_found"] == 20
    assert rig.alerts[0].figures["distinct_ids"] >= 10


def test_polling_one_missing_id_is_not_probing() -> None:
    rig, who = Rig(), ctx("acme", "k-poll")
    for i in range(100):
        rig.at(i / 2, who, status=404, not_found_digest=hash("/v1/files/file-gone"))
    assert rig.alerts == []


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        ({"logprobs": True}, LOGPROB_HARVESTING),
        ({"max_tokens": 1}, MAX_TOKENS_PROBING),
        ({"max_tokens": 0}, MAX_TOKENS_PROBING),
    ],
)
def test_harvesting_patterns(call: dict[str, Any], kind: str) -> None:
    rig, who = Rig(), ctx("acme", "k-harvest")
    for i in range(400):
        rig.at(i / 10, who, prompt_digest=hash("same prompt"), **call)
    assert rig.kinds() == {kind}


def test_repeated_prompts_at_volume_are_not_extraction() -> None:
    rig, who = Rig(), ctx("acme", "k-load-test")
    for i in range(3000):
        rig.at(i / 50, who, prompt_digest=hash(f"prompt {i % 50}"))
    assert rig.alerts == []


def test_throttling_refuses_the_key_then_recovers() -> None:
    rig = Rig(opted_in={"t-acme"})
    probe, other = ctx("acme", "k-probe"), ctx("acme", "k-other")
    for i in range(20):  # The twentieth 404 raises the alert.
        rig.at(100.0 + i, probe, status=404, not_found_digest=i)
    with pytest.raises(RateLimited) as refused:
        rig.detector.check(probe)
    assert refused.value.retry_after_s == 300
    rig.detector.check(other)  # Only the key that alerted.
    rig.clock.t += 299
    with pytest.raises(RateLimited):
        rig.detector.check(probe)
    rig.clock.t += 2
    rig.detector.check(probe)
    assert rig.detector.tracked[2] == 0


def test_no_throttling_unless_the_tenant_chose_it() -> None:
    rig, probe = Rig(opted_in={"t-other"}), ctx("acme", "k-probe")
    for i in range(30):
        rig.at(i, probe, status=404, not_found_digest=i)
    assert rig.kinds() == {CROSS_TENANT_PROBING}
    rig.detector.check(probe)


def test_tenant_level_alerts_do_not_throttle_a_key() -> None:
    rng, rig = random.Random(6), Rig(opted_in={"t-acme"})
    keys = [ctx("acme", f"k-{i}") for i in range(50)]
    for t in arrivals(rng, 5.0, 0.0, 600.0):
        rig.at(t, rng.choice(keys))
    for i in range(1000):  # Each key stays near its own baseline; the tenant does not.
        rig.at(600.0 + i / 100, keys[i % 50])
    assert {(a.kind, a.key_id) for a in rig.alerts} == {(REQUEST_RATE, None)}
    for who in keys:
        rig.detector.check(who)


def test_platform_principals_are_not_tracked() -> None:
    rig = Rig()
    p = Principal("p-admin", None, "admin", PrincipalKind.USER, frozenset({Role.PLATFORM_ADMIN}))
    admin = TenantContext(tenant=None, principal=p, role=Role.PLATFORM_ADMIN, credential_id="k")
    rig.at(0.0, admin)
    rig.detector.guard_hit(admin, "injection")
    assert rig.detector.tracked == (0, 0, 0)


def test_memory_is_bounded_with_many_keys() -> None:
    clock = Clock()
    detector = AnomalyDetector(alert=print, max_keys=1000, max_tenants=100, now=clock)
    for i in range(20_000):
        clock.t = i / 100
        detector.observe(ctx(f"tenant-{i % 500}", f"key-{i}"), status=200, tokens=10)
    assert detector.tracked == (1000, 100, 0)


@pytest.mark.serial
def test_a_long_idle_gap_is_cheap_and_forgets_the_old_rate() -> None:
    rig, who = Rig(), ctx("acme", "k-idle")
    for i in range(6000):
        rig.at(i / 10, who)  # Ten a second for ten minutes.
    started = time.perf_counter()
    rig.at(600.0 + 86_400.0, who)
    assert time.perf_counter() - started < 0.01
    for i in range(150):
        rig.at(86_400.0 + 601.0 + i / 100, who)
    assert REQUEST_RATE in rig.kinds("k-idle")


def test_observe_path_cost() -> None:
    rng = random.Random(8)
    clock = Clock()
    detector = AnomalyDetector(alert=lambda alert: None, now=clock)
    keys = [ctx(f"tenant-{i % 20}", f"key-{i}") for i in range(200)]
    calls = [(rng.choice(keys), normal_call(rng)) for _ in range(50_000)]
    started = time.perf_counter()
    for i, (who, call) in enumerate(calls):
        clock.t = i / 100
        detector.observe(who, **call)
    per_call_us = (time.perf_counter() - started) / len(calls) * 1e6
    print(f"observe: {per_call_us:.2f} µs per request")
    assert per_call_us < 50  # The target is < 10 µs; the bound leaves room for a busy CI runner.


def test_repr_holds_counts_only() -> None:
    rig = Rig()
    rig.at(0.0, ctx("acme", "k-1"), prompt_digest=hash(PROMPT_MARK))
    assert repr(rig.detector) == "AnomalyDetector(keys=1, tenants=1, throttled=0)"


def test_diverse_volume_from_a_new_key_alerts_without_throttling() -> None:
    """With no baseline yet (a new key, a restart) a busy service looks the same: tell only."""
    rig, who = Rig(opted_in={"t-acme"}), ctx("acme", "k-new")
    for i in range(1200):
        rig.at(i / 25, who, prompt_digest=hash(f"{PROMPT_MARK} {i}"))
    assert rig.kinds() == {EXTRACTION_DIVERSITY}
    assert rig.alerts[0].figures["distinct_ratio"] > 0.9
    rig.detector.check(who)


def test_diverse_volume_far_above_a_warm_baseline_throttles() -> None:
    rng, rig, who = random.Random(9), Rig(opted_in={"t-acme"}), ctx("acme", "k-warm")
    rig.detector.throttle_kinds = frozenset({EXTRACTION_DIVERSITY})  # Not the rate spike.
    for t in arrivals(rng, 1.0, 0.0, 600.0):
        rig.at(t, who, prompt_digest=hash(rng.random()))
    for i in range(1200):
        rig.at(600.0 + i / 25, who, prompt_digest=hash(f"{PROMPT_MARK} {i}"))
    assert EXTRACTION_DIVERSITY in rig.kinds("k-warm")
    with pytest.raises(RateLimited):
        rig.detector.check(who)
