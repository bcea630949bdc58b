"""Policy attributes (ABAC) of tenants, models and principals: `/admin/v1/.../attributes`.

Each PUT replaces the whole set (a field left out is removed) and is checked
strictly first: an unknown field, a network `ipaddress` cannot read, an hour
outside 0-23 or a level not in its list is refused with 400, never stored.
The Cedar policies read what is stored here (`bulkhead.policy.cedar`):

- tenant: `allowed_networks` (CIDRs; calls from elsewhere are refused),
  `allowed_hours` (UTC, [start, end), may wrap midnight), `regions` (the
  regions its models may be served from), `default_classification` (of its
  own models that name none);
- model: `classification`, `sensitivity`, `region`;
- principal: `clearance` (reaches `TenantContext.attributes["clearance"]` for
  its API keys and its sign-ins).  Every API key has a principal (a key made
  without one gets a service account), so a key's clearance is its principal's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy.orm import Session

from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.admin.schemas import Strict
from bulkhead.domain import Model
from bulkhead.store import repo
from bulkhead.store.attributes import (
    get_model,
    set_model_attributes,
    set_principal_attributes,
    set_tenant_attributes,
)

Classification = Literal["public", "internal", "confidential", "restricted"]
Sensitivity = Literal["low", "medium", "high"]
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class Hours(Strict):
    start: int = Field(ge=0, le=23, description="First allowed hour, UTC")
    end: int = Field(ge=0, le=23, description="First hour no longer allowed, UTC")
    tz: Literal["UTC"] = "UTC"

    @model_validator(mode="after")
    def _not_empty(self) -> Hours:
        if self.start == self.end:
            raise ValueError("start and end must differ (leave allowed_hours out for all day)")
        return self


class TenantAttributes(Strict):
    allowed_networks: list[str] | None = Field(default=None, max_length=64)
    allowed_hours: Hours | None = None
    regions: list[str] | None = Field(default=None, max_length=16)
    default_classification: Classification | None = None

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        out = []
        for raw in value:
            try:
                out.append(str(ipaddress.ip_network(raw, strict=False)))
            except ValueError:
                raise ValueError(f"'{raw}' is not a network (CIDR)") from None
        return out

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_region(r) for r in value]

    def stored(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.allowed_networks is not None:
            out["allowed_networks"] = self.allowed_networks
        if self.allowed_hours is not None:
            out["allowed_hours"] = [self.allowed_hours.start, self.allowed_hours.end]
        if self.regions is not None:
            out["regions"] = self.regions
        if self.default_classification is not None:
            out["default_classification"] = self.default_classification
        return out


class TenantAttributesOut(TenantAttributes):
    tenant: str


class ModelAttributes(Strict):
    classification: Classification | None = None
    sensitivity: Sensitivity | None = None
    region: str | None = None

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        return None if value is None else _region(value)

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ModelAttributesOut(ModelAttributes):
    model: str
    tenant: str | None = Field(description="Owner of a private model; null for a shared one")


class PrincipalAttributes(Strict):
    clearance: Classification | None = None

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PrincipalAttributesOut(PrincipalAttributes):
    tenant: str
    principal: str


def _region(value: str) -> str:
    if not _REGION.fullmatch(value):
        raise ValueError(f"'{value}' is not a region (lowercase letters, digits, '-')")
    return value


def tenant_out(name: str, stored: Any) -> TenantAttributesOut:
    data = dict(stored or {})
    hours = data.pop("allowed_hours", None)
    if hours:
        start, end = (int(h) for h in hours)
        data["allowed_hours"] = {"start": start, "end": end}
    known = {k: v for k, v in data.items() if k in TenantAttributes.model_fields}
    return TenantAttributesOut.model_validate({"tenant": name, **known})


def model_out(model: Model, owner: str | None) -> ModelAttributesOut:
    data = {k: v for k, v in model.attributes.items() if k in ModelAttributes.model_fields}
    if data.get("sensitivity") == "normal":  # The older name of "medium".
        data["sensitivity"] = "medium"
    return ModelAttributesOut.model_validate({"model": model.name, "tenant": owner, **data})


async def get_tenant(call: Call) -> TenantAttributesOut:
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    return tenant_out(tenant.name, tenant.attributes)


async def set_tenant(call: Call) -> TenantAttributesOut:
    body: TenantAttributes = call.body
    tenant = await call.services.control.write(
        lambda db: set_tenant_attributes(db, call.params["name"], body.stored())
    )
    return tenant_out(tenant.name, tenant.attributes)


def _owner(call: Call) -> Callable[[Session], tuple[str | None, str | None]]:
    """(name, id) of the owner in `?tenant=`, for a private model; (None, None) if shared."""
    owner = call.query.get("tenant")

    def work(db: Session) -> tuple[str | None, str | None]:
        return (owner, repo.get_tenant(db, owner).id) if owner else (None, None)

    return work


async def get_model_attributes(call: Call) -> ModelAttributesOut:
    def work(db: Session) -> ModelAttributesOut:
        owner, owner_id = _owner(call)(db)
        return model_out(get_model(db, call.params["model"], owner_id), owner)

    return await call.services.control.read(work)


async def set_model(call: Call) -> ModelAttributesOut:
    body: ModelAttributes = call.body

    def work(db: Session) -> ModelAttributesOut:
        owner, owner_id = _owner(call)(db)
        model = set_model_attributes(db, call.params["model"], owner_id, body.stored())
        return model_out(model, owner)

    return await call.services.control.write(work)


def principal_out(tenant: str, name: str, stored: Any) -> PrincipalAttributesOut:
    data = {k: v for k, v in dict(stored).items() if k in PrincipalAttributes.model_fields}
    return PrincipalAttributesOut.model_validate({"tenant": tenant, "principal": name, **data})


async def get_principal(call: Call) -> PrincipalAttributesOut:
    name, principal = call.params["name"], call.params["principal"]

    def work(db: Session) -> PrincipalAttributesOut:
        tenant = repo.get_tenant(db, name)
        found = repo.get_principal(db, tenant.id, principal)
        return principal_out(tenant.name, found.name, found.attributes)

    return await call.services.control.read(work)


async def set_principal(call: Call) -> PrincipalAttributesOut:
    body: PrincipalAttributes = call.body
    name, principal = call.params["name"], call.params["principal"]

    def work(db: Session) -> PrincipalAttributesOut:
        tenant = repo.get_tenant(db, name)
        found = set_principal_attributes(db, tenant.id, principal, body.stored())
        return principal_out(tenant.name, found.name, found.attributes)

    return await call.services.control.write(work)


_SAFEGUARDS = frozenset({Effect.CHANGE_SAFEGUARDS})


ROUTES = (
    Route.get(
        "/admin/v1/tenants/{name}/attributes",
        action="admin:tenants.attributes.get",
        handler=get_tenant,
        summary="Show a tenant's policy attributes",
        response=TenantAttributesOut,
    ),
    Route.put(
        "/admin/v1/tenants/{name}/attributes",
        action="admin:tenants.attributes.set",
        handler=set_tenant,
        summary="Replace a tenant's policy attributes (networks, hours, regions, classification)",
        body=TenantAttributes,
        response=TenantAttributesOut,
        effects=_SAFEGUARDS,
    ),
    Route.get(
        "/admin/v1/models/{model}/attributes",
        action="admin:models.attributes.get",
        handler=get_model_attributes,
        summary="Show a model's policy attributes (?tenant=NAME for a private model)",
        response=ModelAttributesOut,
    ),
    Route.put(
        "/admin/v1/models/{model}/attributes",
        action="admin:models.attributes.set",
        handler=set_model,
        summary="Replace a model's policy attributes (?tenant=NAME for a private model)",
        body=ModelAttributes,
        response=ModelAttributesOut,
        effects=_SAFEGUARDS,
    ),
    Route.get(
        "/admin/v1/tenants/{name}/principals/{principal}/attributes",
        action="admin:principals.attributes.get",
        handler=get_principal,
        summary="Show a principal's policy attributes",
        response=PrincipalAttributesOut,
    ),
    Route.put(
        "/admin/v1/tenants/{name}/principals/{principal}/attributes",
        action="admin:principals.attributes.set",
        handler=set_principal,
        summary="Replace a principal's policy attributes (clearance)",
        body=PrincipalAttributes,
        response=PrincipalAttributesOut,
        effects=_SAFEGUARDS,
    ),
)
