"""What a call may use: a tenant's limits (tier defaults and overrides) and its key's.

Limits are stored as *quotas*, a JSON mapping on the tenant (and one on each
API key) from the names in `QUOTAS` to a whole number, or to null for
"unlimited".  A name the tenant does not set takes its tier's default; a key
sets only what it narrows (a key can never widen its tenant's limits: both
scopes are checked on every call).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bulkhead.domain import Tier
from bulkhead.limits.limiter import Limits

# quota name -> the `Limits` field it sets (None: a per-request rule, not a rate).
QUOTAS: dict[str, str | None] = {
    "requests_per_minute": "rpm",
    "tokens_per_minute": "tpm",
    "concurrency": "concurrency",
    "tokens_per_day": "tokens_per_day",
    "tokens_per_month": "tokens_per_month",
    "max_tokens_per_request": None,
    "default_max_tokens": None,
    "max_body_bytes": None,
    "share_weight": None,
    # Compute on Kubernetes: each of the tenant's namespaces gets these as its
    # ResourceQuota and LimitRange (`bulkhead.k8s.render`); never unlimited.
    "cpu_millicores": None,
    "memory_mib": None,
    "ephemeral_storage_mib": None,
    "pods": None,
    "services": None,
    "secrets": None,
    "pvcs": None,
    "pvc_storage_mib": None,
    "gpus": None,
    "mig_instances": None,
    # Fine-tuning jobs running at once (`finetune.queue`); 0 stops new ones from starting.
    "fine_tuning_concurrency": None,
}
# The Kubernetes quota names: a whole number each (0 allowed), never null.
COMPUTE_QUOTAS = (
    "cpu_millicores",
    "memory_mib",
    "ephemeral_storage_mib",
    "pods",
    "services",
    "secrets",
    "pvcs",
    "pvc_storage_mib",
    "gpus",
    "mig_instances",
)
KEY_QUOTAS = frozenset(
    {
        "requests_per_minute",
        "tokens_per_minute",
        "concurrency",
        "tokens_per_day",
        "tokens_per_month",
        "max_tokens_per_request",
    }
)
_NEVER_UNLIMITED = frozenset({"default_max_tokens", "share_weight"})
_BOUNDED = frozenset(COMPUTE_QUOTAS) | {"fine_tuning_concurrency"}

# Per tier, per namespace: a `shared` tenant gets no GPU, a `mig` tenant MIG
# instances of the platform's profile and no whole GPU, a `dedicated` one whole GPUs.
_COMPUTE: dict[Tier, dict[str, int | None]] = {
    Tier.SHARED: {
        "cpu_millicores": 4_000,
        "memory_mib": 32_768,
        "ephemeral_storage_mib": 10_240,
        "pods": 20,
        "services": 10,
        "secrets": 20,
        "pvcs": 5,
        "pvc_storage_mib": 51_200,
        "gpus": 0,
        "mig_instances": 0,
    },
    Tier.MIG: {
        "cpu_millicores": 16_000,
        "memory_mib": 65_536,
        "ephemeral_storage_mib": 51_200,
        "pods": 50,
        "services": 20,
        "secrets": 50,
        "pvcs": 10,
        "pvc_storage_mib": 204_800,
        "gpus": 0,
        "mig_instances": 1,
    },
    Tier.DEDICATED: {
        "cpu_millicores": 64_000,
        "memory_mib": 262_144,
        "ephemeral_storage_mib": 204_800,
        "pods": 100,
        "services": 50,
        "secrets": 100,
        "pvcs": 20,
        "pvc_storage_mib": 1_048_576,
        "gpus": 1,
        "mig_instances": 0,
    },
}

# What a tenant of each tier gets without asking (None: unlimited).
TIER_DEFAULTS: dict[Tier, dict[str, int | None]] = {
    Tier.SHARED: {
        "requests_per_minute": 600,
        "tokens_per_minute": 100_000,
        "concurrency": 16,
        "tokens_per_day": None,
        "tokens_per_month": None,
        "max_tokens_per_request": 4_096,
        "default_max_tokens": 1_024,
        "max_body_bytes": None,
        "share_weight": 1,
        "fine_tuning_concurrency": 1,
        **_COMPUTE[Tier.SHARED],
    },
    Tier.MIG: {
        "requests_per_minute": 3_000,
        "tokens_per_minute": 1_000_000,
        "concurrency": 64,
        "tokens_per_day": None,
        "tokens_per_month": None,
        "max_tokens_per_request": 8_192,
        "default_max_tokens": 2_048,
        "max_body_bytes": None,
        "share_weight": 2,
        "fine_tuning_concurrency": 2,
        **_COMPUTE[Tier.MIG],
    },
    Tier.DEDICATED: {
        "requests_per_minute": 12_000,
        "tokens_per_minute": 5_000_000,
        "concurrency": 256,
        "tokens_per_day": None,
        "tokens_per_month": None,
        "max_tokens_per_request": 16_384,
        "default_max_tokens": 4_096,
        "max_body_bytes": None,
        "share_weight": 4,
        "fine_tuning_concurrency": 4,
        **_COMPUTE[Tier.DEDICATED],
    },
}


def check_quotas(values: Mapping[str, Any], *, key: bool = False) -> dict[str, int | None]:
    """Validate submitted quota values; raises ValueError naming the first bad one."""
    allowed = KEY_QUOTAS if key else frozenset(QUOTAS)
    checked: dict[str, int | None] = {}
    for name, value in values.items():
        if name not in allowed:
            raise ValueError(f"unknown limit '{name}'")
        if value is None and name not in _NEVER_UNLIMITED | _BOUNDED:
            checked[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            unlimited = "" if key or name in _BOUNDED else " or null"
            raise ValueError(f"{name} must be a whole number >= 0{unlimited}")
        if name in _NEVER_UNLIMITED and value < 1:
            raise ValueError(f"{name} must be at least 1")
        checked[name] = value
    return checked


def looser(value: int | None, bound: int | None) -> bool:
    """Whether a limit of `value` lets more through than `bound` (None: unlimited)."""
    return bound is not None and (value is None or value > bound)


def tightest(*layers: Mapping[str, int] | None) -> dict[str, int] | None:
    """Each limit at the lowest value any layer sets; a layer that sets none loosens none."""
    out: dict[str, int] = {}
    for layer in layers:
        for name, value in (layer or {}).items():
            if value is not None and (name not in out or value < out[name]):
                out[name] = value
    return out or None


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Everything admission needs for one tenant (and key): rates and per-request rules."""

    tenant: Limits
    key: Limits | None
    max_tokens_per_request: int | None
    default_max_tokens: int
    max_body_bytes: int | None
    share_weight: int


def effective(tier: Tier, quotas: Mapping[str, Any]) -> dict[str, int | None]:
    """The tenant's limits: its overrides over its tier's defaults (unknown names ignored)."""
    merged = dict(TIER_DEFAULTS[tier])
    for name in QUOTAS:
        if name in quotas:
            merged[name] = quotas[name]
    return merged


def effective_one(tier: Tier, quotas: Mapping[str, Any], name: str) -> int | None:
    """`effective(tier, quotas)[name]`, without merging every quota (one is asked for)."""
    if name in quotas and name in QUOTAS:
        value: int | None = quotas[name]
        return value
    return TIER_DEFAULTS[tier][name]


def limits_of(values: Mapping[str, Any]) -> Limits:
    return Limits(**{field: values.get(name) for name, field in QUOTAS.items() if field})


def call_limits(
    tier: Tier, tenant_quotas: Mapping[str, Any], key_quotas: Mapping[str, Any] | None
) -> CallLimits:
    values = effective(tier, tenant_quotas)
    key = limits_of(key_quotas) if key_quotas else None
    cap = values["max_tokens_per_request"]
    if key_quotas and key_quotas.get("max_tokens_per_request") is not None:
        narrowed = key_quotas["max_tokens_per_request"]
        cap = narrowed if cap is None else min(cap, narrowed)
    default = values["default_max_tokens"] or 1
    return CallLimits(
        tenant=limits_of(values),
        key=key if key is not None and not key.unlimited else None,
        max_tokens_per_request=cap,
        default_max_tokens=default if cap is None else min(default, cap),
        max_body_bytes=values["max_body_bytes"],
        share_weight=values["share_weight"] or 1,
    )
