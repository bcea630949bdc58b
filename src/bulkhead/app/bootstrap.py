"""`bulkhead init`: the store, the platform admin, the demo tenant, the CA and the CLI profile."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bulkhead.app.backends import make_data_dir, open_kms, tenant_bounds
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import append_batch
from bulkhead.domain import DeploymentKind, Endpoint, PrincipalKind, Role, Tier
from bulkhead.errors import ConfigError
from bulkhead.settings import Settings
from bulkhead.store import Database, repo, upgrade
from bulkhead.store.blobs import BlobStore
from bulkhead.store.ca_keys import CaKeyring
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.platform_keys import PlatformKeyStore

DEMO_TENANT = "demo"
# The chat model is `Settings.demo_chat_model`: the bundled SmolLM2 by default, the random
# demo-chat where tests need a worker that starts in well under a second.
DEMO_MODELS = (
    (
        "smollm2-135m",
        "smollm2-135m",
        (Endpoint.CHAT, Endpoint.COMPLETIONS),
        "SmolLM2-135M-Instruct (Apache-2.0), bundled: a small real chat model, on this host.",
    ),
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


def demo_models(chat_model: str) -> tuple[tuple[str, str, tuple[Endpoint, ...], str], ...]:
    """The models `init` registers: the chosen chat model and the embedding model."""
    return tuple(m for m in DEMO_MODELS if m[0] == chat_model or Endpoint.CHAT not in m[2])


def _bootstrap(db: Database, chat_model: str) -> tuple[str, str]:
    """Create the platform admin, the demo models and the demo tenant; return both keys."""
    models = demo_models(chat_model)
    with db.platform_transaction() as session:
        admin = repo.create_principal(
            session, None, "admin", PrincipalKind.USER, [Role.PLATFORM_ADMIN]
        )
        admin_key = repo.create_key(
            session, None, role=Role.PLATFORM_ADMIN, principal=admin, name="bootstrap"
        )
        tenant = repo.create_tenant(session, DEMO_TENANT, Tier.SHARED)
        for name, worker, endpoints, description in models:
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
            *(_init_event("init:models.create", None, name) for name, *_ in models),
            *(_init_event("init:models.grant", tenant.id, name) for name, *_ in models),
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
    make_data_dir(settings)
    os.chmod(settings.data_dir, 0o700)
    db = Database(settings.database_url, tenant_bounds(settings))
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
        admin_key, demo_key = _bootstrap(db, settings.demo_chat_model)
        _create_ca(settings, db)
        _write_private(profile, {"url": url, "key": admin_key, "demo_key": demo_key})
        return InitResult(profile, admin_key, demo_key, created=True)
    finally:
        db.dispose()
