"""Backend factories: each picks a concrete backend (KMS, limiter, database, witnesses,
worker supervisor and model client, TLS) from settings."""

from __future__ import annotations

import ssl
from datetime import timedelta
from typing import Any

from bulkhead.audit.sequencer import FileWitness, HttpWitness, Witness
from bulkhead.crypto import Kms, LocalKms, load_or_create_master_key, master_key_from_base64
from bulkhead.errors import ConfigError
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.spiffe import workload_id
from bulkhead.identity.tls import ClientCaContext, RotatingIdentity
from bulkhead.limits import InMemoryLimiter, Limiter
from bulkhead.limits.fairshare import FairQueues, SharedCapacity
from bulkhead.observe import tracing
from bulkhead.observe.alerts import WebhookPoster
from bulkhead.observe.tracing import Tracing
from bulkhead.runtime import UpstreamClient, WorkerSupervisor
from bulkhead.runtime.egress import EgressPolicy
from bulkhead.runtime.sandbox import Sandbox, SandboxPolicy, operator_policy
from bulkhead.runtime.traced import TracedUpstreamClient
from bulkhead.settings import Settings
from bulkhead.store import Database, TenantBounds, upgrade


def open_database(settings: Settings) -> Database:
    """The store, migrated (as its owner where one is set): `serve` needs no `init`."""
    make_data_dir(settings)
    db = Database(settings.database_url, tenant_bounds(settings))
    upgrade(db, settings.database_admin_url)
    return db


def make_data_dir(settings: Settings) -> None:
    """The data directory, made if missing (owner only); one that cannot be made is a bad
    setting (`ConfigError`: one line, exit 2), not a traceback."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"BULKHEAD_DATA_DIR {settings.data_dir}: cannot create it ({exc.strerror}); "
            "give a directory this user can create or write"
        ) from None


def tenant_bounds(settings: Settings) -> TenantBounds:
    """The operator's per-tenant bounds (`BULKHEAD_TENANT_MAX_*`), for the store."""
    return TenantBounds(
        keys=settings.tenant_max_keys,
        principals=settings.tenant_max_principals,
        live_versions=settings.model_max_live_versions,
        pending_quota_requests=settings.tenant_max_pending_quota_requests,
        tuned_models=settings.tenant_max_tuned_models,
        files=settings.tenant_max_files,
        vector_stores=settings.tenant_max_vector_stores,
        vector_store_files=settings.vector_store_max_files,
        sessions_per_principal=settings.max_sessions_per_principal,
        model_versions=settings.tenant_max_model_versions,
        fine_tuning_jobs=settings.tenant_max_fine_tuning_jobs,
    )


def open_kms(settings: Settings) -> Kms:
    """The KMS: a PKCS#11 token, or the embedded keyring under a master key (env or 0600 file)."""
    if settings.kms_backend == "pkcs11":
        if not (settings.pkcs11_module and settings.pkcs11_token and settings.pkcs11_pin):
            raise ConfigError("BULKHEAD_KMS=pkcs11 needs a PKCS#11 module, token and PIN")
        # Imported only when chosen: the PKCS#11 bindings cost memory in every gateway.
        from bulkhead.crypto.kms_pkcs11 import Pkcs11Kms

        return Pkcs11Kms(settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_pin)
    directory = settings.data_dir / "kms"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    master = (
        master_key_from_base64(settings.kms_master_key)
        if settings.kms_master_key
        else load_or_create_master_key(directory / "master.key")
    )
    return LocalKms(directory, master)


def open_limiter(settings: Settings) -> Limiter:
    """Limits shared by every replica through Redis, or kept in this process."""
    if settings.redis_url:
        # Imported only when chosen: the Redis client costs some 25 MB and 0.15 s at start-up.
        from bulkhead.limits.redis_limiter import RedisLimiter

        return RedisLimiter.from_url(settings.redis_url, lease_s=settings.slot_lease_s)
    return InMemoryLimiter()


def open_capacity(settings: Settings) -> SharedCapacity:
    """Shared deployments' slots: shared by every replica through Redis, or per process."""
    if settings.redis_url:
        from bulkhead.limits.redis_share import RedisCapacity  # only when chosen, as above

        return RedisCapacity(
            settings.redis_url,
            default_capacity=settings.shared_capacity,
            max_wait_s=settings.queue_wait_s,
            lease_s=settings.slot_lease_s,
        )
    return FairQueues(default_capacity=settings.shared_capacity, max_wait_s=settings.queue_wait_s)


def open_webhook(settings: Settings) -> WebhookPoster | None:
    """The one client every operator alert is POSTed through, if a webhook is set."""
    url = settings.alert_webhook_url
    return WebhookPoster(url) if url else None


def audit_witnesses(settings: Settings) -> list[Witness]:
    """Where signed checkpoints go: a file in the data dir, and a witness service if set."""
    witnesses: list[Witness] = [FileWitness(settings.data_dir / "audit" / "checkpoints.txt")]
    if settings.audit_witness_url:
        witnesses.append(HttpWitness(settings.audit_witness_url))
    return witnesses


def workload_clients(settings: Settings, ca: InternalCA) -> tuple[WorkerSupervisor, UpstreamClient]:
    """The worker supervisor and the model client, with the gateway's rotating SVID."""
    lifetime = timedelta(seconds=settings.svid_lifetime_s)
    gateway_id = workload_id(ca.trust_domain, "gateway")
    identity = RotatingIdentity(ca, gateway_id, server=False, lifetime=lifetime)
    workers = WorkerSupervisor(
        ca=ca if settings.worker_mtls else None,
        svid_lifetime=lifetime,
        sandbox=Sandbox(sandbox_policy(settings)),
        # Workers a gateway that died left behind (kill -9) are killed on start.
        ledger_dir=settings.data_dir / "workers",
    )
    options: dict[str, Any] = {
        "connect_timeout_s": settings.upstream_connect_timeout_s,
        "identity": identity,
        "egress": EgressPolicy.platform(settings.upstream_allow_cidrs),
    }
    # With tracing on, the client that makes a span of each call (`runtime.traced`).
    tracing = start_tracing(settings)
    if tracing is None:
        return workers, UpstreamClient(**options)
    return workers, TracedUpstreamClient(tracing=tracing, **options)


def start_tracing(settings: Settings) -> Tracing | None:
    """Tracing to the operator's OTLP endpoint; None (and `opentelemetry` never imported)
    when no endpoint is configured."""
    if settings.otlp_endpoint is None:
        return None
    return tracing.start(
        endpoint=settings.otlp_endpoint,
        headers=dict(settings.otlp_headers),
        service_name=settings.otlp_service_name,
        sample_ratio=settings.trace_sample_ratio,
    )


def sandbox_policy(settings: Settings) -> SandboxPolicy:
    """The workers' sandbox as the operator set it; the data dir is always hidden."""
    return operator_policy(
        settings.worker_sandbox,
        uid_base=settings.worker_uid_base,
        uid_count=settings.worker_uid_count,
        memory_mb=settings.worker_memory_mb,
        data_dir=settings.data_dir,
    )


def server_ssl_context(settings: Settings, ca: InternalCA) -> ssl.SSLContext | None:
    """The public listener's TLS context (None: plaintext); it asks for client certs from `ca`."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        # Its client-certificate trust follows the CA's rotations (`ClientCaContext`).
        return ClientCaContext(settings.tls_cert, settings.tls_key, ca).server_context()
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the TLS certificate or key: {exc}") from None
