"""Training tokens against the tenant's token budgets (`tokens_per_day`, `tokens_per_month`).

The budgets live in the limiter that admits model calls (`limits`): the same
counters, in the same scopes — the tenant's and the key's that created the
job (`"key-<credential id>"`) — so a token trained is a token the tenant can
no longer spend on inference that day or month, and the other way round.

* `check` (at `create`): a budget already spent refuses the job, and so does
  a job whose estimate does not fit what is left, with the error a model call
  gets (`LimitExceeded`: 429, "Rate limit exceeded (tenant tokens_per_day).",
  `Retry-After` the end of the period).  The probe is a reservation of the
  estimate against the budgets alone (not the per-minute limits: a training
  job is not a burst of calls), released at once.  A limiter that cannot be
  reached refuses the job (503) unless the tenant fails open, as for calls.
  The same check runs again as a queued job starts (`check_job`): jobs
  queued together each fit what was left at `create`, before any of them
  was charged, so without it they would spend the budget many times over;
  one that no longer fits fails with that error, untrained.
* `estimate`: every example's tokens, counted the way admission counts a
  chat prompt (o200k, OpenAI's per-message accounting), times the epochs.
  It is cheap, and an upper bound in practice: training counts only the
  assistant's tokens, and truncates at `max_seq_len`; another model's
  tokenizer may count some tens of percent either way.
* `charge` (while the job runs): the tokens the runner reports are charged
  as they come (every event carries the count so far), the rest at the end,
  so a replica that dies mid-job has charged up to its last event.  A charge
  is never refused — the tokens were trained — and only moves the day and
  month counters, never the minute window of calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bulkhead.domain import Principal, PrincipalKind, Role, Tenant, TenantContext
from bulkhead.limits import LimitAdmission, LimiterUnavailable, Limits
from bulkhead.limits.tokens import chat_tokens

log = logging.getLogger("bulkhead.finetune")
TENANT = "tenant"
JOB_PRINCIPAL = "fine-tuning"  # who `check_job` checks for: the job, not a caller


def key_scope(credential_id: str) -> str:
    return "key-" + credential_id


class TokenBudget:
    def __init__(self, admission: LimitAdmission):
        self.admission = admission

    def estimate(self, examples: Iterable[dict[str, Any]], epochs: int) -> int:
        counter = self.admission.counter
        return max(1, sum(chat_tokens(counter, e.get("messages") or ()) for e in examples)) * max(
            1, epochs
        )

    def check(self, ctx: TenantContext, tokens: int) -> None:
        """Raise `LimitExceeded` when `tokens` do not fit the tenant's (or key's) budgets."""
        tenant = ctx.tenant
        assert tenant is not None
        found = self.admission.limits_for(ctx)
        scopes = {TENANT: _budgets(found.tenant)}
        if found.key is not None:
            scopes[key_scope(ctx.credential_id)] = _budgets(found.key)
        scopes = {name: limits for name, limits in scopes.items() if not limits.unlimited}
        if not scopes:
            return
        limiter = self.admission.limiter
        try:
            probe = limiter.reserve(tenant.id, scopes, tokens=tokens)
        except LimiterUnavailable:
            if not tenant.config.limits_fail_open:
                raise
            self.admission.fail_open(ctx)
            return
        limiter.release(probe)

    def check_job(self, tenant: Tenant, credential_id: str | None, tokens: int) -> None:
        """`check` as a queued job starts, for its tenant and the key that created it."""
        job = Principal(JOB_PRINCIPAL, tenant.id, JOB_PRINCIPAL, PrincipalKind.SERVICE, frozenset())
        ctx = TenantContext(tenant, job, Role.MODEL_DEVELOPER, credential_id or "")
        self.check(ctx, tokens)

    def charge(self, tenant_id: str, credential_id: str | None, tokens: int) -> None:
        """Add trained tokens to the budgets; a limiter that is away loses them (logged)."""
        if tokens <= 0:
            return
        scopes = [TENANT] if not credential_id else [TENANT, key_scope(credential_id)]
        try:
            self.admission.limiter.charge(tenant_id, scopes, tokens)
        except Exception as exc:  # the tokens are on the usage record all the same
            log.warning("fine-tuning: %d tokens not charged (%s)", tokens, type(exc).__name__)


def _budgets(limits: Limits) -> Limits:
    return Limits(tokens_per_day=limits.tokens_per_day, tokens_per_month=limits.tokens_per_month)
