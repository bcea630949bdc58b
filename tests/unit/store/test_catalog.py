"""The data plane's snapshot: visibility rules, and changes made through another replica."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bulkhead.domain import DeploymentKind, Endpoint, Role, Tenant, Tier
from bulkhead.errors import NotFound
from bulkhead.store import Catalog, Database, repo


def spec(base_url: str) -> repo.DeploymentSpec:
    return repo.DeploymentSpec(DeploymentKind.UPSTREAM, base_url=base_url)


def tenants(db: Database, *names: str) -> list[Tenant]:
    with db.platform_transaction() as session:
        return [repo.create_tenant(session, n, Tier.SHARED) for n in names]


@pytest.fixture
def replica(db_url: str, db: Database) -> Iterator[Database]:
    """A second `Database` on the same store, as another gateway process would hold."""
    other = Database(db_url)
    yield other
    other.dispose()


def test_refresh_picks_up_a_change_made_through_another_replica(
    db: Database, replica: Database
) -> None:
    catalog = Catalog(db)
    catalog.reload()
    assert catalog.refresh_if_changed() is False
    (acme,) = tenants(replica, "acme")
    with replica.platform_transaction() as session:
        created = repo.create_key(session, acme.id, role=Role.END_USER)
    assert created.key.id not in catalog.snapshot.keys
    assert catalog.refresh_if_changed() is True
    assert catalog.snapshot.tenants[acme.id].name == "acme"
    assert catalog.snapshot.keys[created.key.id].tenant_id == acme.id
    assert catalog.refresh_if_changed() is False


@pytest.mark.parametrize("db_urls", ["sqlite"], indirect=True)
def test_an_idle_look_on_sqlite_opens_no_transaction_but_confirms(
    db: Database, replica: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's commit counter says nothing changed: the version is not read, the snapshot
    is confirmed fresh all the same; a commit through another replica is still seen."""
    now = [100.0]
    catalog = Catalog(db, clock=lambda: now[0])
    catalog.reload()
    assert catalog.refresh_if_changed() is False  # the first look reads the version
    opened: list[int] = []
    real = db.platform_transaction

    def counted() -> contextlib.AbstractContextManager[Session]:
        opened.append(1)
        return real()

    monkeypatch.setattr(db, "platform_transaction", counted)
    now[0] = 107.0
    assert catalog.refresh_if_changed() is False
    assert opened == [] and catalog.confirmed_at == 107.0
    (acme,) = tenants(replica, "acme")
    assert catalog.refresh_if_changed() is True
    assert opened and catalog.snapshot.tenants[acme.id].name == "acme"


def test_a_look_that_failed_is_looked_at_again(db: Database, replica: Database) -> None:
    catalog = Catalog(db)
    catalog.reload()
    assert catalog.refresh_if_changed() is False
    (acme,) = tenants(replica, "acme")
    real = db.platform_transaction

    def away() -> contextlib.AbstractContextManager[Session]:
        raise OperationalError("SELECT", {}, Exception("the database is away"))

    db.platform_transaction = away  # type: ignore[method-assign]
    with pytest.raises(OperationalError):
        catalog.refresh_if_changed()
    db.platform_transaction = real  # type: ignore[method-assign]
    assert catalog.refresh_if_changed() is True
    assert acme.id in catalog.snapshot.tenants


def test_revocation_through_another_replica_reaches_the_snapshot(
    db: Database, replica: Database
) -> None:
    (acme,) = tenants(db, "acme")
    with db.platform_transaction() as session:
        key_id = repo.create_key(session, acme.id, role=Role.END_USER).key.id
    catalog = Catalog(db)
    catalog.reload()
    with replica.platform_transaction() as session:
        repo.revoke_key(session, acme.id, key_id)
    assert catalog.refresh_if_changed() is True
    assert catalog.snapshot.keys[key_id].revoked_at is not None


def test_private_model_shadows_a_shared_one_only_for_its_owner(db: Database) -> None:
    acme, globex, initech = tenants(db, "acme", "globex", "initech")
    with db.platform_transaction() as session:
        repo.add_model(session, "m", None, [Endpoint.CHAT], spec("http://shared/v1"))
        repo.add_model(session, "m", acme.id, [Endpoint.CHAT], spec("http://acme/v1"))
        for tenant in (acme, globex):
            repo.grant_model(session, "m", tenant.id)
    snapshot = Catalog(db).reload()
    assert snapshot.models_for(acme.id)["m"].deployment.base_url == "http://acme/v1"
    assert snapshot.models_for(acme.id)["m"].model.owner_tenant_id == acme.id
    assert snapshot.models_for(globex.id)["m"].deployment.base_url == "http://shared/v1"
    assert "m" not in snapshot.models_for(initech.id)


def test_private_model_is_invisible_to_other_tenants(db: Database) -> None:
    acme, globex = tenants(db, "acme", "globex")
    with db.platform_transaction() as session:
        repo.add_model(session, "secret-m", acme.id, [Endpoint.CHAT], spec("http://acme/v1"))
    with pytest.raises(NotFound), db.platform_transaction() as session:
        repo.grant_model(session, "secret-m", globex.id)
    snapshot = Catalog(db).reload()
    assert set(snapshot.models_for(acme.id)) == {"secret-m"}
    assert dict(snapshot.models_for(globex.id)) == {}
    assert dict(snapshot.models_for("ten_unknown")) == {}


def test_shared_model_is_visible_only_where_granted(db: Database) -> None:
    acme, globex = tenants(db, "acme", "globex")
    with db.platform_transaction() as session:
        repo.add_model(session, "m", None, [Endpoint.CHAT], spec("http://shared/v1"))
    catalog = Catalog(db)
    assert "m" not in catalog.reload().models_for(acme.id)
    with db.platform_transaction() as session:
        repo.grant_model(session, "m", acme.id)
    assert catalog.refresh_if_changed()
    assert "m" in catalog.snapshot.models_for(acme.id)
    assert "m" not in catalog.snapshot.models_for(globex.id)
    with db.platform_transaction() as session:
        repo.revoke_grant(session, "m", acme.id)
    assert catalog.refresh_if_changed()
    assert "m" not in catalog.snapshot.models_for(acme.id)


def test_snapshot_is_read_only(db: Database) -> None:
    (acme,) = tenants(db, "acme")
    snapshot = Catalog(db).reload()
    with pytest.raises(TypeError):
        snapshot.tenants["ten_x"] = acme  # type: ignore[index]
    with pytest.raises(TypeError):
        snapshot.models_for(acme.id)["m"] = None  # type: ignore[index]


def test_a_version_keeps_its_models_safety_options_and_nothing_else(db: Database) -> None:
    from bulkhead.store import selfservice

    (acme,) = tenants(db, "acme")
    options = {
        "engine": "vllm",
        "mtls_peer_id": "spiffe://bulkhead.local/upstream/vllm",
        "max_in_flight": "4",
        "artifact": "not-for-versions",
    }
    base = repo.DeploymentSpec(
        DeploymentKind.UPSTREAM, base_url="https://vllm.internal/v1", options=options
    )
    version = repo.DeploymentSpec(DeploymentKind.UPSTREAM, base_url="https://acme.example/v1")
    with db.platform_transaction() as session:
        repo.add_model(session, "m", acme.id, [Endpoint.CHAT], base)
    with db.tenant_transaction(acme.id) as session:
        selfservice.publish_version(session, acme.id, "m", "1", version)
    snapshot = Catalog(db).reload()
    served = snapshot.models_for(acme.id)["m@1"].deployment
    assert served.base_url == "https://acme.example/v1" and served.chosen_by_tenant
    assert served.options == {k: v for k, v in options.items() if k != "artifact"}
    assert snapshot.models_for(acme.id)["m"].deployment == served


def test_a_poll_or_reload_confirms_the_snapshot_and_time_without_one_makes_it_stale(
    db: Database, replica: Database
) -> None:
    now = [0.0]
    catalog = Catalog(db, clock=lambda: now[0])
    catalog.reload()
    catalog.watch(1.0)
    now[0] = 1.5
    assert catalog.stale()
    assert catalog.refresh_if_changed() is False  # unchanged, and known to be so now
    assert not catalog.stale()
    now[0] = 3.0
    tenants(replica, "acme")
    assert catalog.stale()
    assert catalog.refresh_if_changed() is True
    assert not catalog.stale() and catalog.unconfirmed_s() == 0.0


def test_on_postgresql_a_change_notifies_its_new_version_on_commit_only(
    db_url: str, db: Database
) -> None:
    if db.dialect != "postgresql":
        return  # SQLite has no push; its replicas poll
    from bulkhead.store.listen import psycopg_connector

    listener = psycopg_connector(db_url)()
    try:
        listener.execute("LISTEN bulkhead_catalog")
        with db.platform_transaction() as session:
            repo.create_tenant(session, "acme", Tier.SHARED)
            version = repo.catalog_version(session)
            assert list(listener.notifies(timeout=0.2)) == []  # not before the commit
        heard = next(iter(listener.notifies(timeout=2))).payload
        assert heard == str(version)
    finally:
        listener.close()


def test_the_quick_look_answers_unchanged_only_when_nothing_was_committed(
    db: Database, replica: Database
) -> None:
    """`confirm_if_unchanged` (the event loop's look): never before a full look, never on
    PostgreSQL (no commit counter), and never across another process's commit."""
    now = [100.0]
    catalog = Catalog(db, clock=lambda: now[0])
    catalog.reload()
    assert catalog.confirm_if_unchanged() is False  # no look yet
    assert catalog.refresh_if_changed() is False
    now[0] = 105.0
    on_sqlite = db.dialect == "sqlite"
    assert catalog.confirm_if_unchanged() is on_sqlite
    assert catalog.confirmed_at == (105.0 if on_sqlite else 100.0)
    (acme,) = tenants(replica, "acme")
    assert catalog.confirm_if_unchanged() is False  # committed elsewhere: look the long way
    assert acme.id not in catalog.snapshot.tenants
    assert catalog.refresh_if_changed() is True
    assert catalog.confirm_if_unchanged() is on_sqlite


@pytest.mark.parametrize("db_urls", ["sqlite"], indirect=True)
def test_a_database_that_cannot_answer_at_once_sends_the_look_the_long_way(
    db: Database,
) -> None:
    """SQLite busy (or worse) is not waited for on the event loop: the quick look says
    `look`, and the full look, which may wait, decides."""
    catalog = Catalog(db)
    catalog.reload()
    assert catalog.refresh_if_changed() is False
    watch = catalog._commits
    assert watch is not None

    class Busy:
        def execute(self, sql: str) -> None:
            raise sqlite3.OperationalError("database is locked")

    real, watch._conn = watch._conn, Busy()  # type: ignore[assignment]
    try:
        assert catalog.confirm_if_unchanged() is False
        assert catalog.refresh_if_changed() is False  # the version read the long way
    finally:
        watch._conn = real
    assert catalog.refresh_if_changed() is False
    assert catalog.confirm_if_unchanged() is True
