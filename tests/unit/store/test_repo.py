"""Repository functions on both backends: tenant scoping, names, conflicts and version bumps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from bulkhead.domain import (
    ApiKey,
    DeploymentKind,
    Endpoint,
    PrincipalKind,
    Role,
    Tenant,
    TenantStatus,
    Tier,
)
from bulkhead.errors import Conflict, InvalidRequest, NotFound
from bulkhead.store import Database, repo

UPSTREAM = repo.DeploymentSpec(DeploymentKind.UPSTREAM, base_url="http://up.internal/v1")


def make_tenant(db: Database, name: str) -> Tenant:
    with db.platform_transaction() as session:
        return repo.create_tenant(session, name, Tier.SHARED)


def make_key(db: Database, tenant: Tenant | None, role: Role = Role.END_USER) -> repo.CreatedKey:
    with db.platform_transaction() as session:
        return repo.create_key(session, tenant.id if tenant else None, role=role)


def version(db: Database) -> int:
    with db.platform_transaction() as session:
        return repo.catalog_version(session)


# Tenants -----------------------------------------------------------------------------------


def test_duplicate_tenant_name_is_a_conflict(db: Database) -> None:
    make_tenant(db, "acme")
    with pytest.raises(Conflict), db.platform_transaction() as session:
        repo.create_tenant(session, "acme", Tier.MIG)
    with db.platform_transaction() as session:
        assert [t.name for t in repo.list_tenants(session)] == ["acme"]


def test_duplicate_tenant_in_one_transaction_is_a_conflict(db: Database) -> None:
    with pytest.raises(Conflict), db.platform_transaction() as session:
        repo.create_tenant(session, "acme", Tier.SHARED)
        repo.create_tenant(session, "acme", Tier.SHARED)
    with db.platform_transaction() as session:
        assert repo.list_tenants(session) == []


INVALID_TENANT_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("Acme", id="upper-case"),
    pytest.param("-acme", id="leading-dash"),
    pytest.param("ac_me", id="underscore"),
    pytest.param("ac me", id="space"),
    pytest.param("ac.me", id="dot"),
    pytest.param("acme/other", id="slash"),
    pytest.param("acmé", id="non-ascii"),
    pytest.param("a" * 64, id="64-chars"),
    pytest.param(
        "acme\n",
        id="trailing-newline",
    ),
]


@pytest.mark.parametrize("name", INVALID_TENANT_NAMES)
def test_invalid_tenant_names_are_refused(db: Database, name: str) -> None:
    with pytest.raises(InvalidRequest) as caught, db.platform_transaction() as session:
        repo.create_tenant(session, name, Tier.SHARED)
    assert caught.value.param == "name"


@pytest.mark.parametrize("name", ["a", "0", "a-b", "acme-2", "a" * 63])
def test_valid_tenant_names_are_accepted(db: Database, name: str) -> None:
    assert make_tenant(db, name).name == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param(".hidden", id="leading-dot"),
        pytest.param("gpt 4", id="space"),
        pytest.param("m" * 129, id="129-chars"),
        pytest.param(
            "gpt-4\n",
            id="trailing-newline",
        ),
    ],
)
def test_invalid_model_names_are_refused(db: Database, name: str) -> None:
    with pytest.raises(InvalidRequest), db.platform_transaction() as session:
        repo.add_model(session, name, None, [Endpoint.CHAT], UPSTREAM)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("a b", id="space"),
        pytest.param("a/b", id="slash"),
        pytest.param("-x", id="leading-dash"),
        pytest.param(
            "alice\n",
            id="trailing-newline",
        ),
    ],
)
def test_invalid_principal_names_are_refused(db: Database, name: str) -> None:
    with pytest.raises(InvalidRequest), db.platform_transaction() as session:
        repo.create_principal(session, None, name, PrincipalKind.USER, [Role.PLATFORM_AUDITOR])


# Tenant scoping ----------------------------------------------------------------------------


def test_list_keys_returns_only_the_tenants_own(db: Database) -> None:
    acme, globex = make_tenant(db, "acme"), make_tenant(db, "globex")
    acme_keys = {make_key(db, acme).key.id for _ in range(2)}
    globex_keys = {make_key(db, globex).key.id}
    platform_keys = {make_key(db, None, Role.PLATFORM_ADMIN).key.id}
    with db.platform_transaction() as session:
        assert {k.id for k in repo.list_keys(session, acme.id)} == acme_keys
        assert {k.id for k in repo.list_keys(session, globex.id)} == globex_keys
        assert {k.id for k in repo.list_keys(session, None)} == platform_keys


@pytest.mark.parametrize("caller", ["other-tenant", "platform-scope"])
def test_revoking_a_foreign_key_is_not_found(db: Database, caller: str) -> None:
    acme, globex = make_tenant(db, "acme"), make_tenant(db, "globex")
    victim = make_key(db, acme).key
    caller_id = globex.id if caller == "other-tenant" else None
    before = version(db)
    with pytest.raises(NotFound) as caught, db.platform_transaction() as session:
        repo.revoke_key(session, caller_id, victim.id)
    assert caught.value.message == f"key '{victim.id}' not found"
    with db.platform_transaction() as session:
        (still,) = repo.list_keys(session, acme.id)
    assert still.revoked_at is None and version(db) == before


def test_foreign_and_missing_keys_are_indistinguishable(db: Database) -> None:
    acme, globex = make_tenant(db, "acme"), make_tenant(db, "globex")
    victim = make_key(db, acme).key.id
    messages = []
    for key_id in (victim, "aaaaaaaaaaaa"):
        with pytest.raises(NotFound) as caught, db.platform_transaction() as session:
            repo.revoke_key(session, globex.id, key_id)
        messages.append(caught.value.message.replace(key_id, "<id>"))
    assert messages[0] == messages[1]


def test_list_principals_returns_only_the_tenants_own(db: Database) -> None:
    acme, globex = make_tenant(db, "acme"), make_tenant(db, "globex")
    with db.platform_transaction() as session:
        for tenant in (acme, globex):
            repo.create_principal(session, tenant.id, "alice", PrincipalKind.USER, [Role.END_USER])
        repo.create_principal(session, None, "root", PrincipalKind.USER, [Role.PLATFORM_ADMIN])
    with db.platform_transaction() as session:
        acme_principals = repo.list_principals(session, acme.id)
        platform = repo.list_principals(session, None)
    assert [(p.name, p.tenant_id) for p in acme_principals] == [("alice", acme.id)]
    assert [(p.name, p.tenant_id) for p in platform] == [("root", None)]


def test_same_principal_name_in_one_tenant_is_a_conflict(db: Database) -> None:
    acme = make_tenant(db, "acme")
    with db.platform_transaction() as session:
        repo.create_principal(session, acme.id, "alice", PrincipalKind.USER, [Role.END_USER])
    with pytest.raises(Conflict), db.platform_transaction() as session:
        repo.create_principal(session, acme.id, "alice", PrincipalKind.USER, [Role.END_USER])


def test_foreign_principal_is_not_found(db: Database) -> None:
    acme, globex = make_tenant(db, "acme"), make_tenant(db, "globex")
    with db.platform_transaction() as session:
        alice = repo.create_principal(
            session, acme.id, "alice", PrincipalKind.USER, [Role.END_USER]
        )
    with pytest.raises(NotFound), db.platform_transaction() as session:
        repo.get_principal(session, globex.id, "alice")
    with pytest.raises(NotFound), db.platform_transaction() as session:
        repo.create_key(session, globex.id, role=Role.END_USER, principal=alice)
    with db.platform_transaction() as session:
        assert repo.list_keys(session, globex.id) == []


def test_grants_apply_only_to_shared_models(db: Database) -> None:
    acme, globex = make_tenant(db, "acme"), make_tenant(db, "globex")
    with db.platform_transaction() as session:
        repo.add_model(session, "private-m", acme.id, [Endpoint.CHAT], UPSTREAM)
    with pytest.raises(NotFound), db.platform_transaction() as session:
        repo.grant_model(session, "private-m", globex.id)
    with db.platform_transaction() as session:
        (listing,) = repo.list_models(session)
    assert listing.granted_to == ()


def test_model_names_are_unique_per_scope(db: Database) -> None:
    acme, globex = make_tenant(db, "acme"), make_tenant(db, "globex")
    with db.platform_transaction() as session:
        for owner in (None, acme.id, globex.id):
            repo.add_model(session, "m", owner, [Endpoint.CHAT], UPSTREAM)
    with pytest.raises(Conflict), db.platform_transaction() as session:
        repo.add_model(session, "m", acme.id, [Endpoint.CHAT], UPSTREAM)


# Catalog version ---------------------------------------------------------------------------


def _changes(acme: Tenant, key: ApiKey) -> list[tuple[str, Callable[[Session], object]]]:
    chat = [Endpoint.CHAT]
    return [
        ("create_tenant", lambda s: repo.create_tenant(s, "globex", Tier.SHARED)),
        ("suspend", lambda s: repo.set_tenant_status(s, "acme", TenantStatus.SUSPENDED)),
        (
            "create_principal",
            lambda s: repo.create_principal(s, acme.id, "bob", PrincipalKind.USER, [Role.END_USER]),
        ),
        ("create_key", lambda s: repo.create_key(s, acme.id, role=Role.END_USER)),
        ("revoke_key", lambda s: repo.revoke_key(s, acme.id, key.id)),
        ("add_shared_model", lambda s: repo.add_model(s, "m", None, chat, UPSTREAM)),
        ("add_private_model", lambda s: repo.add_model(s, "p", acme.id, chat, UPSTREAM)),
        ("grant", lambda s: repo.grant_model(s, "m", acme.id)),
        ("revoke_grant", lambda s: repo.revoke_grant(s, "m", acme.id)),
    ]


def test_every_change_bumps_the_catalog_version(db: Database) -> None:
    acme = make_tenant(db, "acme")
    key = make_key(db, acme).key
    for name, change in _changes(acme, key):
        before = version(db)
        with db.platform_transaction() as session:
            change(session)
        assert version(db) > before, name


def test_no_op_changes_leave_the_version_alone(db: Database) -> None:
    acme = make_tenant(db, "acme")
    key = make_key(db, acme).key
    with db.platform_transaction() as session:
        repo.add_model(session, "m", None, [Endpoint.CHAT], UPSTREAM)
        repo.grant_model(session, "m", acme.id)
        repo.revoke_key(session, acme.id, key.id)
    before = version(db)
    with db.platform_transaction() as session:
        repo.grant_model(session, "m", acme.id)
        assert repo.revoke_key(session, acme.id, key.id).revoked_at is not None
    assert version(db) == before


def test_failed_change_does_not_bump_the_version(db: Database) -> None:
    make_tenant(db, "acme")
    before = version(db)
    with pytest.raises(Conflict), db.platform_transaction() as session:
        repo.create_tenant(session, "acme", Tier.SHARED)
    assert version(db) == before


# Secrets -----------------------------------------------------------------------------------


def test_created_key_repr_never_contains_the_secret(db: Database) -> None:
    created = make_key(db, make_tenant(db, "acme"))
    secret_part = created.secret.split("_", 2)[2]
    for text in (repr(created), str(created), f"{created}", repr([created])):
        assert secret_part not in text and created.key.id in text
    assert created.key.secret_hash.hex() not in repr(created.key)


def test_stored_key_keeps_only_the_hash(db: Database) -> None:
    created = make_key(db, make_tenant(db, "acme"))
    with db.platform_transaction() as session:
        (stored,) = repo.all_keys(session)
    assert created.secret.encode() not in stored.secret_hash and len(stored.secret_hash) == 32
