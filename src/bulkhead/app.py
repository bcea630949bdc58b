"""The composition root: the one place that picks concrete backends from settings."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bulkhead.admin import build_admin
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.keys import load_signer, register, rotate
from bulkhead.audit.log import AuditLog, append_batch
from bulkhead.audit.sequencer import FileWitness, HttpWitness, Sequencer, Witness
from bulkhead.crypto import LocalKms, load_or_create_master_key, master_key_from_base64
from bulkhead.domain import DeploymentKind, Endpoint, PrincipalKind, Role, Tier
from bulkhead.errors import ConfigError
from bulkhead.gateway import GatewayDeps, build_chain
from bulkhead.limits import Unlimited, UsageLedger
from bulkhead.observe import Metrics
from bulkhead.policy import RoleAuthorizer
from bulkhead.runtime import UpstreamClient, WorkerSpec, WorkerSupervisor
from bulkhead.settings import Settings
from bulkhead.store import Catalog, Database, Snapshot, repo, upgrade
from bulkhead.store.blobs import BlobStore
from bulkhead.store.files import FileService
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send

log = logging.getLogger("bulkhead")

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


def local_specs(snapshot: Snapshot) -> list[WorkerSpec]:
    return [
        WorkerSpec(key=r.deployment.id, kind=r.deployment.worker or "", model_name=r.model.name)
        for r in snapshot.deployments
        if r.deployment.kind is DeploymentKind.LOCAL
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
    ):
        self.settings = settings
        self.db, self.chain, self.catalog = db, chain, catalog
        self.workers, self.upstreams, self.audit, self.metrics = workers, upstreams, audit, metrics
        self.sequencer = sequencer
        self._poller: asyncio.Task[None] | None = None

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
        # collector's sight, and collect the young generation less often, so that
        # full collections over start-up objects stop pausing requests.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        if self.settings.start_workers:
            self.workers.sync(local_specs(self.catalog.snapshot))
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        """Notice changes made by other replicas (or the CLI through another one)."""
        while True:
            await asyncio.sleep(self.settings.catalog_poll_s)
            try:
                changed = await asyncio.to_thread(self.catalog.refresh_if_changed)
            except Exception as exc:  # The database may be briefly away; keep serving.
                log.warning("catalog refresh failed: %s", type(exc).__name__)
                continue
            if changed and self.settings.start_workers:
                self.workers.sync(local_specs(self.catalog.snapshot))

    async def shutdown(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self.upstreams.close()
        await self.workers.close()
        self.audit.close()
        self.sequencer.close()
        self.db.dispose()


def open_kms(settings: Settings) -> LocalKms:
    """The embedded KMS: KEKs wrapped under a master key from the env or a 0600 file."""
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
    upgrade(db)
    catalog = Catalog(db)
    catalog.reload()
    key_path = settings.data_dir / "audit" / "signing.key"
    signer = load_signer(key_path, settings.audit_origin)
    register(db, signer.verifier)
    witnesses: list[Witness] = [FileWitness(settings.data_dir / "audit" / "checkpoints.txt")]
    if settings.audit_witness_url:
        witnesses.append(HttpWitness(settings.audit_witness_url))
    sequencer = Sequencer(db, signer, settings.audit_origin, witnesses=witnesses).start()
    audit = AuditLog(db, on_commit=sequencer.nudge)
    metrics, ledger, authorizer = Metrics(), UsageLedger(), RoleAuthorizer()
    workers = WorkerSupervisor()
    upstreams = UpstreamClient(connect_timeout_s=settings.upstream_connect_timeout_s)
    files = FileService(
        db,
        BlobStore(settings.data_dir / "blobs"),
        open_kms(settings),
        max_file_bytes=settings.max_file_bytes,
    )
    management, doc = build_admin(
        db=db,
        catalog=catalog,
        authorizer=authorizer,
        ledger=ledger,
        workers=workers,
        audit_origin=settings.audit_origin,
        rotate_audit_key=lambda: sequencer.rotate(rotate(db, key_path, settings.audit_origin)),
        files=files,
    )
    chain = build_chain(
        GatewayDeps(
            catalog=catalog,
            authorizer=authorizer,
            admission=Unlimited(),
            input_guards=(),
            output_guards=(),
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
    )


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
    with db.transaction() as session:
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
    )


def initialize(settings: Settings, url: str) -> InitResult:
    """Idempotent: create the store, bootstrap once, and (re)write the CLI profile."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(settings.data_dir, 0o700)
    db = Database(settings.database_url)
    try:
        upgrade(db)
        profile = settings.data_dir / "profile.json"
        with db.transaction() as session:
            bootstrapped = bool(repo.list_principals(session, None))
        if bootstrapped and profile.exists():
            data = orjson.loads(profile.read_bytes())
            return InitResult(profile, data["key"], data.get("demo_key"), created=False)
        if bootstrapped:
            raise ConfigError(f"the store is initialised but {profile} is missing")
        admin_key, demo_key = _bootstrap(db)
        _write_private(profile, {"url": url, "key": admin_key, "demo_key": demo_key})
        return InitResult(profile, admin_key, demo_key, created=True)
    finally:
        db.dispose()
