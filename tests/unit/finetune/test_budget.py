"""Training tokens against the token budgets: the check at create, the estimate, the charge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from bulkhead.domain import (
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantConfig,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.finetune.budget import TokenBudget
from bulkhead.limits import (
    ByteCounter,
    InMemoryLimiter,
    LimitAdmission,
    LimiterUnavailable,
    LimitExceeded,
    Limits,
    Periods,
    Reservation,
)

EXAMPLE = {
    "messages": [{"role": "user", "content": "sky?"}, {"role": "assistant", "content": "Blue."}]
}


def caller(quotas: Mapping[str, object], *, fail_open: bool = False) -> TenantContext:
    config = TenantConfig(limits_fail_open=fail_open)
    tenant = Tenant("t-1", "acme", Tier.SHARED, TenantStatus.ACTIVE, quotas=quotas, config=config)
    p = Principal("p-1", tenant.id, "dev", PrincipalKind.SERVICE, frozenset({Role.MODEL_DEVELOPER}))
    return TenantContext(tenant=tenant, principal=p, role=Role.MODEL_DEVELOPER, credential_id="k-1")


def budget(
    limiter: Any = None, key: Mapping[str, Any] | None = None, alerts: list[str] | None = None
) -> TokenBudget:
    admission = LimitAdmission(
        limiter or InMemoryLimiter(),
        ByteCounter(),
        key_quotas=lambda _k: key,
        on_fail_open=lambda ctx: (alerts if alerts is not None else []).append(
            ctx.tenant.id if ctx.tenant else ""
        ),
    )
    return TokenBudget(admission)


def test_the_estimate_is_the_chat_tokens_times_the_epochs() -> None:
    b = budget()
    one = b.estimate([EXAMPLE], 1)
    # OpenAI's accounting with a byte counter: 3 primed + 2 x (3 + role 1) + 4 + 5 bytes.
    assert one == 3 + 2 * 4 + len("sky?") + len("Blue.")
    assert b.estimate([EXAMPLE] * 10, 3) == 3 * b.estimate([EXAMPLE] * 10, 1)
    assert b.estimate([], 5) == 5  # never nothing: an exhausted budget refuses any job


def test_an_exhausted_budget_or_a_job_too_large_is_refused_as_a_model_call_would_be() -> None:
    b = budget()
    ctx = caller({"tokens_per_day": 1_000})
    b.check(ctx, 1_000)  # fits exactly; the probe leaves nothing reserved
    b.check(ctx, 1_000)
    with pytest.raises(LimitExceeded) as too_large:
        b.check(ctx, 1_001)
    assert (too_large.value.limit, too_large.value.scope) == ("tokens_per_day", "tenant")
    assert str(too_large.value) == "Rate limit exceeded (tenant tokens_per_day)."
    b.charge("t-1", "k-1", 990)
    with pytest.raises(LimitExceeded):
        b.check(ctx, 11)
    b.check(ctx, 10)
    b.charge("t-1", "k-1", 10)
    with pytest.raises(LimitExceeded):  # exhausted: even the smallest job
        b.check(ctx, 1)
    # The per-minute limits are not a training job's: a tpm of 10 refuses nothing here.
    budget().check(caller({"tokens_per_minute": 10, "requests_per_minute": 1}), 10_000)


def test_the_creating_keys_budget_counts_too() -> None:
    b = budget(key={"tokens_per_month": 500})
    ctx = caller({})
    b.check(ctx, 500)
    with pytest.raises(LimitExceeded) as refused:
        b.check(ctx, 501)
    assert refused.value.scope == "key-k-1"
    b.charge("t-1", "k-1", 500)
    with pytest.raises(LimitExceeded):
        b.check(ctx, 1)
    b.charge("t-1", None, 10**9)  # a job of no key charges the tenant alone
    with pytest.raises(LimitExceeded) as refused:  # the tenant has no budget; the key has
        b.check(ctx, 10**9)
    assert refused.value.scope == "key-k-1"


class Down(InMemoryLimiter):
    def reserve(self, *args: Any, **kwargs: Any) -> Reservation:
        raise LimiterUnavailable("The rate limiter is unavailable.")

    def charge(
        self, bucket: str, scopes: Sequence[str], tokens: int, *, periods: Periods | None = None
    ) -> None:
        raise LimiterUnavailable("The rate limiter is unavailable.")


def test_a_limiter_that_is_away_fails_closed_unless_the_tenant_fails_open() -> None:
    alerts: list[str] = []
    b = budget(Down(), alerts=alerts)
    with pytest.raises(LimiterUnavailable):
        b.check(caller({"tokens_per_day": 10}), 1)
    b.check(caller({"tokens_per_day": 10}, fail_open=True), 1)
    assert alerts == ["t-1"]
    b.charge("t-1", "k-1", 5)  # lost, logged: the job has trained already
    budget(Down()).check(caller({}), 10**9)  # no budget: nothing to ask the limiter


def test_unlimited_scopes_are_not_probed() -> None:
    assert Limits().unlimited
    b = budget(Down())
    b.check(caller({"tokens_per_day": None, "tokens_per_month": None}), 10**12)
