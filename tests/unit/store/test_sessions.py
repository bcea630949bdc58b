"""Session tokens: forged ids are refused unread, a missing signed id costs one read, no budget."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from bulkhead.domain import Principal, PrincipalKind, Role
from bulkhead.errors import Unauthenticated
from bulkhead.identity.sessions import ACTIVATION, TTL_S, SessionKey, SessionKeys, issue_session
from bulkhead.store import Catalog, Database, repo, signin
from bulkhead.store.sessions import SessionVerifier


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PLATFORM = SessionKeys([SessionKey.generate(1, datetime.now(UTC) - timedelta(days=1))])


@pytest.fixture
def reads(db: Database) -> Iterator[list[str]]:
    """The statements that read sign-in sessions."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        if str(args[2]).startswith("SELECT") and "sign_in_sessions" in str(args[2]):
            seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine, "before_cursor_execute", record)


def forged() -> str:
    """A well-formed token, signed with a key an attacker made up."""
    theirs = SessionKeys([SessionKey.generate(1, datetime.now(UTC))])
    return issue_session(theirs, datetime.now(UTC) + timedelta(hours=1)).token


def signed_but_unknown(ttl_s: int = TTL_S) -> str:
    """A token the platform's key signed whose session is not stored (its row is gone)."""
    return issue_session(PLATFORM, datetime.now(UTC) + timedelta(seconds=ttl_s)).token


def verifier(db: Database, catalog: Catalog | None = None, **options: Any) -> SessionVerifier:
    return SessionVerifier(db, catalog or Catalog(db), lambda: PLATFORM, **options)


def verify(sessions: SessionVerifier, token: str, now: datetime | None = None) -> Any:
    return asyncio.run(sessions.verify(token, now=now))


def person(db: Database, name: str) -> Principal:
    with db.platform_transaction() as s:
        return repo.create_principal(s, None, name, PrincipalKind.USER, [Role.END_USER])


def session_of(db: Database, who: Principal, keys: SessionKeys = PLATFORM) -> tuple[str, Any]:
    with db.platform_transaction() as s:
        issued = signin.create_session(s, who, Role.END_USER, keys=keys, mfa=False, ttl_s=600)
        return issued.token, issued.signed_in


def test_forged_tokens_are_refused_without_a_read_however_many(
    db: Database, reads: list[str]
) -> None:
    sessions = verifier(db, clock=Clock())
    for _ in range(2000):
        with pytest.raises(Unauthenticated) as refused:
            verify(sessions, forged())
        assert refused.value.message == "Incorrect session token provided."
    assert reads == []


def test_a_signed_id_that_is_missing_costs_one_read_until_it_expires(
    db: Database, reads: list[str]
) -> None:
    clock = Clock()
    sessions = verifier(db, clock=clock)
    token = signed_but_unknown(ttl_s=600)
    for _ in range(20):
        with pytest.raises(Unauthenticated):
            verify(sessions, token)
    assert len(reads) == 1
    clock.now += 599  # Still remembered as missing: its row cannot come back.
    with pytest.raises(Unauthenticated):
        verify(sessions, token)
    assert len(reads) == 1
    clock.now += 2
    later = datetime.now(UTC) + timedelta(seconds=601)
    with pytest.raises(Unauthenticated) as refused:  # Expired: refused by its id alone.
        verify(sessions, token, later)
    assert refused.value.code == "session_expired" and len(reads) == 1


def test_a_fresh_session_works_at_once_after_any_flood(db: Database, reads: list[str]) -> None:
    sessions = verifier(db, clock=Clock())
    for _ in range(500):
        with pytest.raises(Unauthenticated):
            verify(sessions, forged())
    for _ in range(50):  # Ids of sessions whose principal was deleted.
        with pytest.raises(Unauthenticated):
            verify(sessions, signed_but_unknown())
    assert len(reads) == 50
    token, made = session_of(db, person(db, "alice"))
    signed_in = len(reads)  # Signing in counts the principal's sessions (its bound).
    assert verify(sessions, token).principal_id == made.principal_id
    assert verify(sessions, token).principal_id == made.principal_id  # Cached.
    assert len(reads) == signed_in + 1


def test_a_stored_session_under_a_wrong_secret_is_refused(db: Database) -> None:
    token, _ = session_of(db, person(db, "bo"))
    sessions = verifier(db, clock=Clock())
    prefix, session_id, secret = token.split("_", 2)
    other = "A" if secret[0] != "A" else "B"
    with pytest.raises(Unauthenticated) as refused:
        verify(sessions, f"{prefix}_{session_id}_{other}{secret[1:]}")
    assert refused.value.message == "Incorrect session token provided."
    verify(sessions, token)


def test_a_cached_session_is_re_read_after_a_catalog_change(db: Database, reads: list[str]) -> None:
    token, _ = session_of(db, person(db, "cy"))
    catalog = Catalog(db)
    sessions = verifier(db, catalog, clock=Clock())
    verify(sessions, token)
    with db.platform_transaction() as s:
        repo.bump_version(s)
    catalog.reload()
    before = len(reads)
    verify(sessions, token)
    assert len(reads) == before + 1  # Re-read: it might have been revoked.


def test_a_re_read_session_that_is_gone_is_refused(db: Database) -> None:
    token, made = session_of(db, person(db, "di"))
    catalog = Catalog(db)
    sessions = verifier(db, catalog, clock=Clock())
    verify(sessions, token)
    with db.platform_transaction() as s:
        signin.revoke_session(s, made.id)
    catalog.reload()
    with pytest.raises(Unauthenticated) as refused:
        verify(sessions, token)
    assert refused.value.code == "session_expired"


def test_a_session_signed_before_a_rotation_lasts_its_lifetime(
    db: Database, reads: list[str]
) -> None:
    old = PLATFORM.accepted(datetime.now(UTC))[0]
    rotated = datetime.now(UTC) - ACTIVATION
    both = SessionKeys([old, SessionKey.generate(2, rotated)])
    token, _ = session_of(db, person(db, "ed"))  # Signed with version 1.
    sessions = SessionVerifier(db, Catalog(db), lambda: both, clock=Clock())
    verify(sessions, token)
    # One lifetime after version 2 began to sign, version 1's ids are refused unread.
    sessions = SessionVerifier(db, Catalog(db), lambda: both, clock=Clock())
    before = len(reads)
    with pytest.raises(Unauthenticated) as refused:
        verify(sessions, token, rotated + ACTIVATION + timedelta(seconds=TTL_S))
    assert refused.value.message == "Incorrect session token provided."
    assert len(reads) == before
