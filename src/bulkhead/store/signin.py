"""Repository functions for sign-in: identity providers, local credentials and sessions.

Sessions are looked up by id with the platform's transaction: the session
is what names the tenant, so there is no tenant to scope the lookup by yet
(the same holds for the catalog's load of API keys).

Sessions are bounded: a principal holds at most `sessions_per_principal` live
ones (`store.bounds`), a sign-in past it revoking the oldest, and the
maintenance loop deletes ended rows (`purge_sessions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import delete, false, or_, select, update
from sqlalchemy.orm import Session

from bulkhead.domain import ClaimMapping, IdpConfig, Principal, Role, SignedIn
from bulkhead.errors import Conflict, InvalidRequest, NotFound
from bulkhead.identity.sessions import SessionKeys, issue_session
from bulkhead.store.bounds import bounds_of
from bulkhead.store.repo import bump_version
from bulkhead.store.schema import (
    IdentityProviderRow,
    LocalCredentialRow,
    PrincipalRow,
    SignInSessionRow,
    utcnow,
)

# Identity providers ----------------------------------------------------------------------


def idp_of(row: IdentityProviderRow) -> IdpConfig:
    return IdpConfig(
        tenant_id=row.tenant_id,
        issuer=row.issuer,
        audience=row.audience,
        jwks_url=row.jwks_url,
        mapping=ClaimMapping.from_json(row.claims or {}, strict=False),
        require_mfa_for_admin=row.require_mfa_for_admin,
        has_client_secret=row.client_secret is not None,
    )


class Stored(Enum):
    """`put_idp`'s `client_secret` for "keep the stored one": the request did not name it."""

    KEEP = "keep"


KEEP_SECRET = Stored.KEEP


def put_idp(
    session: Session, idp: IdpConfig, client_secret: bytes | Stored | None = KEEP_SECRET
) -> IdpConfig:
    """Register or replace a tenant's IdP; an issuer another tenant uses is a conflict.

    `client_secret` is the new sealed secret, None to clear it, or `KEEP_SECRET` to keep
    the stored one, which holds only while the issuer and client id (`audience`) stay: a
    secret is never carried to another IdP or client (a 400 says to send one, or null).
    """
    other = session.execute(
        select(IdentityProviderRow.tenant_id).where(IdentityProviderRow.issuer == idp.issuer)
    ).scalar_one_or_none()
    if other is not None and other != idp.tenant_id:
        raise Conflict("that issuer is registered for another tenant")
    row = session.get(IdentityProviderRow, idp.tenant_id)
    if isinstance(client_secret, Stored):
        client_secret = _kept_secret(row, idp)
    if row is None:
        row = IdentityProviderRow(tenant_id=idp.tenant_id)
        session.add(row)
    row.issuer, row.audience, row.jwks_url = idp.issuer, idp.audience, idp.jwks_url
    row.claims = idp.mapping.to_json()
    row.require_mfa_for_admin = idp.require_mfa_for_admin
    row.client_secret = client_secret
    row.updated_at = utcnow()
    session.flush()
    bump_version(session)
    return idp_of(row)


def _kept_secret(row: IdentityProviderRow | None, idp: IdpConfig) -> bytes | None:
    if row is None or row.client_secret is None:
        return None
    if (row.issuer, row.audience) != (idp.issuer, idp.audience):
        raise InvalidRequest(
            "The issuer or client id (audience) changed and the stored client secret "
            "belongs to the old one: send the new client's client_secret, or "
            "client_secret: null for a public client.",
            param="client_secret",
        )
    return row.client_secret


def sealed_client_secret(session: Session, tenant_id: str) -> bytes | None:
    row = session.get(IdentityProviderRow, tenant_id)
    return row.client_secret if row is not None else None


def get_idp(session: Session, tenant_id: str) -> IdpConfig:
    row = session.get(IdentityProviderRow, tenant_id)
    if row is None:
        raise NotFound("this tenant has no identity provider")
    return idp_of(row)


def delete_idp(session: Session, tenant_id: str) -> None:
    row = session.get(IdentityProviderRow, tenant_id)
    if row is None:
        raise NotFound("this tenant has no identity provider")
    session.delete(row)
    bump_version(session)


def all_idps(session: Session) -> list[IdpConfig]:
    return [idp_of(r) for r in session.execute(select(IdentityProviderRow)).scalars()]


# Local credentials -----------------------------------------------------------------------


def credential_row(session: Session, principal_id: str) -> LocalCredentialRow | None:
    return session.get(LocalCredentialRow, principal_id)


def set_password(session: Session, principal: Principal, password_hash: str) -> None:
    """Set (or reset) a password; it clears a lockout and ends the principal's sessions."""
    row = session.get(LocalCredentialRow, principal.id)
    if row is None:
        row = LocalCredentialRow(
            principal_id=principal.id,
            tenant_id=principal.tenant_id,
            recovery_hashes=[],
        )
        session.add(row)
    row.password_hash = password_hash
    row.failed_attempts = 0
    row.locked_until = None
    row.updated_at = utcnow()
    session.flush()
    revoke_sessions_of(session, principal.id)


# Sessions --------------------------------------------------------------------------------


def session_of(row: SignInSessionRow) -> SignedIn:
    return SignedIn(
        id=row.id,
        kind="session",
        tenant_id=row.tenant_id,
        principal_id=row.principal_id,
        role=Role(row.role),
        mfa=row.mfa,
        expires_at=row.expires_at,
    )


@dataclass(frozen=True, slots=True)
class Issued:
    """A new session: its token (the only copy), what it grants, and the ids of the
    principal's oldest sessions revoked to keep it within its bound (for the audit)."""

    token: str
    signed_in: SignedIn
    revoked: list[str]

    def __repr__(self) -> str:
        return f"Issued(id={self.signed_in.id!r}, revoked={self.revoked!r})"


@dataclass(frozen=True, slots=True)
class StoredSession:
    signed_in: SignedIn
    secret_hash: bytes
    revoked: bool

    def __repr__(self) -> str:
        return f"StoredSession(id={self.signed_in.id!r}, revoked={self.revoked})"


def create_session(
    session: Session,
    principal: Principal,
    role: Role,
    *,
    keys: SessionKeys,
    mfa: bool,
    ttl_s: int,
    now: datetime | None = None,
) -> Issued:
    """Issue a session, its id signed with `keys`.  The token is handed out only once this
    transaction commits.  Past the principal's bound its oldest live sessions are revoked
    (`make_room`): a person signing in is never refused for sessions left open."""
    now = now or utcnow()
    revoked = make_room(session, principal.id, now)
    expires_at = now + timedelta(seconds=ttl_s)
    issued = issue_session(keys, expires_at, now=now)
    row = SignInSessionRow(
        id=issued.session_id,
        tenant_id=principal.tenant_id,
        principal_id=principal.id,
        role=role.value,
        mfa=mfa,
        secret_hash=issued.secret_hash,
        created_at=now,
        expires_at=expires_at,
        revoked_at=None,
    )
    session.add(row)
    session.flush()
    return Issued(issued.token, session_of(row), revoked)


def _lock_principal(session: Session, principal_id: str) -> None:
    """Hold the principal's row until the transaction ends: its sign-ins count one at a
    time.  PostgreSQL: FOR NO KEY UPDATE, which rows referring to the principal (their
    foreign keys' KEY SHARE) do not wait for.  SQLite has no row locks: an update matching
    nothing takes its write lock (and the transaction then reads the newest snapshot)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(PrincipalRow).where(false()).values(id=PrincipalRow.id))
        return
    session.execute(
        select(PrincipalRow.id)
        .where(PrincipalRow.id == principal_id)
        .with_for_update(key_share=True)
    )


def make_room(session: Session, principal_id: str, now: datetime) -> list[str]:
    """Revoke the principal's oldest live sessions so that one more stays within its bound;
    returns their ids.  Only this principal's rows are read or touched."""
    _lock_principal(session, principal_id)
    keep = bounds_of(session).sessions_per_principal - 1
    oldest = list(
        session.execute(
            select(SignInSessionRow.id)
            .where(
                SignInSessionRow.principal_id == principal_id,
                SignInSessionRow.revoked_at.is_(None),
                SignInSessionRow.expires_at > now,
            )
            .order_by(SignInSessionRow.created_at.desc(), SignInSessionRow.id.desc())
            .offset(keep)
        ).scalars()
    )
    if oldest:
        session.execute(
            update(SignInSessionRow).where(SignInSessionRow.id.in_(oldest)).values(revoked_at=now)
        )
        # Every replica drops its cached sessions when the catalog version moves.
        bump_version(session)
    return oldest


def purge_sessions(session: Session, now: datetime, *, limit: int) -> int:
    """Delete at most `limit` ended sessions (revoked, or expired by `now`), of any tenant."""
    ended = or_(SignInSessionRow.revoked_at.is_not(None), SignInSessionRow.expires_at <= now)
    ids = select(SignInSessionRow.id).where(ended).limit(limit).scalar_subquery()
    result = session.execute(
        delete(SignInSessionRow).where(SignInSessionRow.id.in_(ids)),
        execution_options={"synchronize_session": False},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def load_session(session: Session, session_id: str) -> StoredSession | None:
    row = session.get(SignInSessionRow, session_id)
    if row is None:
        return None
    return StoredSession(session_of(row), row.secret_hash, row.revoked_at is not None)


def revoke_session(session: Session, session_id: str) -> None:
    session.execute(
        update(SignInSessionRow)
        .where(SignInSessionRow.id == session_id, SignInSessionRow.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    # Every replica drops its cached sessions when the catalog version moves.
    bump_version(session)


def revoke_sessions_of(session: Session, principal_id: str) -> None:
    session.execute(
        update(SignInSessionRow)
        .where(SignInSessionRow.principal_id == principal_id, SignInSessionRow.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    bump_version(session)


def claims_json(data: Mapping[str, Any] | None) -> ClaimMapping:
    """Parse a submitted claim mapping; bad input raises ValueError."""
    return ClaimMapping.from_json(data or {})
