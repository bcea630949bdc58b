"""The catalog as the renderer sees it, built from the management API's JSON.

`TenantView.from_api(tenant, limits)` takes an item of `GET /admin/v1/tenants`
and, optionally, the body of `GET /admin/v1/tenants/{name}/limits`; a limit
the answer lacks takes the tier's default.  `ModelView.from_api` takes an
item of `GET /admin/v1/models`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bulkhead.domain import Tier
from bulkhead.errors import InvalidRequest
from bulkhead.limits.policy import COMPUTE_QUOTAS, effective

# A fine-tuned model in the catalog (`render.lora`): its worker kind, and the deployment
# options naming its adapter's artifact and its base (a bundled model's name, or
# "artifact:<id>" for an imported one).  One place, to be aligned with the registration.
LORA_WORKER = "hf-causal-lora"
ADAPTER_OPTION = "artifact"
BASE_OPTION = "base"
BASE_ARTIFACT_PREFIX = "artifact:"


def _text(body: Mapping[str, Any], key: str, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"The {what} has no '{key}'.", param=key)
    return value


@dataclass(frozen=True, slots=True)
class TenantView:
    """A tenant: name, id, tier, status and its effective limits (tier defaults filled in)."""

    name: str
    id: str
    tier: Tier
    status: str = "active"
    limits: Mapping[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limits", effective(self.tier, self.limits))

    @classmethod
    def from_api(
        cls, tenant: Mapping[str, Any], limits: Mapping[str, Any] | None = None
    ) -> TenantView:
        try:
            tier = Tier(str(tenant.get("tier")))
        except ValueError:
            raise InvalidRequest(f"Unknown tier {tenant.get('tier')!r}.", param="tier") from None
        values: dict[str, int | None] = {}
        for name, shown in ((limits or {}).get("limits") or {}).items():
            value = shown.get("value") if isinstance(shown, Mapping) else shown
            if value is None or (isinstance(value, int) and not isinstance(value, bool)):
                values[name] = value
        return cls(
            name=_text(tenant, "name", "tenant"),
            id=_text(tenant, "id", "tenant"),
            tier=tier,
            status=str(tenant.get("status") or "active"),
            limits=values,
        )

    def compute(self, name: str) -> int:
        """One compute limit; an unbounded one cannot be a Kubernetes quota."""
        value = self.limits.get(name)
        if name not in COMPUTE_QUOTAS or value is None or value < 0:
            raise InvalidRequest(
                f"Tenant '{self.name}' has no bound on {name}: set it with "
                f"PATCH /admin/v1/tenants/{self.name}/limits.",
                param=name,
            )
        return value


@dataclass(frozen=True, slots=True)
class ModelView:
    """A model: where it runs (`kind` local or upstream), who owns it and who may use it."""

    name: str
    owner: str | None = None
    kind: str = "local"
    upstream_model: str = ""
    worker: str | None = None
    granted_to: tuple[str, ...] = ()
    artifact: str | None = None
    # A fine-tuned model's base (`BASE_OPTION`); None for any other model.
    base: str | None = None

    @property
    def local(self) -> bool:
        return self.kind == "local"

    @classmethod
    def from_api(cls, model: Mapping[str, Any]) -> ModelView:
        granted = model.get("granted_to") or ()
        return cls(
            name=_text(model, "name", "model"),
            owner=model.get("owner") or None,
            kind=str(model.get("kind") or "upstream"),
            upstream_model=str(model.get("upstream_model") or ""),
            worker=model.get("worker") or None,
            granted_to=tuple(sorted(str(t) for t in granted)),
            artifact=model.get(ADAPTER_OPTION) or None,
            base=_option(model, BASE_OPTION),
        )


def _option(model: Mapping[str, Any], key: str) -> str | None:
    """A deployment option, as the model's own field or in its `options`."""
    options = model.get("options")
    value = model.get(key) or (options.get(key) if isinstance(options, Mapping) else None)
    return str(value) if value else None


def served_models(
    tenant: TenantView, models: list[ModelView] | tuple[ModelView, ...]
) -> list[ModelView]:
    """The local models that run in the tenant's namespace: its own, and for a
    `dedicated` tenant each shared one granted to it; by name.  A fine-tuned model
    (`LORA_WORKER`) runs in its base's server, not one of its own (`render.lora`)."""
    found = [m for m in models if m.local and m.owner == tenant.name and m.worker != LORA_WORKER]
    if tenant.tier is Tier.DEDICATED:
        found += [m for m in models if m.local and m.owner is None and tenant.name in m.granted_to]
    return sorted(found, key=lambda m: m.name)
