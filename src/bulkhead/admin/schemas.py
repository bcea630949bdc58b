"""Request and response bodies of the platform and tenant APIs.

Request models forbid unknown fields: a body that tries to set `tenant_id`
or any other field the API does not take is refused, never half-applied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bulkhead.domain import Endpoint, Retention, Role, TenantStatus, Tier
from bulkhead.guard import Action, Entity, InjectionMode


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TenantCreate(Strict):
    name: str = Field(min_length=1, max_length=63)
    tier: Tier = Tier.SHARED


class TenantUpdate(Strict):
    status: TenantStatus | None = None
    tier: Tier | None = Field(
        default=None,
        description="Move the tenant to another isolation tier: its private models' workers "
        "restart with that tier's sandbox, devices and default limits.",
    )


class TenantConfigPatch(Strict):
    """Settings to change; fields left out keep their value."""

    retention: Retention | None = None
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    kek_rotation_days: int | None = Field(default=None, ge=0, le=3650)
    require_client_cert: bool | None = Field(
        default=None, description="Accept calls only with a client certificate for the tenant."
    )
    limits_fail_open: bool | None = Field(
        default=None,
        description="Let calls through unmetered (alerted and audited) while the limiter is down.",
    )
    anomaly_throttle: bool | None = Field(
        default=None, description="Throttle a key for a while when the anomaly detector alerts."
    )


class TenantOut(BaseModel):
    id: str
    name: str
    tier: Tier
    status: TenantStatus
    created_at: datetime | None = None


class PrincipalCreate(Strict):
    name: str = Field(min_length=1, max_length=128)
    kind: Literal["user", "service"] = "user"
    roles: list[Role] = Field(min_length=1)


class PrincipalOut(BaseModel):
    id: str
    name: str
    kind: str
    roles: list[Role]


class KeyCreate(Strict):
    role: Role = Role.END_USER
    models: list[str] | None = Field(
        default=None, description="Models the key may call; all if absent."
    )
    expires_in_s: int | None = Field(default=None, ge=60, le=10 * 365 * 86400)
    name: str = Field(default="", max_length=128)
    principal: str | None = Field(
        default=None, description="Principal name; a service account if absent."
    )


class KeyOut(BaseModel):
    id: str
    tenant: str | None
    principal_id: str
    role: Role
    models: list[str] | None
    name: str
    created_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(BaseModel):
    key: KeyOut
    secret: str = Field(description="The API key. Shown once; only its hash is stored.")


class ModelCreate(Strict):
    name: str = Field(min_length=1, max_length=128)
    upstream: str | None = Field(
        default=None, description="OpenAI-compatible base URL, e.g. http://host:8000/v1"
    )
    upstream_model: str | None = None
    credential: str | None = Field(
        default=None,
        max_length=128,
        description="A registered upstream credential (`/admin/v1/upstream-credentials`).",
    )
    upstream_peer_id: str | None = Field(
        default=None,
        max_length=2048,
        description="Reach the https upstream over mutual TLS: the gateway presents its "
        "SVID and the upstream must present exactly this SPIFFE ID of the internal CA.",
    )
    worker: Literal["demo-chat", "minilm-embed", "smollm2-135m"] | None = None
    tenant: str | None = Field(
        default=None, description="Owner tenant of a private model; shared if absent."
    )
    endpoints: list[Endpoint] = Field(default_factory=lambda: [Endpoint.CHAT, Endpoint.COMPLETIONS])
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    description: str = Field(default="", max_length=1024)
    engine: Literal["openai", "vllm"] | None = Field(
        default=None, description="The upstream's engine; vllm gets a per-tenant cache_salt."
    )
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Calls in flight to a shared model; more wait in fair per-tenant queues.",
    )


class ModelOut(BaseModel):
    id: str
    name: str
    shared: bool
    owner: str | None
    endpoints: list[Endpoint]
    kind: str
    upstream: str | None
    upstream_model: str
    worker: str | None
    granted_to: list[str]
    credential: str | None = None
    artifact: str | None = Field(
        default=None, description="The imported model's encrypted artifact, if it is one."
    )
    base: str | None = Field(
        default=None, description="A fine-tuned model's base (its `base` deployment option)."
    )


class GrantCreate(Strict):
    tenant: str


class TenantModelOut(BaseModel):
    name: str
    shared: bool
    endpoints: list[Endpoint]


class UsageOut(BaseModel):
    """One group of a tenant's model calls (`store.usage`); the groups asked for are set."""

    model: str | None = None
    key: str | None = Field(
        default=None, description="The API key's id; 'session' or 'oidc' for those credentials."
    )
    reason: str | None = Field(
        default=None, description="The refusal's or error's code; '' for successful calls."
    )
    start: datetime | None = Field(default=None, description="The hour's or day's start (UTC).")
    requests: int
    successes: int
    errors: int
    refusals: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms_avg: float
    latency_ms_max: float
    latency_ms_buckets: dict[str, int] = Field(
        description="Calls per latency bucket, keyed by its upper bound in ms ('+Inf' last)."
    )


class WorkerOut(BaseModel):
    deployment: str
    kind: str
    model: str
    ready: bool
    pid: int | None
    restarts: int
    tenant: str | None = None
    tier: str | None = None
    device: str | None = None  # the GPU or MIG instance UUID; None on the CPU
    state: str = "starting"  # starting | ready | restarting | failed
    last_exit: str | None = None
    # The sandbox features the kernel holds the worker to, and those it goes without (why).
    sandbox: list[str] = Field(default_factory=list)
    sandbox_missing: list[str] = Field(default_factory=list)


# Tenant self-service: roles, rotation, model versions, quota requests ------------------------


class PrincipalUpdate(Strict):
    roles: list[Role] = Field(min_length=1)


class KeyRotate(Strict):
    grace_s: int = Field(
        default=0,
        ge=0,
        le=86400,
        description="Seconds the old key keeps working (at most a day); revoked at once if 0.",
    )


class ModelVersionCreate(Strict):
    version: str = Field(min_length=1, max_length=64)
    upstream: str = Field(
        max_length=2048,
        description="OpenAI-compatible base URL serving this version; it must match your "
        "tenant's upstream allowlist, which the platform sets.",
    )
    upstream_model: str | None = Field(default=None, max_length=256)
    credential: str | None = Field(
        default=None,
        max_length=128,
        description="An upstream credential the platform allowed your tenant to use.",
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600)


class ModelVersionOut(BaseModel):
    id: str
    model: str
    version: str
    upstream: str
    upstream_model: str
    created_at: datetime
    retired_at: datetime | None
    credential: str | None = None


QuotaName = Literal["storage_bytes", "requests_per_minute", "tokens_per_minute", "concurrency"]


class QuotaRequestCreate(Strict):
    quota: QuotaName
    value: int = Field(ge=1, le=2**62)
    reason: str = Field(min_length=10, max_length=1000)


class QuotaDecision(Strict):
    reason: str = Field(default="", max_length=1000)


class QuotaRequestOut(BaseModel):
    id: str
    tenant: str | None
    quota: str
    value: int
    reason: str
    status: str
    requested_by: str
    decided_by: str | None
    decision_reason: str | None
    created_at: datetime
    decided_at: datetime | None
    # True when approving needs a grant (`admin:quota_requests.approve` on the tenant).
    privileged: bool = False


_Quota = int | Literal["default"] | None
_QUOTA_HELP = 'A whole number, null for unlimited, or "default" for the tier\'s value.'


_Compute = int | Literal["default"] | None
_COMPUTE_HELP = "N (per namespace) or 'default' (the tier's)."


class LimitsPatch(Strict):
    """Tenant limits to change; fields left out keep their value."""

    requests_per_minute: _Quota = Field(default=None, description=_QUOTA_HELP)
    tokens_per_minute: _Quota = Field(default=None, description=_QUOTA_HELP)
    concurrency: _Quota = Field(default=None, description=_QUOTA_HELP)
    tokens_per_day: _Quota = Field(default=None, description=_QUOTA_HELP)
    tokens_per_month: _Quota = Field(default=None, description=_QUOTA_HELP)
    max_tokens_per_request: _Quota = Field(default=None, description=_QUOTA_HELP)
    default_max_tokens: int | Literal["default"] | None = Field(default=None)
    max_body_bytes: _Quota = Field(default=None, description=_QUOTA_HELP)
    share_weight: int | Literal["default"] | None = Field(default=None)
    # Kubernetes compute per namespace (`bulkhead k8s render`): never null.
    cpu_millicores: _Compute = Field(default=None, description=_COMPUTE_HELP)
    memory_mib: _Compute = Field(default=None, description=_COMPUTE_HELP)
    ephemeral_storage_mib: _Compute = Field(default=None, description=_COMPUTE_HELP)
    pods: _Compute = Field(default=None, description=_COMPUTE_HELP)
    services: _Compute = Field(default=None, description=_COMPUTE_HELP)
    secrets: _Compute = Field(default=None, description=_COMPUTE_HELP)
    pvcs: _Compute = Field(default=None, description=_COMPUTE_HELP)
    pvc_storage_mib: _Compute = Field(default=None, description=_COMPUTE_HELP)
    gpus: _Compute = Field(default=None, description=_COMPUTE_HELP)
    mig_instances: _Compute = Field(default=None, description=_COMPUTE_HELP)
    # Fine-tuning jobs running at once: never null.
    fine_tuning_concurrency: _Compute = Field(
        default=None, description="N jobs (0: none start) or 'default' (the tier's)."
    )


class KeyLimitsPatch(Strict):
    """Key limits to change (they narrow the tenant's); null removes one from the key."""

    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_minute: int | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    max_tokens_per_request: int | None = Field(default=None, ge=0)


class GuardPatch(Strict):
    """Guard settings to change; fields left out keep their value, null restores the default.

    `entities` changes the named entities' overrides only (null removes one).
    """

    pii: Action | None = Field(default=None, description="The action for personal data.")
    secrets: Action | None = Field(default=None, description="The action for credentials.")
    entities: dict[Entity, Action | None] | None = Field(
        default=None, description="Per-entity actions over `pii` and `secrets`."
    )
    scan_output: bool | None = Field(default=None, description="Apply the actions to responses.")
    injection: InjectionMode | None = Field(default=None, description="off | flag | block")
    injection_threshold: float | None = Field(default=None, gt=0, le=1)
    injection_learned: bool | None = Field(
        default=None, description="Score what the rules pass with the learned model too."
    )
    strip_images: bool | None = Field(default=None, description="Strip images to other hosts.")
    strip_links: bool | None = Field(default=None, description="Strip links to other hosts.")
    allowed_link_hosts: list[str] | None = Field(
        default=None, description="Hosts images and links may point to (`*.example.com`)."
    )
    canary: bool | None = Field(default=None, description="Put a canary in the system prompt.")
    allow_logprobs: bool | None = Field(default=None, description="Let calls ask for logprobs.")
    allow_fine_tuned_logprobs: bool | None = Field(
        default=None, description="Logprobs on fine-tuned (`ft:`) models too."
    )
    phone_regions: list[str] | None = Field(
        default=None, description="ISO 3166 regions whose national phone formats are found."
    )
    stream_window: int | None = Field(
        default=None, description="The most characters a response stream is held back by."
    )


# Upstream credentials and egress allowlists ----------------------------------------------------


class UpstreamCredentialCreate(Strict):
    """Exactly one of `env` (a variable the gateway reads) or `secret` (sealed by the KMS)."""

    name: str = Field(min_length=1, max_length=128)
    env: str | None = Field(default=None, max_length=128)
    secret: SecretStr | None = Field(
        default=None, description="Shown to no one again: only its KMS-sealed form is stored."
    )


class UpstreamCredentialOut(BaseModel):
    name: str
    source: Literal["env", "sealed"]
    env: str | None
    tenants: list[str]
    created_at: datetime


class AllowlistSet(Strict):
    entries: list[Annotated[str, Field(max_length=300)]] = Field(
        max_length=100,
        description="Host names, '*.' and a domain, or CIDRs; empty removes the allowlist.",
    )


class AllowlistOut(BaseModel):
    tenant: str
    entries: list[str]


class TenantUpstreamsOut(BaseModel):
    """What a tenant's model versions may use: the allowlist and the credentials allowed to it."""

    allowlist: list[str]
    credentials: list[str]
