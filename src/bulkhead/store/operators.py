"""Platform principals (operators): created, disabled, enabled, deleted and given roles.

Every write here starts by bumping the catalog version, which takes the one
write lock every writer of the control plane takes (a row lock on
PostgreSQL, the database's write lock on SQLite) before it reads anything.
So two changes at once run one after the other, and each sees what the
other did: two admins disabling each other cannot both pass the check that
keeps one active admin, and two creations by a sole admin cannot both find
it alone.

A platform principal's credentials are its API keys, its sign-in sessions
and, until it enrols, its enrolment secret; disabling it revokes all three
(and expires its access requests and grants) in the same transaction, and
the catalog version it bumps makes every replica drop them within its next
poll.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from bulkhead.domain import PLATFORM_ROLES, Principal, PrincipalKind, Role
from bulkhead.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bulkhead.identity.enrolment import IssuedEnrolment, issue_enrolment, matches
from bulkhead.store import repo
from bulkhead.store.schema import (
    SHARED_SCOPE,
    AccessRequestRow,
    ApiKeyRow,
    EnrolmentRow,
    LocalCredentialRow,
    PrincipalRow,
    utcnow,
)
from bulkhead.store.selfservice import revoke_beyond

ADMIN = Role.PLATFORM_ADMIN.value
# Deliberately plain: an address to reach the person at, never used to sign anyone in.
# No control (C0, DEL, C1) or bidirectional characters: it is shown to operators.
_NOT_LOCAL = r"@\s\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
EMAIL = re.compile(rf"^[^{_NOT_LOCAL}]{{1,64}}@[A-Za-z0-9.-]{{1,189}}\.[A-Za-z]{{2,63}}$")


@dataclass(frozen=True, slots=True)
class Operator:
    """A platform principal as the API shows it: whether it has enrolled, and its live keys."""

    principal: Principal
    enrolled: bool
    enrolment_expires_at: datetime | None
    keys: int
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class Created:
    operator: Operator
    enrolment: IssuedEnrolment

    def __repr__(self) -> str:
        return f"Created(principal={self.operator.principal.name!r})"


def serialise(session: Session) -> None:
    """Take the control plane's write lock before reading (see the module's docstring)."""
    repo.bump_version(session)


def _row(session: Session, name: str) -> PrincipalRow:
    row = session.execute(
        select(PrincipalRow).where(PrincipalRow.scope == SHARED_SCOPE, PrincipalRow.name == name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"platform principal '{name}' not found")
    return row


def find(session: Session, name: str) -> Principal:
    return repo.principal_of(_row(session, name))


def active_admins(session: Session) -> list[str]:
    """Ids of the platform admins who can act, or still enrol to: not disabled, and signed
    up (a password), holding a live admin key, or holding an enrolment secret not yet expired.

    An admin whose enrolment expired unused can never approve anything: counted, it
    would leave a sole admin needing a grant nobody can give, even to delete it.
    """
    rows = session.execute(
        select(PrincipalRow.id, PrincipalRow.roles).where(
            PrincipalRow.scope == SHARED_SCOPE, PrincipalRow.disabled_at.is_(None)
        )
    ).all()
    now = utcnow()
    return [id_ for id_, roles in rows if ADMIN in roles and _can_act(session, id_, now)]


def _can_act(session: Session, principal_id: str, now: datetime) -> bool:
    if session.get(LocalCredentialRow, principal_id) is not None:
        return True
    pending = session.get(EnrolmentRow, principal_id)
    if pending is not None and pending.expires_at > now:
        return True
    # Only a key in the admin role approves anything; an auditor key of an admin does not.
    live = select(ApiKeyRow.id).where(
        ApiKeyRow.principal_id == principal_id,
        ApiKeyRow.role == ADMIN,
        ApiKeyRow.revoked_at.is_(None),
        or_(ApiKeyRow.expires_at.is_(None), ApiKeyRow.expires_at > now),
    )
    return session.execute(live.limit(1)).first() is not None


def platform_roles(roles: Iterable[Role]) -> list[str]:
    wanted = {Role(r) for r in roles}
    if not wanted or not wanted <= PLATFORM_ROLES:
        raise InvalidRequest(
            "A platform principal holds platform_admin, platform_auditor or both.", param="roles"
        )
    return sorted(r.value for r in wanted)


def _email(value: str | None) -> str | None:
    if value is not None and not EMAIL.fullmatch(value):
        raise InvalidRequest("'email' is not an email address.", param="email")
    return value


def check_new(name: str, roles: Iterable[Role], email: str | None) -> None:
    """Refuse a bad name, role or address before anything else (a 400, not a grant to ask for)."""
    if not repo.PRINCIPAL_NAME.fullmatch(name):
        raise InvalidRequest(
            "'name' is 1 to 128 letters, digits and . _ @ + -, starting with a letter or digit.",
            param="name",
        )
    platform_roles(roles)
    _email(email)


def _operator(session: Session, row: PrincipalRow) -> Operator:
    credential = session.get(LocalCredentialRow, row.id)
    pending = session.get(EnrolmentRow, row.id)
    live = session.execute(
        select(ApiKeyRow.id).where(ApiKeyRow.principal_id == row.id, ApiKeyRow.revoked_at.is_(None))
    ).all()
    return Operator(
        principal=repo.principal_of(row),
        enrolled=credential is not None and credential.totp_secret is not None,
        enrolment_expires_at=pending.expires_at if pending is not None else None,
        keys=len(live),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def create(
    session: Session,
    name: str,
    roles: Iterable[Role],
    *,
    email: str | None,
    created_by: str,
    lifetime: timedelta,
) -> Created:
    """A platform principal with no credential, and its one-time enrolment secret."""
    held = platform_roles(roles)
    principal = repo.create_principal(session, None, name, PrincipalKind.USER, map(Role, held))
    row = session.get(PrincipalRow, principal.id)
    assert row is not None
    row.email = _email(email)
    issued = issue_enrolment()
    now = utcnow()
    session.add(
        EnrolmentRow(
            principal_id=principal.id,
            secret_hash=issued.secret_hash,
            created_by=created_by,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return Created(_operator(session, row), issued)


def list_all(session: Session) -> list[Operator]:
    rows = session.execute(
        select(PrincipalRow).where(PrincipalRow.scope == SHARED_SCOPE).order_by(PrincipalRow.name)
    ).scalars()
    return [_operator(session, row) for row in rows]


def get(session: Session, name: str) -> Operator:
    return _operator(session, _row(session, name))


def _not_self(actor: Principal, row: PrincipalRow, what: str) -> None:
    if actor.id == row.id:
        raise PermissionDenied(
            f"You cannot {what} yourself: another platform admin must.", policy="platform.not-self"
        )


def _keep_an_admin(session: Session, row: PrincipalRow, roles: set[str]) -> None:
    """Refuse a change that would leave no active platform admin (counted under
    `repo.lock_platform_principals`, which the caller took before reading `row`)."""
    if row.disabled_at is not None or ADMIN not in row.roles or ADMIN in roles:
        return
    if active_admins(session) == [row.id]:
        raise Conflict("This is the last active platform admin: it cannot be removed or disabled.")


def end_requests(session: Session, principal_id: str) -> None:
    """Expire the principal's pending requests and live grants (`bulkhead.pam`'s statuses).

    Enabling it again, or giving it the admin role back, is approved as that, not as
    every grant it held before; a later request is decided afresh.
    """
    session.execute(
        update(AccessRequestRow)
        .where(
            AccessRequestRow.requester_id == principal_id,
            AccessRequestRow.status.in_(("pending", "approved")),
        )
        .values(status="expired")
        .execution_options(synchronize_session=False)
    )


def set_roles(session: Session, name: str, roles: Iterable[Role], *, actor: Principal) -> Operator:
    """Replace a platform principal's roles; its keys and sessions in a dropped role end."""
    repo.lock_platform_principals(session)  # before its roles and keys are read
    row = _row(session, name)
    _not_self(actor, row, "change the roles of")
    wanted = set(platform_roles(roles))
    _keep_an_admin(session, row, wanted)
    if ADMIN in row.roles and ADMIN not in wanted:
        end_requests(session, row.id)  # only an admin asks for, or holds, a grant
    row.roles = sorted(wanted)
    revoke_beyond(session, row.id, wanted)
    session.flush()
    return _operator(session, row)


def disable(session: Session, name: str, *, actor: Principal) -> tuple[Operator, list[str]]:
    """Disable a principal: every key, session and enrolment secret of it ends now."""
    repo.lock_platform_principals(session)  # before its roles and keys are read
    row = _row(session, name)
    _not_self(actor, row, "disable")
    _keep_an_admin(session, row, set())
    revoked = revoke_beyond(session, row.id, set())
    end_requests(session, row.id)
    session.execute(delete(EnrolmentRow).where(EnrolmentRow.principal_id == row.id))
    if row.disabled_at is None:
        row.disabled_at = utcnow()
    session.flush()
    return _operator(session, row), revoked


def enable(session: Session, name: str) -> Operator:
    """Let a disabled principal sign in again (its revoked keys stay revoked)."""
    row = _row(session, name)
    row.disabled_at = None
    session.flush()
    return _operator(session, row)


def remove(session: Session, name: str, *, actor: Principal) -> Principal:
    """Delete a principal; its keys, sessions, password and enrolment go with it."""
    repo.lock_platform_principals(session)  # before its roles and keys are read
    row = _row(session, name)
    _not_self(actor, row, "delete")
    _keep_an_admin(session, row, set())
    revoke_beyond(session, row.id, set())
    end_requests(session, row.id)
    gone = repo.principal_of(row)
    session.flush()
    session.delete(row)  # ON DELETE CASCADE: keys, credentials, sessions, enrolment.
    session.flush()
    return gone


# Enrolment -------------------------------------------------------------------------------


class EnrolmentRefused(Exception):
    """Why an enrolment secret was refused; the caller answers one way for every reason."""

    def __init__(self, why: str, principal_id: str | None = None):
        super().__init__(why)
        self.why, self.principal_id = why, principal_id


def check_enrolment(
    session: Session, name: str, secret: str, now: datetime
) -> tuple[Principal, bytes | None]:
    """The principal `secret` enrols and the authenticator it began, or `EnrolmentRefused`."""
    try:
        row = _row(session, name)
    except NotFound:
        raise EnrolmentRefused("unknown principal") from None
    pending = session.get(EnrolmentRow, row.id)
    if pending is None:
        raise EnrolmentRefused("no enrolment pending", row.id)
    if not matches(secret, pending.secret_hash):
        raise EnrolmentRefused("wrong secret", row.id)
    if pending.expires_at <= now:
        raise EnrolmentRefused("expired", row.id)
    if row.disabled_at is not None:
        raise EnrolmentRefused("principal disabled", row.id)
    if session.get(LocalCredentialRow, row.id) is not None:
        raise EnrolmentRefused("already has a password", row.id)
    return repo.principal_of(row), pending.pending_totp_secret


def begin_authenticator(session: Session, principal_id: str, sealed: bytes) -> None:
    """Keep a new authenticator (sealed) for the enrolment; a later start replaces it."""
    session.execute(
        update(EnrolmentRow)
        .where(EnrolmentRow.principal_id == principal_id)
        .values(pending_totp_secret=sealed)
        .execution_options(synchronize_session=False)
    )


def use_enrolment(
    session: Session, principal_id: str, secret_hash: bytes, pending: bytes, now: datetime
) -> bool:
    """Delete the enrolment if it is still the one checked, with the authenticator the code
    was checked against, and live: true for one caller only."""
    used = session.execute(
        delete(EnrolmentRow)
        .where(
            EnrolmentRow.principal_id == principal_id,
            EnrolmentRow.secret_hash == secret_hash,
            EnrolmentRow.pending_totp_secret == pending,
            EnrolmentRow.expires_at > now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(used, "rowcount", 0) == 1)
