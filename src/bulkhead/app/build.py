"""`build`: the gateway wired from settings, one step at a time in dependency order.

Each step takes what the earlier ones made and returns a small record of its
own; reading `build` top to bottom is reading what depends on what.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bulkhead.app import observed
from bulkhead.app.alerts import (
    admission,
    anomaly_detector,
    audit_alert,
    break_glass_alert,
    rotation_alerter,
)
from bulkhead.app.application import Application
from bulkhead.app.backends import (
    audit_witnesses,
    open_capacity,
    open_database,
    open_kms,
    open_limiter,
    open_webhook,
    workload_clients,
)
from bulkhead.app.deferred import console_app, management_api, sign_in_endpoints
from bulkhead.app.history import Retention
from bulkhead.app.jobs import Maintenance, key_event
from bulkhead.app.keys import PlatformKeys
from bulkhead.app.lazy import Deferred, DeferredApp
from bulkhead.app.training import fine_tuning_runner as runner_for
from bulkhead.audit.log import AuditLog
from bulkhead.audit.sequencer import Sequencer
from bulkhead.domain import ResolvedModel
from bulkhead.errors import ConfigError
from bulkhead.finetune.budget import TokenBudget
from bulkhead.finetune.contract import Runner
from bulkhead.finetune.publish import Publisher
from bulkhead.finetune.service import FineTuning
from bulkhead.finetune.service import Limits as TuningLimits
from bulkhead.gateway import GatewayDeps, build_chain
from bulkhead.gateway.guards import GuardBook
from bulkhead.guard.anomaly import AnomalyDetector
from bulkhead.identity import OidcValidator
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.idp_fetch import IdpFetcher, idp_egress
from bulkhead.identity.passwords import Passwords
from bulkhead.identity.totp_vault import TotpVault
from bulkhead.limits import LimitAdmission, Limiter
from bulkhead.limits.attempts import AttemptLimits
from bulkhead.limits.fairshare import SharedCapacity
from bulkhead.limits.pool import WorkPool
from bulkhead.observe import Metrics
from bulkhead.observe.alerts import Webhook
from bulkhead.pam import AccessService
from bulkhead.policy import CedarAuthorizer
from bulkhead.runtime import UpstreamClient, WorkerSupervisor
from bulkhead.runtime.gpu import devices, system_inventory
from bulkhead.runtime.salts import CacheSalts
from bulkhead.runtime.traced import TracedUpstreamClient as Traced
from bulkhead.settings import Settings
from bulkhead.store import Catalog, Database, Snapshot, usage
from bulkhead.store.artifacts import ArtifactService
from bulkhead.store.blobs import BlobStore
from bulkhead.store.files import FileService
from bulkhead.store.finetune import JobInfo, JobStore
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.retention import RetentionStore
from bulkhead.store.sealed import SealedColumns
from bulkhead.store.session_keys import SessionKeyring
from bulkhead.store.sessions import SessionVerifier
from bulkhead.store.upstreams import CredentialVault
from bulkhead.store.vectors import VectorStores
from bulkhead.vectors.embed import ChainEmbedder
from bulkhead.vectors.index import IndexCache
from bulkhead.vectors.service import VectorService
from bulkhead.web.scope import ASGIApp

if TYPE_CHECKING:
    from bulkhead.admin.signin import SignInEndpoints


def build(settings: Settings, *, fine_tuning_runner: Runner | None = None) -> Application:
    """Wire the gateway from settings; migrations run here, so `serve` needs no `init`.

    `fine_tuning_runner` trains the jobs of `/v1/fine_tuning` when `fine_tuning_jobs` > 0;
    without one the application makes the runner `BULKHEAD_FINE_TUNING_RUNNER` names (a
    `SandboxRunner`, or a `KubeRunner` in a cluster: `app.training`) and closes it.
    """
    core = open_core(settings)  # the store (migrated), the KMS, the platform's keys, audit
    data = open_catalog(core)  # session keys, tenants' policies, the catalog
    services = open_services(core, data)  # files, retention, PAM, sign-in, workers, limits
    owned = None
    if settings.fine_tuning_jobs > 0 and fine_tuning_runner is None:
        fine_tuning_runner = owned = runner_for(settings, data.catalog.snapshot.tenants.get)
    tuning = open_fine_tuning(core, data, services, fine_tuning_runner)  # None: off
    chain = gateway_chain(core, data, services, tuning)  # the management API, then the chain
    app = application(core, data, services, chain, tuning)
    app.fine_tuning_runner = owned  # closed at shut-down
    return app


def open_fine_tuning(
    core: Core, data: Data, services: Services, runner: Runner | None
) -> FineTuning | None:
    """The fine-tuning jobs' service and queue, if this replica runs any."""
    jobs = core.settings.fine_tuning_jobs
    if jobs == 0:
        return None
    if runner is None:
        raise ConfigError("BULKHEAD_FINE_TUNING_JOBS needs a fine-tuning runner (none is wired)")
    catalog = data.catalog

    def resolve(tenant_id: str, name: str) -> ResolvedModel | None:
        return catalog.snapshot.models_for(tenant_id).get(name)

    jobs_store = JobStore(core.db)

    def running(job: JobInfo) -> bool:
        return jobs_store.get(job.tenant_id, job.id).status == "running"

    return FineTuning(
        jobs=jobs_store,
        files=services.files,
        artifacts=services.artifacts,
        tenant_of=lambda tenant_id: catalog.snapshot.tenants.get(tenant_id),
        resolve=resolve,
        emit=core.audit.emit,
        runner=runner,
        limits=TuningLimits(
            capacity=jobs,
            max_bytes=core.settings.max_file_bytes,
            poll_s=core.settings.fine_tuning_poll_s,
            lease_s=core.settings.fine_tuning_lease_s,
        ),
        budget=TokenBudget(services.admission),
        # The adapter: encrypted, registered as the tenant's `ft:` model, served at once.
        on_adapter=Publisher(services.artifacts, resolve, catalog.reload, running),
    )


class _KeyEvents:
    """Key events and failed rotations, told to the audit log once it exists.

    The keyrings come first (the audit log's signing key is one of them) and
    read nothing until the audit log is up, so nothing is told before then.
    """

    def __init__(self) -> None:
        self.audit: AuditLog | None = None
        self.alert: Callable[[str], None] | None = None

    def event(self, action: str, owner: str, detail: str) -> None:
        if self.audit is None:
            raise RuntimeError("a key event before the audit log was opened")
        self.audit.emit(key_event(action, owner, detail))

    def failure(self, name: str) -> None:
        if self.alert is None:
            raise RuntimeError("a key failure before the audit log was opened")
        self.alert(name)


@dataclass(frozen=True, slots=True)
class Core:
    """The store, its keys and the audit log: what every later step is built on."""

    settings: Settings
    db: Database
    keyring: TenantKeyring
    platform: PlatformKeys
    sequencer: Sequencer
    audit: AuditLog
    metrics: Metrics
    ca: InternalCA
    salts: CacheSalts
    key_event: Callable[[str, str, str], None]
    webhook: Webhook | None  # the one client every alert is POSTed through


def open_core(settings: Settings, *, idle_s: float = 30.0) -> Core:
    """`idle_s`: how often the sequencer looks for leaves other processes committed."""
    db = open_database(settings)
    kms = open_kms(settings)
    events = _KeyEvents()
    holders = (SealedColumns(db),)
    blobs = BlobStore(settings.data_dir / "blobs")
    keyring = TenantKeyring(kms, blobs, holders=holders, on_event=events.event, shared_lock=db.lock)
    # The platform's own keys (audit signing, CA, cache salt) live sealed in the database
    # every replica shares (`store.platform_keys`), the audit key in the HSM where it can.
    platform = PlatformKeys.open(settings, db, keyring, events.event, events.failure)
    sequencer = Sequencer(
        db,
        platform.audit,
        settings.audit_origin,
        idle_s=idle_s,
        witnesses=audit_witnesses(settings),
    )
    metrics, webhook = Metrics(), open_webhook(settings)
    # Usage (`store.usage`) is added in each audit batch's transaction: durable, shared.
    audit = AuditLog(
        db,
        on_commit=sequencer.nudge,
        on_state=audit_alert(metrics, webhook),
        on_batch=usage.record,
    )
    metrics.watch_audit(audit.state)
    events.audit, events.alert = audit, rotation_alerter(metrics, audit, webhook)
    ca, salts = platform.load()
    sequencer.start()
    return Core(
        settings, db, keyring, platform, sequencer, audit, metrics, ca, salts, events.event, webhook
    )


@dataclass(frozen=True, slots=True)
class Data:
    """The catalog, the policies compiled from it, and the keys that sign session ids."""

    catalog: Catalog
    authorizer: CedarAuthorizer
    credentials: CredentialVault
    session_keys: SessionKeyring
    vector_cache: IndexCache


def open_catalog(core: Core) -> Data:
    db, keyring, platform = core.db, core.keyring, core.platform
    # Upstream credentials are opened when the catalog loads, never per request.
    credentials = CredentialVault(keyring.kms, keyring.ensure)
    # The keys that sign session ids live sealed in the database all replicas share
    # (`store.session_keys`); a start-up that cannot open them fails here.
    session_keys = SessionKeyring(db, keyring.kms, keyring.ensure, on_event=core.key_event)
    session_keys.load()
    # Tenants' policies are compiled as the catalog loads them, off the event loop.
    authorizer = CedarAuthorizer(lambda: (catalog.snapshot.version, catalog.snapshot.policies))

    # Vector stores' plaintext indexes: a deleted tenant's go at the next catalog load.
    vector_cache = IndexCache(max_bytes=core.settings.vector_cache_mb * 1024 * 1024)

    def prepare(snap: Snapshot) -> None:
        authorizer.prepare(snap.tenants.values(), snap.policies)
        vector_cache.keep_tenants(snap.tenants.keys())
        # A session key, CA version or cache-salt secret another replica added is
        # held here within a catalog poll.
        session_keys.refresh()
        platform.refresh()

    catalog = Catalog(db, opener=credentials.open, prepare=prepare)
    catalog.reload()
    core.metrics.watch_key_ages(platform.inventory.oldest_ages)
    core.metrics.watch_key_rotations(platform.inventory.rotation_due)
    return Data(catalog, authorizer, credentials, session_keys, vector_cache)


@dataclass(frozen=True, slots=True)
class Services:
    """What the gateway and the management API serve from, besides the catalog."""

    workers: WorkerSupervisor
    upstreams: UpstreamClient
    files: FileService
    artifacts: ArtifactService
    retention: RetentionStore
    pam: AccessService
    passwords: Passwords
    password_pool: WorkPool
    sessions: SessionVerifier
    limiter: Limiter
    capacity: SharedCapacity
    sign_in: Deferred[SignInEndpoints]  # made at the first sign-in or console request
    admission: LimitAdmission
    anomaly: AnomalyDetector
    # Every fetch from a tenant's IdP (bearer JWKS, console sign-in): through the egress guard.
    idp: IdpFetcher


def open_services(core: Core, data: Data) -> Services:
    settings, db, keyring, webhook = core.settings, core.db, core.keyring, core.webhook
    workers, upstreams = workload_clients(settings, core.ca)
    # Break-glass gets a client of its own: a flood of other alerts never takes its slots.
    pam = AccessService(
        db, emit=core.audit.emit, alert=break_glass_alert(core.metrics, open_webhook(settings))
    )
    passwords = Passwords()
    # Argon2id runs on threads of its own (sign-in and password resets), so anonymous
    # sign-ins cannot queue in front of control-plane calls on the default executor.
    password_pool = WorkPool(
        "passwords",
        workers=settings.signin_workers,
        queue=settings.signin_queue,
        code="passwords_busy",
    )
    sessions = SessionVerifier(db, data.catalog, data.session_keys.current)
    limiter = open_limiter(settings)
    observed.watch(core.metrics, data.catalog, limiter, workers)  # read at each scrape
    attempts = AttemptLimits(
        limiter, per_client_rpm=settings.signin_client_rpm, rpm=settings.signin_rpm
    )
    vault = TotpVault(keyring.kms, keyring.ensure)
    sign_in = sign_in_endpoints(core, data, passwords, vault, sessions, password_pool, attempts)
    return Services(
        workers=workers,
        upstreams=upstreams,
        files=FileService(db, keyring, max_file_bytes=settings.max_file_bytes),
        artifacts=ArtifactService(db, keyring),
        retention=RetentionStore(db, keyring),
        pam=pam,
        passwords=passwords,
        password_pool=password_pool,
        sessions=sessions,
        limiter=limiter,
        capacity=open_capacity(settings),
        sign_in=sign_in,
        admission=admission(
            settings,
            data.catalog,
            core.audit,
            webhook,
            core.metrics,
            limiter,
        ),
        # One detector for the anomaly layer and the guards' hits, so both feed its baselines.
        # Its alerts are a tenant's to set off: a client of their own, so a tenant's flood
        # never takes the slots of the platform's health alerts (audit writer, keys).
        anomaly=anomaly_detector(data.catalog, core.audit, core.metrics, open_webhook(settings)),
        idp=IdpFetcher(idp_egress(settings.idp_allow_cidrs)),
    )


def gateway_chain(
    core: Core, data: Data, services: Services, tuning: FineTuning | None = None
) -> ASGIApp:
    """The request chain (`gateway.chain`), the management API at its end."""
    # Longer than 60 lines: one keyword argument per dependency of the chain, in one call,
    # so what the gateway is built from reads as one list (splitting it would scatter it).
    settings, catalog, detector = core.settings, data.catalog, services.anomaly
    management, doc = management_api(core, data, services)
    validator = OidcValidator(fetch=services.idp.fetch)
    return build_chain(
        GatewayDeps(
            catalog=catalog,
            authorizer=data.authorizer,
            admission=services.admission,
            anomaly=detector,
            fair_queues=services.capacity,
            on_fail_open=services.admission.fail_open,
            salts=core.salts,
            guards=GuardBook(),
            on_guard_hit=detector.guard_hit,
            upstreams=services.upstreams,
            workers=services.workers,
            audit=core.audit,
            metrics=core.metrics,
            management=management,
            openapi=doc,
            max_body_bytes=settings.max_body_bytes,
            files=services.files,
            max_file_bytes=settings.max_file_bytes,
            retention=services.retention,
            max_model_bytes=settings.max_model_bytes,
            tls=settings.tls_cert is not None,
            client_ca=core.ca,
            sessions=services.sessions,
            oidc=validator,
            sign_in=DeferredApp(services.sign_in, lambda endpoints: endpoints),
            console=console_app(core, data, services, validator),
            fine_tuning=tuning,
            # Vector stores: embedded through the chain itself (`vectors.embed`).
            vectors=VectorService(
                VectorStores(core.db, core.keyring, data.vector_cache),
                services.files,
                ChainEmbedder(),
            ),
            artifacts=services.artifacts,
            # Spans for the chain too when the model client makes them (`app.backends`).
            tracing=traced.tracing if isinstance(traced := services.upstreams, Traced) else None,
        )
    )


def application(
    core: Core,
    data: Data,
    services: Services,
    chain: ASGIApp,
    tuning: FineTuning | None = None,
) -> Application:
    """The ASGI application, with its scheduled jobs and what it closes on shut-down."""
    maintenance = Maintenance(
        core.db,
        core.keyring,
        services.retention,
        core.audit,
        services.pam,
        session_keys=data.session_keys,
        platform_keys=core.platform.rotate_due,
        usage_days=core.settings.usage_retention_days,
        stalled=VectorStores(core.db, core.keyring, data.vector_cache).fail_stalled,
        history=Retention(
            retired_versions=core.settings.retired_version_retention_days,
            finished_jobs=core.settings.fine_tuning_job_retention_days,
            decided_quota_requests=core.settings.quota_request_retention_days,
            ended_keys=core.settings.ended_key_retention_days,
        ),
    )
    return Application(
        core.settings,
        db=core.db,
        chain=chain,
        catalog=data.catalog,
        workers=services.workers,
        upstreams=services.upstreams,
        audit=core.audit,
        sequencer=core.sequencer,
        metrics=core.metrics,
        ca=core.ca,
        maintenance=maintenance,
        artifacts=services.artifacts,
        admission=services.admission,
        gpus=devices(system_inventory()),
        pools=(services.password_pool,),
        backends=(services.limiter, services.capacity),
        session_keys=data.session_keys,
        platform_keys=core.platform,
        fine_tuning=tuning,
        idp=services.idp,
    )
