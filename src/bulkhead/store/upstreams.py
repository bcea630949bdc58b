"""Upstream credentials and egress allowlists: the platform's registry and what tenants may use.

Tenants never name a secret or where one lives.  A platform admin registers
a named credential — a secret given once and sealed under the KEK of the
``_platform`` pseudo-tenant (associated data: kind ``upstream-credential``
and the credential's id, so a sealed value copied to another row does not
open), or the name of an environment variable the gateway reads, never one
the platform keeps for itself — and allows it to tenants one by one.  A
platform deployment may use any credential; a tenant's model version only
one allowed to its tenant, and the data plane checks that again on every
call, so withdrawing a credential holds at once.

The platform also keeps each tenant's upstream allowlist here
(`bulkhead.runtime.egress`).  The data plane reads neither table: the
catalog loads an `UpstreamBook` with the secrets opened (off the event loop,
once per sealed value), the grants and each tenant's `EgressPolicy`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bulkhead.crypto import DecryptionFailed, Kms, decrypt, encrypt
from bulkhead.errors import Conflict, IntegrityFailure, InvalidRequest, NotFound
from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from bulkhead.runtime.egress import EgressPolicy, parse_entries
from bulkhead.store.repo import bump_version
from bulkhead.store.schema import (
    DeploymentRow,
    ModelVersionRow,
    TenantEgressRow,
    UpstreamCredentialGrantRow,
    UpstreamCredentialRow,
    utcnow,
)

log = logging.getLogger("bulkhead.upstream")

KIND = "upstream-credential"
CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
# A secret goes into an HTTP header: visible ASCII only, so it cannot split one.
SECRET = re.compile(r"[!-~]{1,4096}")
# Environment variables the platform (or what it runs on) keeps for itself: its own
# settings and keys, the database client's, the HSM's, cloud and cluster credentials.
RESERVED_ENV_PREFIXES = (
    "BULKHEAD_",
    "PG",
    "SOFTHSM",
    "PKCS11",
    "AWS_",
    "AZURE_",
    "GOOGLE_",
    "GCE_",
    "GCP_",
    "KUBERNETES_",
    "SSL_",
    "REQUESTS_CA",
    "LD_",
    "PYTHON",
)
RESERVED_ENV_NAMES = frozenset({"PATH", "HOME", "DATABASE_URL", "REDIS_URL"})


def reserved_env(name: str) -> bool:
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)


def check_env_name(name: str) -> str:
    if not ENV_NAME.fullmatch(name):
        raise InvalidRequest("'env' must be an environment variable's name.", param="env")
    if reserved_env(name):
        raise InvalidRequest(
            f"'{name}' is kept for the platform itself; use another variable.", param="env"
        )
    return name


def check_secret(secret: str) -> str:
    if not SECRET.fullmatch(secret):
        raise InvalidRequest("'secret' must be 1 to 4096 visible ASCII characters.", param="secret")
    return secret


class CredentialVault:
    """Seals and opens credential secrets under the ``_platform`` KEK; remembers what it opened."""

    def __init__(self, kms: Kms, ensure_key: Callable[[str], object]):
        self._kms, self._ensure_key = kms, ensure_key
        self._opened: dict[tuple[str, bytes], str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "CredentialVault()"

    def seal(self, credential_id: str, secret: str) -> bytes:
        self._ensure_key(PLATFORM_KEY_OWNER)
        return encrypt(
            check_secret(secret).encode(),
            tenant_id=PLATFORM_KEY_OWNER,
            kind=KIND,
            object_id=credential_id,
            kms=self._kms,
        )

    def open(self, credential_id: str, sealed: bytes) -> str:
        """The secret; `IntegrityFailure` for one that does not open as this credential's."""
        with self._lock:
            known = self._opened.get((credential_id, sealed))
        if known is not None:
            return known
        try:
            plain = decrypt(
                sealed, tenant_id=PLATFORM_KEY_OWNER, kind=KIND, object_id=credential_id,
                kms=self._kms,
            )  # fmt: skip
        except (DecryptionFailed, NotFound):
            raise IntegrityFailure("an upstream credential does not open") from None
        secret = plain.decode("ascii", errors="replace")
        with self._lock:
            self._opened[(credential_id, sealed)] = secret
        return secret


# The registry (platform transactions) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credential:
    """What the API shows of a credential: never its secret."""

    name: str
    source: str
    env: str | None
    tenants: tuple[str, ...]  # the tenant ids it is allowed to
    created_at: datetime


def _row(session: Session, name: str) -> UpstreamCredentialRow:
    row = session.execute(
        select(UpstreamCredentialRow).where(UpstreamCredentialRow.name == name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"upstream credential '{name[:128]}' not found")
    return row


def _credential(session: Session, row: UpstreamCredentialRow) -> Credential:
    tenants = session.execute(
        select(UpstreamCredentialGrantRow.tenant_id)
        .where(UpstreamCredentialGrantRow.credential == row.name)
        .order_by(UpstreamCredentialGrantRow.tenant_id)
    ).scalars()
    return Credential(row.name, row.source, row.env_name, tuple(tenants), row.created_at)


def create_credential(
    session: Session, name: str, *, credential_id: str, env: str | None, sealed: bytes | None
) -> Credential:
    """Register a credential: exactly one of an env var's name or a sealed secret."""
    if not CREDENTIAL_NAME.fullmatch(name):
        raise InvalidRequest("credential name has invalid characters", param="name")
    if (env is None) == (sealed is None):
        raise InvalidRequest("Give exactly one of 'env' or 'secret'.", param="env")
    if session.execute(
        select(UpstreamCredentialRow.id).where(UpstreamCredentialRow.name == name)
    ).first():
        raise Conflict(f"upstream credential '{name}' already exists")
    row = UpstreamCredentialRow(
        id=credential_id,
        name=name,
        source="env" if env is not None else "sealed",
        env_name=check_env_name(env) if env is not None else None,
        sealed=sealed,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    bump_version(session)
    return _credential(session, row)


def list_credentials(session: Session) -> list[Credential]:
    rows = session.execute(select(UpstreamCredentialRow).order_by(UpstreamCredentialRow.name))
    return [_credential(session, r) for r in rows.scalars()]


def get_credential(session: Session, name: str) -> Credential:
    return _credential(session, _row(session, name))


def delete_credential(session: Session, name: str) -> None:
    """Remove a credential no deployment or live version uses (its grants go with it)."""
    row = _row(session, name)
    deployments = session.execute(
        select(func.count()).select_from(DeploymentRow).where(DeploymentRow.credential == name)
    ).scalar_one()
    versions = session.execute(
        select(func.count())
        .select_from(ModelVersionRow)
        .where(ModelVersionRow.credential == name, ModelVersionRow.retired_at.is_(None))
    ).scalar_one()
    if deployments or versions:
        raise Conflict(
            f"upstream credential '{name}' is used by {deployments} deployment(s) and "
            f"{versions} live model version(s)"
        )
    session.delete(row)
    bump_version(session)


def allow_credential(session: Session, name: str, tenant_id: str) -> None:
    row = _row(session, name)
    if session.get(UpstreamCredentialGrantRow, (row.name, tenant_id)) is None:
        session.add(
            UpstreamCredentialGrantRow(
                credential=row.name, tenant_id=tenant_id, created_at=utcnow()
            )
        )
        bump_version(session)


def disallow_credential(session: Session, name: str, tenant_id: str) -> None:
    row = _row(session, name)
    grant = session.get(UpstreamCredentialGrantRow, (row.name, tenant_id))
    if grant is not None:
        session.delete(grant)
        bump_version(session)


def set_allowlist(session: Session, tenant_id: str, entries: list[str]) -> tuple[str, ...]:
    """Replace a tenant's upstream allowlist; no entries removes it (nothing allowed)."""
    canonical = parse_entries(entries)
    session.execute(delete(TenantEgressRow).where(TenantEgressRow.tenant_id == tenant_id))
    if canonical:
        session.add(
            TenantEgressRow(tenant_id=tenant_id, entries=list(canonical), updated_at=utcnow())
        )
    bump_version(session)
    return canonical


# What a tenant may use (its own transaction: row-level security shows it only its rows) ------


def allowlist(session: Session, tenant_id: str) -> tuple[str, ...]:
    row = session.get(TenantEgressRow, tenant_id)
    return tuple(row.entries) if row is not None else ()


def allowed_credentials(session: Session, tenant_id: str) -> list[str]:
    rows = session.execute(
        select(UpstreamCredentialGrantRow.credential)
        .where(UpstreamCredentialGrantRow.tenant_id == tenant_id)
        .order_by(UpstreamCredentialGrantRow.credential)
    ).scalars()
    return list(rows)


def require_allowed(session: Session, tenant_id: str, name: str) -> None:
    """Refuse a credential not allowed to the tenant exactly like one that does not exist."""
    if session.get(UpstreamCredentialGrantRow, (name, tenant_id)) is None:
        raise NotFound(f"upstream credential '{name[:128]}' not found")


# The data plane's view -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamBook:
    """Opened secrets by credential name, grants and egress policies by tenant id."""

    secrets: Mapping[str, str] = field(default_factory=dict)
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    egress: Mapping[str, EgressPolicy] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"UpstreamBook(credentials={len(self.secrets)}, tenants={len(self.egress)})"

    def policy(self, tenant_id: str) -> EgressPolicy:
        """A tenant's policy; one with no allowlist admits nothing."""
        return self.egress.get(tenant_id) or EgressPolicy()


SecretOpener = Callable[[str, bytes], str]


def _policy(entries: object) -> EgressPolicy:
    """A stored allowlist's policy; one that no longer parses admits nothing (fail closed)."""
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return EgressPolicy()
    try:
        return EgressPolicy.tenant(parse_entries(entries))
    except InvalidRequest:
        return EgressPolicy()


def _open(row: UpstreamCredentialRow, opener: SecretOpener | None, env: Mapping[str, str]) -> str:
    if row.source == "env" and row.env_name and not reserved_env(row.env_name):
        value = env.get(row.env_name, "")
    elif row.source == "sealed" and row.sealed is not None and opener is not None:
        value = opener(row.id, row.sealed)
    else:
        value = ""
    return value if SECRET.fullmatch(value) else ""


def load_book(
    session: Session, opener: SecretOpener | None, env: Mapping[str, str]
) -> UpstreamBook:
    """Everything the data plane needs, read in one platform transaction."""
    secrets: dict[str, str] = {}
    for row in session.execute(select(UpstreamCredentialRow)).scalars():
        try:
            value = _open(row, opener, env)
        except IntegrityFailure:
            value = ""
        if value:
            secrets[row.name] = value
        else:
            # Fail closed: calls that need it get a 503; the operator's log says which.
            log.warning("upstream credential %s is not available", row.name)
    grants: dict[str, set[str]] = {}
    for grant in session.execute(select(UpstreamCredentialGrantRow)).scalars():
        grants.setdefault(grant.tenant_id, set()).add(grant.credential)
    egress = {
        row.tenant_id: _policy(row.entries)
        for row in session.execute(select(TenantEgressRow)).scalars()
    }
    return UpstreamBook(secrets, {t: frozenset(n) for t, n in grants.items()}, egress)
