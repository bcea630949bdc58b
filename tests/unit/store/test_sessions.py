"""Unknown session tokens: a missing id is remembered briefly, and misses are rate-bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from bulkhead.domain import PrincipalKind, Role
from bulkhead.errors import RateLimited, Unauthenticated
from bulkhead.identity.sessions import issue_session
from bulkhead.store import Catalog, Database, repo, signin
from bulkhead.store.sessions import SessionVerifier


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reads(db: Database) -> Iterator[list[str]]:
    """The statements that read sign-in sessions."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        if "sign_in_sessions" in str(args[2]):
            seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine, "before_cursor_execute", record)


def bogus() -> str:
    return issue_session().token


def verify(verifier: SessionVerifier, token: str) -> None:
    asyncio.run(verifier.verify(token))


def test_a_missing_id_costs_one_read_per_window(db: Database, reads: list[str]) -> None:
    clock = Clock()
    verifier = SessionVerifier(db, Catalog(db), miss_cache_s=5.0, clock=clock)
    token = bogus()
    for _ in range(20):
        with pytest.raises(Unauthenticated):
            verify(verifier, token)
    assert len(reads) == 1
    clock.now += 5.0
    with pytest.raises(Unauthenticated):
        verify(verifier, token)
    assert len(reads) == 2


def test_a_flood_of_distinct_ids_is_cut_off_at_the_budget(db: Database, reads: list[str]) -> None:
    clock = Clock()
    verifier = SessionVerifier(db, Catalog(db), miss_rate=2.0, miss_burst=10, clock=clock)
    outcomes = []
    for _ in range(30):
        try:
            verify(verifier, bogus())
        except (Unauthenticated, RateLimited) as exc:
            outcomes.append(type(exc))
    assert outcomes == [Unauthenticated] * 10 + [RateLimited] * 20
    assert len(reads) == 10
    clock.now += 1.0  # Two more reads' worth of budget.
    for expected in (Unauthenticated, Unauthenticated, RateLimited):
        with pytest.raises(expected):
            verify(verifier, bogus())
    assert len(reads) == 12


def test_sessions_found_do_not_spend_the_budget_and_cached_ones_outlast_a_flood(
    db: Database,
) -> None:
    with db.platform_transaction() as s:
        person = repo.create_principal(s, None, "alice", PrincipalKind.USER, [Role.END_USER])
        tokens = [
            signin.create_session(s, person, Role.END_USER, mfa=False, ttl_s=600)[0]
            for _ in range(3)
        ]
    clock = Clock()
    verifier = SessionVerifier(db, Catalog(db), miss_rate=1.0, miss_burst=2, clock=clock)
    for token in tokens[:2]:  # Two reads that find a session: the budget of 2 is intact.
        assert asyncio.run(verifier.verify(token)).principal_id == person.id
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            verify(verifier, bogus())
    with pytest.raises(RateLimited):
        verify(verifier, bogus())
    assert asyncio.run(verifier.verify(tokens[0])).principal_id == person.id  # Cached.
    with pytest.raises(RateLimited):  # Not cached yet: it waits for the flood to pass.
        verify(verifier, tokens[2])
    clock.now += 1.0
    assert asyncio.run(verifier.verify(tokens[2])).principal_id == person.id


def test_one_clients_flood_spends_only_its_own_budget(db: Database, reads: list[str]) -> None:
    with db.platform_transaction() as s:
        person = repo.create_principal(s, None, "bo", PrincipalKind.USER, [Role.END_USER])
        token = signin.create_session(s, person, Role.END_USER, mfa=False, ttl_s=600)[0]
    verifier = SessionVerifier(
        db, Catalog(db), client_miss_rate=1.0, client_miss_burst=3, clock=Clock()
    )
    reads.clear()
    outcomes = []
    for _ in range(10):
        try:
            asyncio.run(verifier.verify(bogus(), client="192.0.2.66"))
        except (Unauthenticated, RateLimited) as exc:
            outcomes.append(type(exc))
    assert outcomes == [Unauthenticated] * 3 + [RateLimited] * 7
    assert len(reads) == 3
    # Another client's session, never seen before, is read.
    signed = asyncio.run(verifier.verify(token, client="192.0.2.7"))
    assert signed.principal_id == person.id


def test_a_cached_session_is_re_read_after_a_catalog_change_without_budget(
    db: Database, reads: list[str]
) -> None:
    with db.platform_transaction() as s:
        person = repo.create_principal(s, None, "cy", PrincipalKind.USER, [Role.END_USER])
        token = signin.create_session(s, person, Role.END_USER, mfa=False, ttl_s=600)[0]
    catalog = Catalog(db)
    verifier = SessionVerifier(db, catalog, miss_rate=1.0, miss_burst=1, clock=Clock())
    asyncio.run(verifier.verify(token))
    with pytest.raises(Unauthenticated):
        verify(verifier, bogus())
    with pytest.raises(RateLimited):  # The shared budget is spent.
        verify(verifier, bogus())
    with db.platform_transaction() as s:
        repo.bump_version(s)
    catalog.reload()
    before = len(reads)
    assert asyncio.run(verifier.verify(token)).principal_id == person.id
    assert len(reads) == before + 1  # Re-read (it might have been revoked), budget or not.


def test_a_re_read_session_that_is_gone_is_refused(db: Database) -> None:
    with db.platform_transaction() as s:
        person = repo.create_principal(s, None, "di", PrincipalKind.USER, [Role.END_USER])
        token, made = signin.create_session(s, person, Role.END_USER, mfa=False, ttl_s=600)
    catalog = Catalog(db)
    verifier = SessionVerifier(db, catalog, clock=Clock())
    asyncio.run(verifier.verify(token))
    with db.platform_transaction() as s:
        signin.revoke_session(s, made.id)
    catalog.reload()
    with pytest.raises(Unauthenticated):
        verify(verifier, token)
