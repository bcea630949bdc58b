"""Tenants, principals, roles, API keys and the per-request tenant context."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any


class Tier(enum.StrEnum):
    """Isolation tier: decides placement, sharing and default quotas."""

    SHARED = "shared"
    MIG = "mig"
    DEDICATED = "dedicated"


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Retention(enum.StrEnum):
    """What is kept of a tenant's prompts and responses."""

    NONE = "none"  # nothing (the default)
    ENCRYPTED = "encrypted"  # kept encrypted under the tenant's KEK, purged after `retention_days`


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """A tenant's own settings; stored as JSON, validated here on every write."""

    retention: Retention = Retention.NONE
    retention_days: int = 30
    # Automatic KEK rotation period in days; 0 turns scheduled rotation off.
    kek_rotation_days: int = 90
    # Calls must present a client certificate issued for this tenant (needs TLS).
    require_client_cert: bool = False
    # When the rate limiter's store is down: refuse calls (False, the default) or
    # let them through unmetered, with an alert and an audit event (True).
    limits_fail_open: bool = False
    # Throttle a key for a cool-down when the anomaly detector alerts on it.
    anomaly_throttle: bool = False
    # Guard settings as their JSON object (only the keys set; the rest take their
    # defaults).  `bulkhead.guard.GuardConfig` validates them where they are written
    # and read: the domain stays free of the guard library.  `guard` holds what the
    # platform set, a floor; `tenant_guard` what the tenant's admins set on top, which
    # only tightens it (`bulkhead.guard.with_floor`).
    guard: Mapping[str, Any] = field(default_factory=dict, hash=False)
    tenant_guard: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TenantConfig:
        """Parse stored or submitted settings; unknown keys and bad values raise ValueError."""
        known = {
            "retention",
            "retention_days",
            "kek_rotation_days",
            "require_client_cert",
            "limits_fail_open",
            "anomaly_throttle",
            "guard",
            "tenant_guard",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown tenant setting '{sorted(unknown)[0]}'")
        config = cls(
            retention=Retention(data.get("retention", Retention.NONE.value)),
            retention_days=int(data.get("retention_days", 30)),
            kek_rotation_days=int(data.get("kek_rotation_days", 90)),
            require_client_cert=_flag(data, "require_client_cert"),
            limits_fail_open=_flag(data, "limits_fail_open"),
            anomaly_throttle=_flag(data, "anomaly_throttle"),
            guard=_object(data, "guard"),
            tenant_guard=_object(data, "tenant_guard"),
        )
        if not 1 <= config.retention_days <= 3650:
            raise ValueError("retention_days must be from 1 to 3650")
        if not 0 <= config.kek_rotation_days <= 3650:
            raise ValueError("kek_rotation_days must be from 0 (off) to 3650")
        return config

    def to_json(self) -> dict[str, Any]:
        return {
            "retention": self.retention.value,
            "retention_days": self.retention_days,
            "kek_rotation_days": self.kek_rotation_days,
            "require_client_cert": self.require_client_cert,
            "limits_fail_open": self.limits_fail_open,
            "anomaly_throttle": self.anomaly_throttle,
            "guard": dict(self.guard),
            "tenant_guard": dict(self.tenant_guard),
        }


def _flag(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be an object")
    # Read-only, so the catalog's shared snapshot cannot be changed through it.
    return MappingProxyType(dict(value))


class Role(enum.StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    PLATFORM_AUDITOR = "platform_auditor"
    TENANT_ADMIN = "tenant_admin"
    MODEL_DEVELOPER = "model_developer"
    END_USER = "end_user"
    TENANT_AUDITOR = "tenant_auditor"


PLATFORM_ROLES = frozenset({Role.PLATFORM_ADMIN, Role.PLATFORM_AUDITOR})
TENANT_ROLES = frozenset(Role) - PLATFORM_ROLES


class PrincipalKind(enum.StrEnum):
    USER = "user"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    tier: Tier
    status: TenantStatus
    quotas: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    config: TenantConfig = TenantConfig()
    # Policy attributes: "allowed_networks", "allowed_hours", "regions" (read by `bulkhead.policy`).
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status is TenantStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Principal:
    """A user or service account.  `tenant_id` is None only for platform principals."""

    id: str
    tenant_id: str | None
    name: str
    kind: PrincipalKind
    roles: frozenset[Role]
    # Policy attributes: "clearance" (read by `bulkhead.policy` through the tenant context).
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # A platform principal's contact address, and whether it is disabled: a disabled
    # principal's credentials are refused everywhere (`gateway.tenant_context`).
    email: str | None = None
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What the data plane knows of an API key: never its secret, only its hash."""

    id: str
    tenant_id: str | None
    principal_id: str
    role: Role
    secret_hash: bytes = field(repr=False)
    models: frozenset[str] | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    name: str = ""
    created_at: datetime | None = None
    # Limits that narrow the tenant's for calls with this key (`bulkhead.limits.policy`):
    # the tighter of the key's own and of `limits_floor`, which the platform set (or
    # the key that minted this one passed on) and which tenant settings only tighten.
    limits: Mapping[str, Any] | None = field(default=None, hash=False)
    limits_floor: Mapping[str, Any] | None = field(default=None, hash=False)

    def usable_at(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True, slots=True)
class TenantContext:
    """Who is calling, set once per request from the authenticated credential.

    The tenant comes from the credential alone, never from a body field or a
    header the client sets.  `tenant` is None only for platform principals.
    """

    tenant: Tenant | None
    principal: Principal
    role: Role
    credential_id: str
    key_models: frozenset[str] | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tenant_id(self) -> str | None:
        return self.tenant.id if self.tenant is not None else None

    @property
    def is_platform(self) -> bool:
        return self.role in PLATFORM_ROLES
