"""Sign-in sessions are bounded: per principal at sign-in, and ended rows purged by maintenance.

A principal (or a script holding its password and authenticator) signing in again and
again made one row each, kept for ever; expired and revoked rows were never deleted.
Past `BULKHEAD_MAX_SESSIONS_PER_PRINCIPAL` a sign-in now revokes the principal's oldest
live session (the person signing in is never refused), under the principal's lock, and
the maintenance loop deletes ended rows in bounded batches.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from bulkhead.app.jobs import purge_sessions
from bulkhead.domain import Principal, PrincipalKind, Role, Tier
from bulkhead.errors import Unauthenticated, status_of
from bulkhead.store import Catalog, Database, repo, signin, upgrade
from bulkhead.store.bounds import TenantBounds
from bulkhead.store.schema import SignInSessionRow, utcnow
from bulkhead.store.sessions import SessionVerifier
from tests.unit.store.test_sessions import PLATFORM


@pytest.fixture
def bounded(db_url: str, db_admin_url: str | None) -> Iterator[Database]:
    """A store whose principals may hold 3 live sessions each."""
    database = Database(db_url, TenantBounds(sessions_per_principal=3))
    upgrade(database, db_admin_url)
    yield database
    database.dispose()


def _person(db: Database, name: str, tenant: str | None = None) -> Principal:
    with db.platform_transaction() as s:
        tenant_id = repo.create_tenant(s, tenant, Tier.SHARED).id if tenant else None
        return repo.create_principal(s, tenant_id, name, PrincipalKind.USER, [Role.END_USER])


def _sign_in(db: Database, who: Principal, now: datetime | None = None) -> str:
    with db.platform_transaction() as s:
        issued = signin.create_session(
            s, who, Role.END_USER, keys=PLATFORM, mfa=False, ttl_s=600, now=now
        )
    return issued.token


def _live(db: Database, who: Principal) -> int:
    with db.platform_transaction() as s:
        return s.execute(
            select(func.count())
            .select_from(SignInSessionRow)
            .where(
                SignInSessionRow.principal_id == who.id,
                SignInSessionRow.revoked_at.is_(None),
                SignInSessionRow.expires_at > utcnow(),
            )
        ).scalar_one()


def _rows(db: Database) -> int:
    with db.platform_transaction() as s:
        return s.execute(select(func.count()).select_from(SignInSessionRow)).scalar_one()


def _accepted(db: Database, token: str) -> bool:
    sessions = SessionVerifier(db, Catalog(db), lambda: PLATFORM)
    try:
        asyncio.run(sessions.verify(token))
    except Unauthenticated as exc:
        assert status_of(exc)[0] == 401
        return False
    return True


def test_signing_in_past_the_bound_revokes_the_oldest_session_only(bounded: Database) -> None:
    me, other = _person(bounded, "me", "t-one"), _person(bounded, "other", "t-two")
    theirs = [_sign_in(bounded, other) for _ in range(3)]
    mine = [_sign_in(bounded, me) for _ in range(4)]
    assert not _accepted(bounded, mine[0])  # the oldest: its cookie now answers 401
    assert all(_accepted(bounded, token) for token in mine[1:])
    assert _live(bounded, me) == 3
    # Another tenant's principal, at its own bound, lost nothing to mine.
    assert all(_accepted(bounded, token) for token in theirs) and _live(bounded, other) == 3


def test_concurrent_sign_ins_stay_within_the_bound(bounded: Database) -> None:
    me = _person(bounded, "me")
    tokens: list[str] = []
    errors: list[BaseException] = []

    def sign_in() -> None:
        try:
            tokens.append(_sign_in(bounded, me))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sign_in) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(tokens) == 8
    assert _live(bounded, me) == 3
    assert sum(_accepted(bounded, token) for token in tokens) == 3


def test_maintenance_deletes_expired_and_revoked_sessions_and_keeps_live_ones(
    db: Database,
) -> None:
    me = _person(db, "me")
    live = _sign_in(db, me)
    _sign_in(db, me, now=utcnow() - timedelta(hours=1))  # expired 50 minutes ago
    revoked = [_sign_in(db, me) for _ in range(3)]
    sessions = SessionVerifier(db, Catalog(db), lambda: PLATFORM)
    for token in revoked:
        signed = asyncio.run(sessions.verify(token))
        with db.platform_transaction() as s:
            signin.revoke_session(s, signed.id)
    assert _rows(db) == 5
    # Batches of 2: every ended row goes, however many batches it takes.
    assert purge_sessions(db, batch=2) == 4
    assert _rows(db) == 1 and _accepted(db, live)
    assert purge_sessions(db, batch=2) == 0
