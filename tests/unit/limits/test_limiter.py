"""The limiter contract, on both backends: exact rpm, tpm and concurrency per key."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from bulkhead.limits import InMemoryLimiter, Limiter, LimitExceeded, Limits, Periods
from bulkhead.limits.redis_limiter import RedisLimiter
from tests.support.redis_server import RedisServer, redis_server

T0 = 1_000.0


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as s:
        yield s


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest) -> Iterator[Limiter]:
    if request.param == "memory":
        yield InMemoryLimiter()
        return
    server: RedisServer = request.getfixturevalue("server")
    client = redis.Redis.from_url(server.url)
    client.flushdb()
    yield RedisLimiter(client)
    client.close()


def denied(limiter: Limiter, key: str, limits: Limits, tokens: int, now: float) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as info:
        limiter.reserve(key, {"tenant": limits}, tokens=tokens, now=now)
    return info.value


def test_rpm_is_exact_and_slides(limiter: Limiter) -> None:
    limits = Limits(rpm=3)
    for i in range(3):
        limiter.reserve("a", {"tenant": limits}, tokens=1, now=T0 + i)
    err = denied(limiter, "a", limits, 1, T0 + 10)
    assert err.limit == "rpm"
    assert err.retry_after_s == pytest.approx(50.0)  # the first entry leaves at T0 + 60
    denied(limiter, "a", limits, 1, T0 + 59.9)
    limiter.reserve("a", {"tenant": limits}, tokens=1, now=T0 + 60.0)
    denied(limiter, "a", limits, 1, T0 + 60.5)


def test_tpm_is_exact(limiter: Limiter) -> None:
    limits = Limits(tpm=100)
    limiter.reserve("a", {"tenant": limits}, tokens=60, now=T0)
    limiter.reserve("a", {"tenant": limits}, tokens=40, now=T0 + 1)
    err = denied(limiter, "a", limits, 1, T0 + 2)
    assert err.limit == "tpm"
    assert err.retry_after_s == pytest.approx(58.0)
    limiter.reserve("a", {"tenant": limits}, tokens=0, now=T0 + 2)  # zero always fits
    limiter.reserve("a", {"tenant": limits}, tokens=60, now=T0 + 60)  # the 60 left the window
    denied(limiter, "a", limits, 1, T0 + 60)


def test_tpm_retry_after_waits_for_enough_tokens(limiter: Limiter) -> None:
    limits = Limits(tpm=100)
    for i in range(4):
        limiter.reserve("a", {"tenant": limits}, tokens=25, now=T0 + i)
    err = denied(limiter, "a", limits, 50, T0 + 10)
    assert err.retry_after_s == pytest.approx(51.0)  # two entries must leave: T0+1 + 60


def test_request_larger_than_tpm_is_denied(limiter: Limiter) -> None:
    err = denied(limiter, "a", Limits(tpm=10), 11, T0)
    assert err.limit == "tpm"
    assert err.retry_after_s > 0


def test_concurrency_is_held_until_settled_or_released(limiter: Limiter) -> None:
    limits = Limits(concurrency=2)
    a = limiter.reserve("a", {"tenant": limits}, tokens=1, now=T0)
    b = limiter.reserve("a", {"tenant": limits}, tokens=1, now=T0)
    err = denied(limiter, "a", limits, 1, T0)
    assert err.limit == "concurrency"
    assert err.retry_after_s > 0
    limiter.settle(a, 1)
    c = limiter.reserve("a", {"tenant": limits}, tokens=1, now=T0)
    denied(limiter, "a", limits, 1, T0)
    limiter.release(b)
    limiter.reserve("a", {"tenant": limits}, tokens=1, now=T0)
    denied(limiter, "a", limits, 1, T0)
    limiter.settle(c, 0)
    limiter.reserve("a", {"tenant": limits}, tokens=1, now=T0)


def test_settle_refunds_and_charges(limiter: Limiter) -> None:
    limits = Limits(tpm=100)
    r = limiter.reserve("a", {"tenant": limits}, tokens=80, now=T0)
    limiter.settle(r, 30)  # refund 50
    limiter.reserve("a", {"tenant": limits}, tokens=70, now=T0 + 1)
    denied(limiter, "a", limits, 1, T0 + 1)

    r = limiter.reserve("b", {"tenant": limits}, tokens=10, now=T0)
    limiter.settle(r, 90)  # charge 80 more
    limiter.reserve("b", {"tenant": limits}, tokens=10, now=T0 + 1)
    denied(limiter, "b", limits, 1, T0 + 1)

    r = limiter.reserve("c", {"tenant": limits}, tokens=10, now=T0)
    limiter.settle(r, -5)  # never below zero
    limiter.reserve("c", {"tenant": limits}, tokens=100, now=T0 + 1)
    denied(limiter, "c", limits, 1, T0 + 1)


def test_release_refunds_request_and_tokens(limiter: Limiter) -> None:
    limits = Limits(rpm=1, tpm=50)
    r = limiter.reserve("a", {"tenant": limits}, tokens=50, now=T0)
    denied(limiter, "a", limits, 1, T0)
    limiter.release(r)
    limiter.reserve("a", {"tenant": limits}, tokens=50, now=T0 + 1)


def test_settle_after_the_window_changes_nothing(limiter: Limiter) -> None:
    limits = Limits(tpm=100, concurrency=1)
    r = limiter.reserve("a", {"tenant": limits}, tokens=100, now=T0)
    later = limiter.reserve("a", {"tenant": Limits(tpm=200)}, tokens=100, now=T0 + 61)  # expires r
    limiter.settle(later, 100)
    limiter.settle(r, 500)  # r's entry left the window: no charge
    err = denied(limiter, "a", limits, 1, T0 + 61)  # 100 tokens of `later` remain
    assert err.limit == "tpm"
    limiter.reserve("a", {"tenant": limits}, tokens=0, now=T0 + 61)  # and r's slot is free


def test_keys_are_independent(limiter: Limiter) -> None:
    limits = Limits(rpm=1, tpm=10, concurrency=1)
    limiter.reserve("a", {"tenant": limits}, tokens=10, now=T0)
    limiter.reserve("b", {"tenant": limits}, tokens=10, now=T0)
    limiter.reserve("a", {"key-k1": limits}, tokens=10, now=T0)
    denied(limiter, "a", limits, 1, T0)
    denied(limiter, "b", limits, 1, T0)


def test_unlimited_admits_everything(limiter: Limiter) -> None:
    for _ in range(50):
        limiter.reserve("a", {"tenant": Limits()}, tokens=10**9, now=T0)


def test_real_clock(limiter: Limiter) -> None:
    r = limiter.reserve("a", {"tenant": Limits(rpm=1)}, tokens=1)
    err = denied(limiter, "a", Limits(rpm=1), 1, r.at + 1)
    assert 0 < err.retry_after_s <= 60


def test_bad_keys_and_tokens_are_refused(limiter: Limiter) -> None:
    with pytest.raises(ValueError):
        limiter.reserve("", {"tenant": Limits()}, tokens=1)
    with pytest.raises(ValueError):
        limiter.reserve("{a}", {"tenant": Limits()}, tokens=1)
    with pytest.raises(ValueError):
        limiter.reserve("a", {"tenant:x": Limits()}, tokens=1)
    with pytest.raises(ValueError):
        limiter.reserve("a", {}, tokens=1)
    with pytest.raises(ValueError):
        limiter.reserve("a", {"tenant": Limits()}, tokens=-1)
    with pytest.raises(ValueError):
        Limits(rpm=-1)


def test_threads_never_exceed_limits(limiter: Limiter) -> None:
    limits = Limits(rpm=40, tpm=1000)
    admitted: list[int] = []
    lock = threading.Lock()

    def hammer(seed: int) -> None:
        for i in range(40):
            tokens = (seed * 7 + i * 13) % 60 + 1
            try:
                limiter.reserve("t", {"tenant": limits}, tokens=tokens, now=T0)
            except LimitExceeded:
                continue
            with lock:
                admitted.append(tokens)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) <= 40
    assert sum(admitted) <= 1000
    assert sum(admitted) > 1000 - 60 or len(admitted) == 40


DAY1 = Periods.at(1_780_000_000.0)  # 2026-05-28 UTC
DAY2 = Periods.at(1_780_000_000.0 + 86_400)


def test_periods_name_utc_day_and_month() -> None:
    p = Periods.at(1_767_225_599.0)  # 2025-12-31T23:59:59Z
    assert (p.day, p.month) == ("20251231", "202512")
    assert p.day_ends_in_s == pytest.approx(1.0)
    assert p.month_ends_in_s == pytest.approx(1.0)
    q = Periods.at(1_767_225_600.0)
    assert (q.day, q.month) == ("20260101", "202601")
    assert q.day_ends_in_s == 86_400
    assert q.month_ends_in_s == 31 * 86_400


def test_all_scopes_or_none(limiter: Limiter) -> None:
    scopes = {"tenant": Limits(rpm=10, tpm=100), "key-k1": Limits(rpm=2)}
    limiter.reserve("a", scopes, tokens=10, now=T0)
    limiter.reserve("a", scopes, tokens=10, now=T0)
    err = denied_in(limiter, "a", scopes, 10, T0)
    assert (err.scope, err.limit) == ("key-k1", "rpm")
    # The key's refusal did not charge the tenant: another key still gets 8 calls.
    other = {"tenant": Limits(rpm=10, tpm=100), "key-k2": Limits()}
    for _ in range(8):
        limiter.reserve("a", other, tokens=10, now=T0)
    err = denied_in(limiter, "a", other, 1, T0)
    assert (err.scope, err.limit) == ("tenant", "rpm")
    assert "tenant rpm" in err.message


def test_usage_is_reported_per_scope(limiter: Limiter) -> None:
    scopes = {"tenant": Limits(rpm=10), "key-k1": Limits(rpm=5)}
    limiter.reserve("a", {"tenant": Limits()}, tokens=7, now=T0)
    r = limiter.reserve("a", scopes, tokens=5, now=T0 + 2)
    assert r.usage["tenant"].requests == 2
    assert r.usage["tenant"].tokens == 12
    assert r.usage["tenant"].oldest_at == pytest.approx(T0)
    assert r.usage["key-k1"].requests == 1
    assert r.usage["key-k1"].oldest_at == pytest.approx(T0 + 2)


def test_daily_budget_holds_across_windows_and_resets_next_day(limiter: Limiter) -> None:
    scopes = {"tenant": Limits(tokens_per_day=100, tokens_per_month=150)}
    limiter.reserve("a", scopes, tokens=60, now=T0, periods=DAY1)
    limiter.reserve("a", scopes, tokens=40, now=T0 + 600, periods=DAY1)
    with pytest.raises(LimitExceeded) as info:
        limiter.reserve("a", scopes, tokens=1, now=T0 + 1200, periods=DAY1)
    assert info.value.limit == "tokens_per_day"
    assert info.value.retry_after_s == pytest.approx(DAY1.day_ends_in_s)
    limiter.reserve("a", scopes, tokens=40, now=T0 + 1300, periods=DAY2)  # a new day
    with pytest.raises(LimitExceeded) as info:
        limiter.reserve("a", scopes, tokens=11, now=T0 + 1400, periods=DAY2)
    assert info.value.limit == "tokens_per_month"


def test_budget_follows_settle_and_release(limiter: Limiter) -> None:
    scopes = {"tenant": Limits(tokens_per_day=100)}
    r = limiter.reserve("a", scopes, tokens=100, now=T0, periods=DAY1)
    limiter.settle(r, 30)  # refund 70 to the day
    r2 = limiter.reserve("a", scopes, tokens=70, now=T0 + 1, periods=DAY1)
    limiter.release(r2)  # refund all of it
    limiter.reserve("a", scopes, tokens=70, now=T0 + 2, periods=DAY1)
    with pytest.raises(LimitExceeded):
        limiter.reserve("a", scopes, tokens=1, now=T0 + 3, periods=DAY1)


def denied_in(
    limiter: Limiter, bucket: str, scopes: dict[str, Limits], tokens: int, now: float
) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as info:
        limiter.reserve(bucket, scopes, tokens=tokens, now=now)
    return info.value


def test_a_charge_moves_the_budgets_only_and_is_never_refused(limiter: Limiter) -> None:
    """Training tokens: done already, so charged past the budget; the minute window is not
    touched (a charge of 10,000 leaves a 100-token tpm free)."""
    p = Periods.at(T0 + 86400 * 20_000)
    limiter.charge("a", ["tenant", "key-k"], 900, periods=p)
    limiter.reserve("a", {"tenant": Limits(tpm=100)}, tokens=100, now=T0, periods=p)
    err = denied_at(limiter, "a", Limits(tokens_per_day=1_000), 1, p)  # 900 + 100 reserved
    assert err.limit == "tokens_per_day" and err.scope == "tenant"
    limiter.charge("a", ["tenant"], 10_000, periods=p)  # past the budget: still counted
    month = Limits(tokens_per_month=11_000)
    assert denied_at(limiter, "a", month, 1, p).limit == "tokens_per_month"
    key = Limits(tokens_per_day=900)
    assert denied_at(limiter, "a", key, 1, p, scope="key-k").scope == "key-k"
    limiter.charge("b", ["tenant"], 0, periods=p)  # nothing to charge: nothing happens
    limiter.reserve("b", {"tenant": Limits(tokens_per_day=1)}, tokens=1, now=T0, periods=p)


def denied_at(
    limiter: Limiter, key: str, limits: Limits, tokens: int, p: Periods, scope: str = "tenant"
) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as info:
        limiter.reserve(key, {scope: limits}, tokens=tokens, now=T0 + 2, periods=p)
    return info.value
