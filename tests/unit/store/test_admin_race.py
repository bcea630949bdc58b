"""Two admins removing each other at the same moment leave one admin, on both stores.

Each change checks that another admin remains; without a lock both checks ran
before either change committed, both passed, and the tenant (or the platform)
was left with no admin at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy.orm import Session

from bulkhead.domain import PrincipalKind, Role, Tier
from bulkhead.errors import Conflict
from bulkhead.store import Database, operators, repo, selfservice

HELD_S = 0.5


def second_outcome(
    db: Database, first: Callable[[Session], None], second: Callable[[], None]
) -> str:
    """Run `first` in a transaction kept open while `second` starts in its own; what
    `second` ended with: "ok", or "conflict" when its check refused it."""
    outcome: list[str] = []

    def run_second() -> None:
        try:
            second()
            outcome.append("ok")
        except Conflict:
            outcome.append("conflict")

    thread = threading.Thread(target=run_second)
    try:
        with db.platform_transaction() as session:
            first(session)
            thread.start()
            thread.join(HELD_S)  # with a lock, the second waits here for the first to commit
    finally:
        if thread.ident is not None:
            thread.join(10)
    assert outcome, "the second change never finished"
    return outcome[0]


def test_two_tenant_admins_removing_each_other_at_once_leave_one(db: Database) -> None:
    with db.platform_transaction() as s:
        tenant = repo.create_tenant(s, "acme", Tier.SHARED)
        admin = [Role.TENANT_ADMIN]
        alice = repo.create_principal(s, tenant.id, "alice", PrincipalKind.USER, admin)
        bob = repo.create_principal(s, tenant.id, "bob", PrincipalKind.USER, admin)

    def alice_demotes_bob(session: Session) -> None:
        selfservice.set_principal_roles(session, tenant.id, "bob", [Role.END_USER], actor=alice)

    def bob_demotes_alice() -> None:
        with db.tenant_transaction(tenant.id) as s:
            selfservice.set_principal_roles(s, tenant.id, "alice", [Role.END_USER], actor=bob)

    assert second_outcome(db, alice_demotes_bob, bob_demotes_alice) == "conflict"
    with db.platform_transaction() as s:
        left = [p.name for p in repo.list_principals(s, tenant.id) if Role.TENANT_ADMIN in p.roles]
    assert left == ["alice"]


def test_two_platform_admins_removing_each_other_at_once_leave_one(db: Database) -> None:
    with db.platform_transaction() as s:
        one = repo.create_key(s, None, role=Role.PLATFORM_ADMIN)
        two = repo.create_key(s, None, role=Role.PLATFORM_ADMIN)
        first_admin = repo.get_principal(s, None, f"key-{one.key.id}")
        second_admin = repo.get_principal(s, None, f"key-{two.key.id}")
    auditor = [Role.PLATFORM_AUDITOR]

    def first_demotes_second(session: Session) -> None:
        operators.set_roles(session, second_admin.name, auditor, actor=first_admin)

    def second_demotes_first() -> None:
        with db.platform_transaction() as s:
            operators.set_roles(s, first_admin.name, auditor, actor=second_admin)

    assert second_outcome(db, first_demotes_second, second_demotes_first) == "conflict"
    with db.platform_transaction() as s:
        assert operators.active_admins(s) == [first_admin.id]


def test_rotating_a_key_while_its_principal_is_demoted_neither_deadlocks_nor_keeps_the_role(
    db: Database,
) -> None:
    """Demoting (or removing) a principal locks the tenant, then revokes its keys; rotating
    one of those keys must take the locks in the same order.  Rotating the key first and the
    tenant second deadlocked the two on PostgreSQL (one answered 500), and on SQLite the
    rotation, reading the key before it waited, issued a new key in the dropped role."""
    with db.platform_transaction() as s:
        tenant = repo.create_tenant(s, "acme", Tier.SHARED)
        admin = [Role.TENANT_ADMIN]
        alice = repo.create_principal(s, tenant.id, "alice", PrincipalKind.USER, admin)
        bob = repo.create_principal(s, tenant.id, "bob", PrincipalKind.USER, admin)
        key = repo.create_key(s, tenant.id, role=Role.TENANT_ADMIN, principal=bob)

    def alice_demotes_bob(session: Session) -> None:
        repo.lock_tenant(session, tenant.id)  # what the demotion takes first (`_keep_an_admin`)

    def bob_rotates_his_key() -> None:
        with db.tenant_transaction(tenant.id) as s:
            selfservice.rotate_key(s, tenant.id, key.key.id)

    outcome: list[str] = []

    def run_second() -> None:
        try:
            bob_rotates_his_key()
            outcome.append("ok")
        except Conflict:
            outcome.append("conflict")
        except Exception as exc:  # the deadlock, as the error layer would see it
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=run_second)
    try:
        with db.platform_transaction() as session:
            alice_demotes_bob(session)
            thread.start()
            thread.join(HELD_S)
            selfservice.set_principal_roles(session, tenant.id, "bob", [Role.END_USER], actor=alice)
    finally:
        thread.join(10)
    assert outcome == ["conflict"]  # the key was revoked with the role: nothing to rotate
    with db.platform_transaction() as s:
        kept = [k for k in repo.all_keys(s) if k.principal_id == bob.id and k.revoked_at is None]
    assert kept == []


def test_a_role_taken_while_a_key_in_it_is_rotated_leaves_no_key_in_that_role(
    db: Database,
) -> None:
    """Dropping a role revokes the principal's keys in it; a rotation of one of those keys
    committing meanwhile made a new key in the role that the revocation, having listed the
    keys before the rotation committed, never saw."""
    with db.platform_transaction() as s:
        tenant = repo.create_tenant(s, "acme", Tier.SHARED)
        alice = repo.create_principal(
            s, tenant.id, "alice", PrincipalKind.USER, [Role.TENANT_ADMIN]
        )
        dev = [Role.MODEL_DEVELOPER, Role.END_USER]
        carol = repo.create_principal(s, tenant.id, "carol", PrincipalKind.USER, dev)
        key = repo.create_key(s, tenant.id, role=Role.MODEL_DEVELOPER, principal=carol)

    def rotate(session: Session) -> None:
        selfservice.rotate_key(session, tenant.id, key.key.id)

    def demote() -> None:
        with db.tenant_transaction(tenant.id) as s:
            selfservice.set_principal_roles(s, tenant.id, "carol", [Role.END_USER], actor=alice)

    assert second_outcome(db, rotate, demote) == "ok"
    with db.platform_transaction() as s:
        kept = [
            k.role for k in repo.all_keys(s) if k.principal_id == carol.id and k.revoked_at is None
        ]
    assert Role.MODEL_DEVELOPER not in kept


def test_a_key_made_while_its_role_is_taken_is_refused(db: Database) -> None:
    """The handler checks that the principal holds the key's role before the tenant's lock;
    a demotion committing meanwhile revoked the keys in the role, and the new key, made
    after it, was left in a role its principal no longer held."""
    with db.platform_transaction() as s:
        tenant = repo.create_tenant(s, "acme", Tier.SHARED)
        alice = repo.create_principal(
            s, tenant.id, "alice", PrincipalKind.USER, [Role.TENANT_ADMIN]
        )
        dev = [Role.MODEL_DEVELOPER, Role.END_USER]
        repo.create_principal(s, tenant.id, "carol", PrincipalKind.USER, dev)

    def demote(session: Session) -> None:
        selfservice.set_principal_roles(session, tenant.id, "carol", [Role.END_USER], actor=alice)

    def make_a_key() -> None:
        with db.tenant_transaction(tenant.id) as s:
            carol = repo.get_principal(s, tenant.id, "carol")  # read as the handler does
            assert Role.MODEL_DEVELOPER in carol.roles
            repo.create_key(s, tenant.id, role=Role.MODEL_DEVELOPER, principal=carol)

    assert second_outcome(db, demote, make_a_key) == "conflict"


def test_a_platform_key_made_while_its_role_is_taken_is_refused(db: Database) -> None:
    """The platform's path took no lock when a principal lost a role other than admin: a key
    made meanwhile, its role read before the change committed, was left in a role its
    principal no longer held (the change's revocation had listed the keys before it)."""
    with db.platform_transaction() as s:
        one = repo.create_key(s, None, role=Role.PLATFORM_ADMIN)
        admin = repo.get_principal(s, None, f"key-{one.key.id}")
        both = [Role.PLATFORM_ADMIN, Role.PLATFORM_AUDITOR]
        repo.create_principal(s, None, "carol", PrincipalKind.USER, both)

    def demote(session: Session) -> None:
        operators.set_roles(session, "carol", [Role.PLATFORM_ADMIN], actor=admin)

    def make_a_key() -> None:
        with db.platform_transaction() as s:
            carol = operators.find(s, "carol")  # read as the handler does
            assert Role.PLATFORM_AUDITOR in carol.roles
            repo.create_key(s, None, role=Role.PLATFORM_AUDITOR, principal=carol)

    assert second_outcome(db, demote, make_a_key) == "conflict"
    with db.platform_transaction() as s:
        carol = operators.find(s, "carol")
        kept = [
            k.role for k in repo.all_keys(s) if k.principal_id == carol.id and k.revoked_at is None
        ]
    assert kept == []


def test_a_platform_key_made_while_its_principal_is_disabled_is_refused(db: Database) -> None:
    with db.platform_transaction() as s:
        one = repo.create_key(s, None, role=Role.PLATFORM_ADMIN)
        admin = repo.get_principal(s, None, f"key-{one.key.id}")
        auditor = [Role.PLATFORM_AUDITOR]
        repo.create_principal(s, None, "dave", PrincipalKind.USER, auditor)

    def disable(session: Session) -> None:
        operators.disable(session, "dave", actor=admin)

    def make_a_key() -> None:
        with db.platform_transaction() as s:
            dave = operators.find(s, "dave")
            assert not dave.disabled
            repo.create_key(s, None, role=Role.PLATFORM_AUDITOR, principal=dave)

    assert second_outcome(db, disable, make_a_key) == "conflict"
