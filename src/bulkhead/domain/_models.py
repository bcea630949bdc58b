"""Models and the deployments that serve them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Endpoint(enum.StrEnum):
    """An OpenAI-compatible operation a model can serve."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


class DeploymentKind(enum.StrEnum):
    UPSTREAM = "upstream"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Model:
    """A model name as tenants see it.

    `owner_tenant_id` None means a shared model, usable by the tenants it is
    granted to; otherwise the model is private to its owner.
    """

    id: str
    name: str
    owner_tenant_id: str | None
    endpoints: frozenset[Endpoint]
    description: str = ""
    # Policy attributes: "classification", "sensitivity", "region" (read by `bulkhead.policy`).
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def shared(self) -> bool:
        return self.owner_tenant_id is None


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where a model's calls go: an OpenAI-compatible upstream or a local worker.

    `credential` names a platform-registered upstream credential, never a
    secret or where one lives.  `chosen_by_tenant` marks an upstream a tenant
    picked (a model version): it holds to the tenant's egress allowlist and
    its failures reach the tenant as one opaque error.
    """

    id: str
    model_id: str
    kind: DeploymentKind
    base_url: str = ""
    upstream_model: str = ""
    credential: str | None = None
    worker: str | None = None
    timeout_s: float = 60.0
    options: dict[str, str] = field(default_factory=dict)
    chosen_by_tenant: bool = False


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    model: Model
    deployment: Deployment
