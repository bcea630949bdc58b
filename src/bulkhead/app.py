"""The composition root: the one place that picks concrete backends from settings."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bulkhead.admin import build_admin
from bulkhead.admin.enrolment import Enrolment
from bulkhead.admin.signin import SignIn, SignInEndpoints
from bulkhead.app_keys import PlatformKeys, rotate_audit_key
from bulkhead.audit import WriterState
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import AuditLog, append_batch
from bulkhead.audit.sequencer import FileWitness, HttpWitness, Sequencer, Witness
from bulkhead.crypto import (
    Kms,
    LocalKms,
    load_or_create_master_key,
    master_key_from_base64,
)
from bulkhead.domain import DeploymentKind, Endpoint, PrincipalKind, Role, TenantContext, Tier
from bulkhead.errors import ConfigError
from bulkhead.gateway import GatewayDeps, build_chain
from bulkhead.gateway.guards import GuardBook
from bulkhead.guard.anomaly import AnomalyDetector
from bulkhead.identity import OidcValidator
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.passwords import Passwords
from bulkhead.identity.spiffe import workload_id
from bulkhead.identity.tls import ClientCaContext, RotatingIdentity
from bulkhead.identity.totp_vault import TotpVault
from bulkhead.limits import InMemoryLimiter, LimitAdmission, Limiter, O200kCounter, UsageLedger
from bulkhead.limits.attempts import AttemptLimits
from bulkhead.limits.fairshare import FairQueues
from bulkhead.limits.pool import WorkPool
from bulkhead.limits.redis_limiter import RedisLimiter
from bulkhead.observe import Metrics
from bulkhead.observe.alerts import Alert, Alerter, WebhookPoster, audit_callback
from bulkhead.pam import AccessService, WebhookAlert
from bulkhead.policy import CedarAuthorizer
from bulkhead.runtime import UpstreamClient, WorkerSpec, WorkerSupervisor
from bulkhead.runtime.egress import EgressPolicy
from bulkhead.runtime.gpu import Device, Want, devices, place, system_inventory
from bulkhead.runtime.sandbox import Sandbox, policy_from_settings
from bulkhead.settings import Settings
from bulkhead.store import Catalog, Database, Snapshot, repo, upgrade
from bulkhead.store.artifacts import OPTION as ARTIFACT_OPTION
from bulkhead.store.artifacts import ArtifactService
from bulkhead.store.blobs import BlobStore
from bulkhead.store.ca_keys import CaKeyring
from bulkhead.store.files import FileService
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.platform_keys import PlatformKeyStore
from bulkhead.store.retention import RetentionStore
from bulkhead.store.sealed import SealedColumns
from bulkhead.store.session_keys import SessionKeyring
from bulkhead.store.sessions import SessionVerifier
from bulkhead.store.upstreams import CredentialVault
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send

log = logging.getLogger("bulkhead")

# Young collections less often than Python's default (docs/benchmarks.md: c=64 from 2,523
# to 3,404 req/s, p99 from 94 to 26 ms).  Each holds the event loop while it runs, so
# nothing a request leaves behind may need one: an answered error's traceback is cleared
# (`gateway.errors`), or a refused body held in a cycle stalls the loop for tens of ms.
GC_THRESHOLDS = (50_000, 20, 100)

DEMO_TENANT = "demo"
DEMO_MODELS = (
    (
        "demo-chat",
        "demo-chat",
        (Endpoint.CHAT, Endpoint.COMPLETIONS),
        "DEMO: a tiny random-weight model; its text is meaningless.",
    ),
    (
        "minilm-embed",
        "minilm-embed",
        (Endpoint.EMBEDDINGS,),
        "Sentence embeddings from all-MiniLM-L6-v2 (384 dimensions).",
    ),
)


def local_specs(
    snapshot: Snapshot,
    artifacts: ArtifactService | None = None,
    gpus: Sequence[Device] = (),
) -> list[WorkerSpec]:
    """The workers the catalog wants, each on its tier's sandbox and device (`runtime.gpu`)."""
    specs = []
    for r in snapshot.deployments:
        if r.deployment.kind is not DeploymentKind.LOCAL:
            continue
        source = r.deployment.options.get(ARTIFACT_OPTION, "")
        owner = r.model.owner_tenant_id
        tenant = snapshot.tenants.get(owner) if owner is not None else None
        loader = None
        if source and owner is not None and artifacts is not None:
            # Decrypts in the gateway and checks every file's SHA-256; the worker gets
            # the bytes over its stdin, never a path.
            loader = functools.partial(artifacts.load, owner, source)
        specs.append(
            WorkerSpec(
                key=r.deployment.id,
                kind=r.deployment.worker or "",
                model_name=r.model.name,
                source=source,
                load_weights=loader,
                tenant=owner,
                # The owner's tier picks the worker's sandbox limits; shared models run shared.
                tier=tenant.tier if tenant is not None else Tier.SHARED,
            )
        )
    if not gpus:
        return specs
    placed = place(gpus, [Want(s.key, s.tenant, s.tier) for s in specs])
    return [
        dataclasses.replace(s, device_env=a.env()) if (a := placed.get(s.key)) else s for s in specs
    ]


class Application:
    """The ASGI application: the gateway chain plus its start-up and shut-down."""

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database,
        chain: ASGIApp,
        catalog: Catalog,
        workers: WorkerSupervisor,
        upstreams: UpstreamClient,
        audit: AuditLog,
        sequencer: Sequencer,
        metrics: Metrics,
        maintenance: Maintenance,
        artifacts: ArtifactService | None = None,
        ca: InternalCA | None = None,
        admission: LimitAdmission | None = None,
        gpus: Sequence[Device] = (),
        pools: Sequence[WorkPool] = (),
        session_keys: SessionKeyring | None = None,
        platform_keys: PlatformKeys | None = None,
    ):
        self.settings = settings
        self.session_keys, self.platform_keys = session_keys, platform_keys
        self.pools = tuple(pools)
        self.admission = admission
        # The GPUs and MIG devices found at start-up, which workers are pinned to.
        self.gpus = tuple(gpus)
        self.artifacts = artifacts
        self.ca = ca
        self.maintenance = maintenance
        self._maintainer: asyncio.Task[None] | None = None
        self.db, self.chain, self.catalog = db, chain, catalog
        self.workers, self.upstreams, self.audit, self.metrics = workers, upstreams, audit, metrics
        self.sequencer = sequencer
        self._poller: asyncio.Task[None] | None = None
        self._synced = 0  # the catalog version the workers were last synced to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.chain(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        # Everything built so far lives as long as the process: move it out of the
        # collector's sight, so that full collections over start-up objects stop pausing
        # requests; then keep each collection short (`GC_THRESHOLDS`).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self._synced = self.catalog.snapshot.version
        if self.settings.start_workers:
            self.workers.sync(local_specs(self.catalog.snapshot, self.artifacts, self.gpus))
        self._poller = asyncio.get_running_loop().create_task(self._poll())
        if self.settings.maintenance_interval_s > 0:
            self._maintainer = asyncio.get_running_loop().create_task(self._maintain())

    async def _maintain(self) -> None:
        """Key rotation and retention purge, on a timer, off the event loop."""
        while True:
            try:
                await asyncio.to_thread(self.maintenance.run_once)
            except Exception as exc:  # A failing KMS or database: alert and try again later.
                log.error("maintenance failed: %s", type(exc).__name__)
            await asyncio.sleep(self.settings.maintenance_interval_s)

    async def _poll(self) -> None:
        """Notice changes made by other replicas (or the CLI through another one)."""
        while True:
            await asyncio.sleep(self.settings.catalog_poll_s)
            try:
                changed = await asyncio.to_thread(self.catalog.refresh_if_changed)
            except Exception as exc:  # The database may be briefly away; keep serving.
                log.warning("catalog refresh failed: %s", type(exc).__name__)
                continue
            # A change made through this replica's own API reloaded the catalog already
            # (so `changed` is False), but its workers still have to follow it.
            synced, self._synced = self._synced, self.catalog.snapshot.version
            if (changed or synced != self._synced) and self.settings.start_workers:
                self.workers.sync(local_specs(self.catalog.snapshot, self.artifacts, self.gpus))

    async def shutdown(self) -> None:
        for task in (self._poller, self._maintainer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.upstreams.close()
        await self.workers.close()
        for pool in self.pools:
            pool.close()
        self.maintenance.retention.close()
        self.audit.close()
        self.sequencer.close()
        self.db.dispose()


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


def build(settings: Settings) -> Application:
    """Wire the gateway from settings; migrations run here, so `serve` needs no `init`."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(settings.database_url)
    upgrade(db, settings.database_admin_url)
    kms = open_kms(settings)

    def emit_key(action: str, owner: str, detail: str) -> None:
        audit.emit(key_event(action, owner, detail))

    keyring = TenantKeyring(
        kms, BlobStore(settings.data_dir / "blobs"), holders=(SealedColumns(db),), on_event=emit_key
    )
    # The platform's own keys (audit signing, CA, cache salt) live sealed in the database
    # every replica shares (`store.platform_keys`), the audit key in the HSM where it can.
    platform = PlatformKeys.open(
        settings, db, keyring, emit_key, lambda name: rotation_alerts(name)
    )
    witnesses: list[Witness] = [FileWitness(settings.data_dir / "audit" / "checkpoints.txt")]
    if settings.audit_witness_url:
        witnesses.append(HttpWitness(settings.audit_witness_url))
    sequencer = Sequencer(db, platform.audit, settings.audit_origin, witnesses=witnesses)
    metrics, ledger = Metrics(), UsageLedger()
    webhook = settings.alert_webhook_url
    audit = AuditLog(db, on_commit=sequencer.nudge, on_state=audit_alert(metrics, webhook))
    metrics.watch_audit(audit.state)
    rotation_alerts = rotation_alerter(metrics, audit, webhook)
    ca, salts = platform.load()
    sequencer.start()
    # Upstream credentials are opened when the catalog loads, never per request.
    credentials = CredentialVault(kms, keyring.ensure)
    # The keys that sign session ids live sealed in the database all replicas share
    # (`store.session_keys`); a start-up that cannot open them fails here.
    session_keys = SessionKeyring(db, kms, keyring.ensure, on_event=emit_key)
    session_keys.load()
    # Tenants' policies are compiled as the catalog loads them, off the event loop.
    authorizer = CedarAuthorizer(lambda: (catalog.snapshot.version, catalog.snapshot.policies))

    def prepare(snap: Snapshot) -> None:
        authorizer.prepare(snap.tenants.values(), snap.policies)
        # A session key, CA version or cache-salt secret another replica added is
        # held here within a catalog poll.
        session_keys.refresh()
        platform.refresh()

    catalog = Catalog(db, opener=credentials.open, prepare=prepare)
    catalog.reload()
    metrics.watch_key_ages(platform.inventory.oldest_ages)
    workers, upstreams = workload_clients(settings, ca)
    files = FileService(db, keyring, max_file_bytes=settings.max_file_bytes)
    artifacts = ArtifactService(db, keyring)
    retention = RetentionStore(db, keyring)
    pam = AccessService(db, emit=audit.emit, alert=WebhookAlert(webhook) if webhook else None)
    passwords = Passwords()
    # Argon2id runs on threads of its own (sign-in and password resets), so anonymous
    # sign-ins cannot queue in front of control-plane calls on the default executor.
    password_pool = WorkPool(
        "passwords",
        workers=settings.signin_workers,
        queue=settings.signin_queue,
        code="passwords_busy",
    )
    sessions = SessionVerifier(db, catalog, session_keys.current)
    vault = TotpVault(kms, keyring.ensure)
    limiter = open_limiter(settings)
    attempts = AttemptLimits(
        limiter, per_client_rpm=settings.signin_client_rpm, rpm=settings.signin_rpm
    )
    sign_in = SignInEndpoints(
        SignIn(db, passwords, vault, keys=session_keys.current, ca=ca),
        sessions,
        catalog,
        pool=password_pool,
        attempts=attempts,
        enrolment=Enrolment(db, passwords, vault, keys=session_keys.current),
    )
    management, doc = build_admin(
        db=db,
        catalog=catalog,
        authorizer=authorizer,
        ledger=ledger,
        workers=workers,
        audit_origin=settings.audit_origin,
        ca=ca,
        rotate_audit_key=lambda: rotate_audit_key(platform.audit, sequencer),
        keyring=keyring,
        retention=retention,
        artifacts=artifacts,
        pam=pam,
        passwords=passwords,
        password_pool=password_pool,
        gpu_inventory=system_inventory,
        credentials=credentials,
        platform_egress=EgressPolicy.platform(settings.upstream_allow_cidrs),
        key_inventory=platform.inventory,
        platform_rotations=platform.on_demand(),
    )
    alert = WebhookAlert(webhook) if webhook else None
    limits = admission(settings, catalog, audit, alert, metrics, limiter)
    # One detector for the anomaly layer and the guards' hits, so both feed its baselines.
    detector = anomaly_detector(catalog, audit, metrics, webhook)
    chain = build_chain(
        GatewayDeps(
            catalog=catalog,
            authorizer=authorizer,
            admission=limits,
            anomaly=detector,
            fair_queues=FairQueues(
                default_capacity=settings.shared_capacity, max_wait_s=settings.queue_wait_s
            ),
            salts=salts,
            guards=GuardBook(),
            on_guard_hit=detector.guard_hit,
            ledger=ledger,
            upstreams=upstreams,
            workers=workers,
            audit=audit,
            metrics=metrics,
            management=management,
            openapi=doc,
            max_body_bytes=settings.max_body_bytes,
            files=files,
            max_file_bytes=settings.max_file_bytes,
            retention=retention,
            max_model_bytes=settings.max_model_bytes,
            tls=settings.tls_cert is not None,
            client_ca=ca,
            sessions=sessions,
            oidc=OidcValidator(),
            sign_in=sign_in,
        )
    )
    return Application(
        settings,
        db=db,
        chain=chain,
        catalog=catalog,
        workers=workers,
        upstreams=upstreams,
        audit=audit,
        sequencer=sequencer,
        metrics=metrics,
        ca=ca,
        maintenance=Maintenance(
            db,
            keyring,
            retention,
            audit,
            pam,
            session_keys=session_keys,
            platform_keys=platform.rotate_due,
        ),
        artifacts=artifacts,
        admission=limits,
        gpus=devices(system_inventory()),
        pools=(password_pool,),
        session_keys=session_keys,
        platform_keys=platform,
    )


def open_limiter(settings: Settings) -> Limiter:
    """Limits shared by every replica through Redis, or kept in this process."""
    if settings.redis_url:
        return RedisLimiter.from_url(settings.redis_url)
    return InMemoryLimiter()


def audit_alert(metrics: Metrics, webhook: str | None) -> Callable[[WriterState], None]:
    """Tells operators when audit events stop being written, and when they are again.

    The writer also logs it (critical); this adds the webhook and
    `bulkhead_alerts_total`.  Not the audit log itself: it is what failed.
    """
    alerter = Alerter(
        webhook=WebhookPoster(webhook) if webhook else None, metrics=metrics, cooldown_s=60.0
    )

    def on_state(state: WriterState) -> None:
        kind = "audit.writer_recovered" if state.healthy else "audit.writer_failing"
        figures: dict[str, float] = {"backlog": state.backlog, "dropped": state.dropped}
        if state.failing_since is not None:
            figures["failing_since"] = state.failing_since
        alerter.send(Alert(kind=kind, tenant_id="-", figures=figures))

    return on_state


def rotation_alerter(
    metrics: Metrics, audit: AuditLog, webhook: str | None
) -> Callable[[str], None]:
    """Tells operators (webhook, audit log, `bulkhead_alerts_total`) of a scheduled key
    rotation that failed (that key goes on doing new work past its period), or of a
    replica that could not follow another's rotation."""
    alerter = Alerter(
        webhook=WebhookPoster(webhook) if webhook else None,
        audit=audit_callback(audit.emit),
        metrics=metrics,
    )

    def failed(what: str) -> None:
        alerter.send(Alert(kind=f"keys.{what}", tenant_id="-"))

    return failed


def anomaly_detector(
    catalog: Catalog, audit: AuditLog, metrics: Metrics, webhook: str | None
) -> AnomalyDetector:
    """Baselines per key and tenant; alerts to the webhook, the audit log and metrics."""
    alerter = Alerter(
        webhook=WebhookPoster(webhook) if webhook else None,
        audit=audit_callback(audit.emit),
        metrics=metrics,
    )

    def throttle(tenant_id: str) -> bool:
        tenant = catalog.snapshot.tenants.get(tenant_id)
        return tenant is not None and tenant.config.anomaly_throttle

    return AnomalyDetector(alert=alerter.send, throttle_on_alert=throttle)


def admission(
    settings: Settings,
    catalog: Catalog,
    audit: AuditLog,
    alert: WebhookAlert | None,
    metrics: Metrics,
    limiter: Limiter | None = None,
) -> LimitAdmission:
    """Rate limits, budgets and concurrency for every call; fail-open is alerted and audited."""

    def key_quotas(credential_id: str) -> Any:
        key = catalog.snapshot.keys.get(credential_id)
        return key.limits if key is not None else None

    def on_fail_open(ctx: TenantContext) -> None:
        tenant_id = ctx.tenant_id or ""
        log.warning("rate limiter down: tenant %s is failing open", tenant_id)
        audit.emit(key_event("limits.fail_open", tenant_id, "limiter unavailable"))
        tenant = catalog.snapshot.tenants.get(tenant_id)
        metrics.alerts.labels(tenant.name if tenant else tenant_id, "limits.fail_open").inc()
        if alert is not None:
            alert({"alert": "limits.fail_open", "tenant_id": tenant_id})

    return LimitAdmission(
        limiter or open_limiter(settings),
        O200kCounter(),
        key_quotas=key_quotas,
        on_fail_open=on_fail_open,
    )


def workload_clients(settings: Settings, ca: InternalCA) -> tuple[WorkerSupervisor, UpstreamClient]:
    """The worker supervisor and the model client, with the gateway's rotating SVID."""
    lifetime = timedelta(seconds=settings.svid_lifetime_s)
    gateway_id = workload_id(ca.trust_domain, "gateway")
    identity = RotatingIdentity(ca, gateway_id, server=False, lifetime=lifetime)
    workers = WorkerSupervisor(
        ca=ca if settings.worker_mtls else None,
        svid_lifetime=lifetime,
        sandbox=Sandbox(policy_from_settings(settings)),
        # Workers a gateway that died left behind (kill -9) are killed on start.
        ledger_dir=settings.data_dir / "workers",
    )
    upstreams = UpstreamClient(
        connect_timeout_s=settings.upstream_connect_timeout_s,
        identity=identity,
        egress=EgressPolicy.platform(settings.upstream_allow_cidrs),
    )
    return workers, upstreams


def server_ssl_context(settings: Settings, ca: InternalCA) -> ssl.SSLContext | None:
    """The public listener's TLS context (None: plaintext); it asks for client certs from `ca`."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        # Its client-certificate trust follows the CA's rotations (`ClientCaContext`).
        return ClientCaContext(settings.tls_cert, settings.tls_key, ca).server_context()
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the TLS certificate or key: {exc}") from None


def key_event(action: str, tenant_id: str, detail: str) -> AuditEvent:
    """An audit event for a key operation, whoever started it (API call or scheduler)."""
    return AuditEvent(
        action=f"system:{action}",
        outcome="success",
        status=200,
        tenant_id=tenant_id,
        resource=tenant_id,
        reason=detail,
    )


class Maintenance:
    """Scheduled work: KEK rotation when a tenant's period has passed, retention purge,
    marking lapsed privileged-access grants expired (on the record), rotating the
    session key once it is `store.session_keys.ROTATE_AFTER` old, and the platform's
    own keys (`app_keys.PlatformKeys.rotate_due`)."""

    def __init__(
        self,
        db: Database,
        keyring: TenantKeyring,
        retention: RetentionStore,
        audit: AuditLog,
        pam: AccessService | None = None,
        *,
        session_keys: SessionKeyring | None = None,
        platform_keys: Callable[[datetime | None], dict[str, int]] | None = None,
    ):
        self.db, self.keyring, self.retention, self.audit = db, keyring, retention, audit
        self.pam, self.session_keys, self.platform_keys = pam, session_keys, platform_keys

    def run_once(self, now: datetime | None = None) -> dict[str, int]:
        rotated = 0
        with self.db.platform_transaction() as session:
            tenants = repo.list_tenants(session)
        for tenant in tenants:
            if self.keyring.due(tenant.id, tenant.config.kek_rotation_days, now):
                self.keyring.rotate(tenant.id, reason="scheduled")
                rotated += 1
        purged = self.retention.purge(now)
        if purged:
            self.audit.emit(
                AuditEvent(
                    action="system:retention.purge",
                    outcome="success",
                    status=200,
                    reason=f"{purged} expired exchange(s) deleted",
                )
            )
        expired = self.pam.expire_due() if self.pam is not None else 0
        keys = self.session_keys is not None and self.session_keys.rotate_if_due(now)
        done = {"rotated": rotated, "purged": purged, "expired": expired, "session_keys": int(keys)}
        return done | (self.platform_keys(now) if self.platform_keys is not None else {})


# Initialisation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitResult:
    profile: Path
    admin_key: str
    demo_key: str | None
    created: bool

    def __repr__(self) -> str:
        return f"InitResult(profile={str(self.profile)!r}, created={self.created})"


def _write_private(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))


def _bootstrap(db: Database) -> tuple[str, str]:
    """Create the platform admin, the demo models and the demo tenant; return both keys."""
    with db.platform_transaction() as session:
        admin = repo.create_principal(
            session, None, "admin", PrincipalKind.USER, [Role.PLATFORM_ADMIN]
        )
        admin_key = repo.create_key(
            session, None, role=Role.PLATFORM_ADMIN, principal=admin, name="bootstrap"
        )
        tenant = repo.create_tenant(session, DEMO_TENANT, Tier.SHARED)
        for name, worker, endpoints, description in DEMO_MODELS:
            spec = repo.DeploymentSpec(DeploymentKind.LOCAL, worker=worker, timeout_s=120)
            repo.add_model(session, name, None, endpoints, spec, description)
            repo.grant_model(session, name, tenant.id)
        demo_key = repo.create_key(session, tenant.id, role=Role.END_USER, name="demo")
    # `init` works on the store directly, so it records its own changes.
    append_batch(
        db,
        [
            _init_event("init:principals.create", None, admin.id),
            _init_event("init:keys.create", None, admin.id, admin_key.key.id),
            _init_event("init:tenants.create", tenant.id, tenant.id),
            *(_init_event("init:models.create", None, name) for name, *_ in DEMO_MODELS),
            *(_init_event("init:models.grant", tenant.id, name) for name, *_ in DEMO_MODELS),
            _init_event("init:keys.create", tenant.id, demo_key.key.principal_id, demo_key.key.id),
        ],
    )
    return admin_key.secret, demo_key.secret


def _init_event(
    action: str, tenant_id: str | None, resource: str, credential: str | None = None
) -> AuditEvent:
    return AuditEvent(
        action=action,
        outcome="success",
        status=0,
        tenant_id=tenant_id,
        principal_id="bulkhead-init",
        resource=resource,
        credential_id=credential,
        # What a creation made: the key, else the principal, tenant or model named.
        object_id=credential or (resource if action.endswith(".create") else None),
    )


def _create_ca(settings: Settings, db: Database) -> None:
    """The internal CA, made by `init` so that its key is sealed before anything serves."""
    kms = open_kms(settings)
    try:
        keyring = TenantKeyring(kms, BlobStore(settings.data_dir / "blobs"))
        store = PlatformKeyStore(db, kms, keyring.ensure)
        CaKeyring(store, settings.trust_domain).load(settings.data_dir / "ca")
    finally:
        close = getattr(kms, "close", None)
        if close is not None:
            close()


def initialize(settings: Settings, url: str) -> InitResult:
    """Idempotent: create the store, bootstrap once, and (re)write the CLI profile."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(settings.data_dir, 0o700)
    db = Database(settings.database_url)
    try:
        upgrade(db, settings.database_admin_url)
        profile = settings.data_dir / "profile.json"
        with db.platform_transaction() as session:
            bootstrapped = bool(repo.list_principals(session, None))
        if bootstrapped and profile.exists():
            data = orjson.loads(profile.read_bytes())
            return InitResult(profile, data["key"], data.get("demo_key"), created=False)
        if bootstrapped:
            raise ConfigError(f"the store is initialised but {profile} is missing")
        admin_key, demo_key = _bootstrap(db)
        _create_ca(settings, db)
        _write_private(profile, {"url": url, "key": admin_key, "demo_key": demo_key})
        return InitResult(profile, admin_key, demo_key, created=True)
    finally:
        db.dispose()
