"""PostgreSQL row-level security: a tenant's transaction sees and writes only that tenant's rows.

These run on PostgreSQL alone (SQLite has no row-level security) and fail,
never skip, when it cannot start.  The application connects as the plain
role of `tests.support.postgres`; the superuser URL is used only to migrate
and to count what is really there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import ProgrammingError

from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import append_batch
from bulkhead.domain import DeploymentKind, Endpoint, PrincipalKind, Role, Tier
from bulkhead.errors import ConfigError, NotFound
from bulkhead.store import Database, repo, upgrade, usage
from bulkhead.store.schema import (
    ApiKeyRow,
    Base,
    DeploymentRow,
    FileRow,
    FineTuningEventRow,
    FineTuningJobRow,
    ModelGrantRow,
    ModelRow,
    PrincipalRow,
    TenantRow,
    UsageHourRow,
    utcnow,
)
from tests.support.postgres import app_url, create_database, sqlalchemy_url

# The audit log is the platform's own record (the sequencer hashes every
# entry); it and the tables without tenant data are deliberately left open.
# Access requests (PAM) are the platform's too: who asked for privileged access
# and who decided; `target_tenant_id` only labels them for the tenant's audit view.
PLATFORM_TABLES = frozenset(
    {
        "alembic_version",
        "catalog_version",
        "audit_entries",
        "audit_checkpoints",
        "audit_keys",
        "access_requests",
    }
)
# Table -> the column naming its tenant (deployments go through their model).
TENANT_TABLES = {
    "tenants": "id",
    "principals": "tenant_id",
    "api_keys": "tenant_id",
    "files": "tenant_id",
    "model_grants": "tenant_id",
    "models": "owner_tenant_id",
    "deployments": None,
    "usage_hours": "tenant_id",
    "fine_tuning_jobs": "tenant_id",
    "fine_tuning_job_events": "tenant_id",
}
SPEC = repo.DeploymentSpec(DeploymentKind.UPSTREAM, base_url="http://up.internal/v1")


@dataclass(frozen=True)
class World:
    db: Database
    admin: sa.Engine
    admin_url: str
    a: str
    b: str
    principal: dict[str, str]
    model: dict[str, str]
    shared_model: str


def _job(job_id: str, tenant_id: str) -> FineTuningJobRow:
    return FineTuningJobRow(
        id=job_id, tenant_id=tenant_id, model="m", training_file="file-x", hyper="{}",
        status="queued", created_at=utcnow(),
    )  # fmt: skip


def _job_event(event_id: str, tenant_id: str, job_id: str) -> FineTuningEventRow:
    return FineTuningEventRow(
        id=event_id, tenant_id=tenant_id, job_id=job_id, seq=1, kind="status", level="info",
        message="queued", step=0, created_at=utcnow(),
    )  # fmt: skip


def _populate(db: Database) -> tuple[str, str, dict[str, str], dict[str, str], str]:
    with db.platform_transaction() as s:
        shared, _ = repo.add_model(s, "shared-m", None, [Endpoint.CHAT], SPEC)
        platform_admin = repo.create_principal(
            s, None, "root", PrincipalKind.USER, [Role.PLATFORM_ADMIN]
        )
        repo.create_key(s, None, role=Role.PLATFORM_ADMIN, principal=platform_admin)
        principals, models, tenants = {}, {}, []
        for name in ("a", "b"):
            tenant = repo.create_tenant(s, f"tenant-{name}", Tier.SHARED)
            tenants.append(tenant.id)
            created = repo.create_key(s, tenant.id, role=Role.END_USER)
            principals[tenant.id] = created.key.principal_id
            model, _ = repo.add_model(s, f"private-{name}", tenant.id, [Endpoint.CHAT], SPEC)
            models[tenant.id] = model.id
            repo.grant_model(s, "shared-m", tenant.id)
            s.add(
                FileRow(
                    id=f"file-{name}",
                    tenant_id=tenant.id,
                    filename="f.txt",
                    purpose="assistants",
                    bytes=1,
                    created_at=utcnow(),
                )
            )
            s.add(_job(f"ftjob-{name}", tenant.id))
            s.flush()
            s.add(_job_event(f"ftevent-{name}", tenant.id, f"ftjob-{name}"))
    # A model call of each tenant, counted by the audit writer (`store.usage`).
    calls = [
        AuditEvent(action="v1:chat", outcome="success", status=200, model="m", tenant_id=t)
        for t in tenants
    ]
    append_batch(db, calls, on_batch=usage.record)
    return tenants[0], tenants[1], principals, models, shared.id


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    admin_url = sqlalchemy_url(create_database(pg_admin_url, "bulkhead_rls"))
    db = Database(app_url(admin_url))
    upgrade(db, admin_url)
    a, b, principals, models, shared = _populate(db)
    admin = sa.create_engine(admin_url)
    yield World(db, admin, admin_url, a, b, principals, models, shared)
    admin.dispose()
    db.dispose()


def rls_tables(world: World) -> dict[str, tuple[bool, bool]]:
    """Every ordinary table in the schema -> (row security enabled, forced)."""
    query = sa.text(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
    )
    with world.admin.connect() as connection:
        return {
            r.relname: (r.relrowsecurity, r.relforcerowsecurity) for r in connection.execute(query)
        }


def count(session: Any, table: str, where: str = "true", **params: str) -> int:
    return int(
        session.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}"), params).scalar()
    )


# The guard: no table holding tenant data goes without forced row-level security ---------------


def test_every_table_with_a_tenant_column_has_forced_row_level_security(world: World) -> None:
    query = sa.text(
        "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name IN ('tenant_id', 'owner_tenant_id')"
    )
    with world.admin.connect() as connection:
        with_tenant = {r.table_name for r in connection.execute(query)}
    security = rls_tables(world)
    unprotected = sorted(t for t in with_tenant - {"audit_entries"} if security[t] != (True, True))
    assert unprotected == [], f"tables with tenant data but no ENABLE+FORCE RLS: {unprotected}"


def test_every_table_is_either_protected_or_a_known_platform_table(world: World) -> None:
    open_tables = sorted(t for t, flags in rls_tables(world).items() if flags != (True, True))
    assert set(open_tables) <= PLATFORM_TABLES, (
        "a new table must get row-level security (see migration 0004) or, if it holds no "
        f"tenant data, be listed in PLATFORM_TABLES: {sorted(set(open_tables) - PLATFORM_TABLES)}"
    )
    assert set(TENANT_TABLES) <= set(rls_tables(world)) - PLATFORM_TABLES


def test_every_protected_table_has_a_policy_for_reads_and_writes(world: World) -> None:
    query = sa.text(
        "SELECT tablename, qual, with_check FROM pg_policies WHERE schemaname = 'public' "
        "AND cmd = 'ALL' AND permissive = 'PERMISSIVE'"
    )
    with world.admin.connect() as connection:
        policies = {r.tablename: (r.qual, r.with_check) for r in connection.execute(query)}
    protected = {t for t, flags in rls_tables(world).items() if flags == (True, True)}
    for table in protected:
        qual, check = policies[table]
        assert qual and check, table


def test_schema_models_every_protected_table(world: World) -> None:
    # A table the models do not know could not be guarded by the tests below either.
    assert set(TENANT_TABLES) <= set(Base.metadata.tables)


# The application's role -------------------------------------------------------------------------


def test_the_application_role_is_plain_and_owns_no_table(world: World) -> None:
    with world.db.engine.connect() as connection:
        privileged = connection.execute(
            sa.text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        owned = connection.execute(
            sa.text("SELECT count(*) FROM pg_tables WHERE tableowner = current_user")
        ).scalar()
    assert tuple(privileged) == (False, False)
    assert owned == 0


def test_a_superuser_url_is_refused_at_start(world: World) -> None:
    with pytest.raises(ConfigError) as caught:
        Database(world.admin_url)
    assert "superuser or BYPASSRLS" in caught.value.message
    assert "\n" not in caught.value.message


def test_a_bypassrls_role_is_refused_at_start(world: World, pg_admin_url: str) -> None:
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bulkhead_bypass') "
            "THEN CREATE ROLE bulkhead_bypass LOGIN BYPASSRLS PASSWORD 'x'; END IF; END $$"
        )
    url = sa.make_url(world.admin_url).set(username="bulkhead_bypass", password="x")
    with pytest.raises(ConfigError):
        Database(url.render_as_string(hide_password=False))


def test_the_application_role_cannot_switch_row_level_security_off(world: World) -> None:
    with pytest.raises(ProgrammingError), world.db.platform_transaction() as session:
        session.execute(sa.text("ALTER TABLE api_keys NO FORCE ROW LEVEL SECURITY"))


# Reads ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", sorted(TENANT_TABLES))
def test_a_plain_transaction_sees_no_tenant_rows(world: World, table: str) -> None:
    with world.db.transaction() as session:
        assert count(session, table) == 0
    with world.admin.connect() as connection:
        assert count(connection, table) > 0


def test_a_plain_transaction_sees_nothing_of_any_protected_table(world: World) -> None:
    protected = [t for t, flags in rls_tables(world).items() if flags == (True, True)]
    with world.db.transaction() as session:
        assert {t: count(session, t) for t in protected} == dict.fromkeys(protected, 0)


def _owned(world: World, table: str, tenant: str) -> tuple[str, dict[str, str]]:
    """A WHERE clause matching `tenant`'s rows of `table`, and its parameters."""
    column = TENANT_TABLES[table]
    if column is None:
        return "model_id = :model", {"model": world.model[tenant]}
    return f"{column} = :tenant", {"tenant": tenant}


@pytest.mark.parametrize("table", sorted(TENANT_TABLES))
def test_a_tenant_transaction_sees_its_own_rows_and_never_another_tenants(
    world: World, table: str
) -> None:
    for me, other in ((world.a, world.b), (world.b, world.a)):
        mine, mine_params = _owned(world, table, me)
        theirs, their_params = _owned(world, table, other)
        with world.admin.connect() as connection:
            assert (
                count(connection, table, theirs, **their_params) > 0
            )  # There is something to see.
            expected = count(connection, table, mine, **mine_params)
        with world.db.tenant_transaction(me) as session:
            assert count(session, table, theirs, **their_params) == 0
            assert count(session, table, mine, **mine_params) == expected > 0
            assert count(session, table) == expected  # Nothing else: no platform or shared rows.


def test_every_table_with_a_tenant_id_shows_a_tenant_only_its_own_rows(world: World) -> None:
    # Generic, so it covers tables added after this test was written.
    query = sa.text(
        "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name = 'tenant_id'"
    )
    with world.admin.connect() as connection:
        tables = sorted({r.table_name for r in connection.execute(query)} - PLATFORM_TABLES)
    with world.db.tenant_transaction(world.a) as session:
        for table in tables:
            assert count(session, table, "tenant_id IS DISTINCT FROM :t", t=world.a) == 0, table


@pytest.mark.parametrize("table", sorted(TENANT_TABLES))
def test_a_platform_transaction_sees_every_row(world: World, table: str) -> None:
    with world.admin.connect() as connection:
        total = count(connection, table)
    with world.db.platform_transaction() as session:
        assert count(session, table) == total > 0


def test_the_repository_in_a_tenant_transaction_finds_no_other_tenants_key(world: World) -> None:
    with world.db.platform_transaction() as session:
        b_key = repo.list_keys(session, world.b)[0].id
    with world.db.tenant_transaction(world.a) as session:
        assert repo.list_keys(session, world.a) and repo.list_keys(session, None) == []
        with pytest.raises(NotFound):
            repo.key_tenant(session, b_key)


# Writes -----------------------------------------------------------------------------------------


def _foreign_rows(world: World) -> dict[str, Callable[[], Any]]:
    """For each table, a row that belongs to tenant B (or, for a tenant, is another tenant)."""
    b, now = world.b, utcnow()
    return {
        "tenants": lambda: TenantRow(
            id="ten_intruder", name="intruder", tier="shared", status="active", quotas={},
            created_at=now, updated_at=now,
        ),
        "principals": lambda: PrincipalRow(
            id="prn_intruder", scope=b, tenant_id=b, name="intruder", kind="user",
            roles=["end_user"], created_at=now,
        ),
        "api_keys": lambda: ApiKeyRow(
            id="key_intruder", tenant_id=b, principal_id=world.principal[b], role="end_user",
            secret_hash=b"\0" * 32, models=None, name="", created_at=now,
        ),
        "files": lambda: FileRow(
            id="file-intruder", tenant_id=b, filename="x", purpose="assistants", bytes=1,
            created_at=now,
        ),
        "model_grants": lambda: ModelGrantRow(
            model_id=world.model[world.a], tenant_id=b, created_at=now
        ),
        "models": lambda: ModelRow(
            id="mdl_intruder", scope=b, owner_tenant_id=b, name="intruder", endpoints=["chat"],
            description="", created_at=now,
        ),
        "deployments": lambda: DeploymentRow(
            id="dep_intruder", model_id=world.model[b], kind="upstream", base_url="http://x/v1",
            upstream_model="x", timeout_s=1.0, options={},
        ),
        "usage_hours": lambda: UsageHourRow(
            tenant_id=b, hour=0, model="m", key_id="", reason="", requests=1, successes=1,
            errors=0, refusals=0, prompt_tokens=0, completion_tokens=0, latency_ms_sum=0.0,
            latency_ms_max=0.0, lat_100=1, lat_250=0, lat_500=0, lat_1000=0, lat_2500=0,
            lat_5000=0, lat_10000=0, lat_inf=0,
        ),
        "fine_tuning_jobs": lambda: _job("ftjob-intruder", b),
        "fine_tuning_job_events": lambda: _job_event("ftevent-intruder", b, "ftjob-a"),
    }  # fmt: skip


@pytest.mark.parametrize("table", sorted(TENANT_TABLES))
def test_a_tenant_cannot_insert_a_row_of_another_tenant(world: World, table: str) -> None:
    row = _foreign_rows(world)[table]()
    with pytest.raises(ProgrammingError) as caught, world.db.tenant_transaction(world.a) as s:
        s.add(row)
        s.flush()
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege)
    assert "row-level security" in str(caught.value.orig)


def test_a_tenant_cannot_hand_its_row_to_another_tenant(world: World) -> None:
    with pytest.raises(ProgrammingError), world.db.tenant_transaction(world.a) as session:
        session.execute(
            sa.update(FileRow).where(FileRow.tenant_id == world.a).values(tenant_id=world.b)
        )
    with world.admin.connect() as connection:
        assert count(connection, "files", "tenant_id = :t", t=world.a) == 1


def test_a_tenant_cannot_change_or_delete_another_tenants_rows(world: World) -> None:
    with world.db.tenant_transaction(world.a) as session:
        session.execute(
            sa.update(PrincipalRow).where(PrincipalRow.tenant_id == world.b).values(name="owned")
        )
        session.execute(sa.delete(FileRow).where(FileRow.tenant_id == world.b))
    with world.admin.connect() as connection:
        assert count(connection, "files", "tenant_id = :t", t=world.b) == 1
        assert count(connection, "principals", "name = 'owned'") == 0


def test_a_tenant_writes_its_own_rows(world: World) -> None:
    with world.db.tenant_transaction(world.a) as session:
        created = repo.create_key(session, world.a, role=Role.END_USER, name="own")
    with world.db.tenant_transaction(world.a) as session:
        assert created.key.id in {k.id for k in repo.list_keys(session, world.a)}
        repo.revoke_key(session, world.a, created.key.id)


def test_a_plain_transaction_cannot_write_tenant_rows(world: World) -> None:
    with pytest.raises(ProgrammingError), world.db.transaction() as session:
        session.add(
            PrincipalRow(
                id="prn_nobody", scope=world.a, tenant_id=world.a, name="nobody", kind="user",
                roles=[], created_at=utcnow(),
            )
        )  # fmt: skip
        session.flush()


def test_platform_rows_are_visible_only_to_the_platform(world: World) -> None:
    with world.db.tenant_transaction(world.a) as session:
        assert count(session, "principals", "tenant_id IS NULL") == 0
        assert count(session, "api_keys", "tenant_id IS NULL") == 0
        assert count(session, "models", "owner_tenant_id IS NULL") == 0
    with world.db.platform_transaction() as session:
        assert count(session, "principals", "tenant_id IS NULL") >= 1
        assert count(session, "api_keys", "tenant_id IS NULL") >= 1
        assert count(session, "models", "owner_tenant_id IS NULL") >= 1


# Sign-in (migration 0007) -----------------------------------------------------------------------


def test_sign_in_tables_have_forced_row_level_security(world: World) -> None:
    security = rls_tables(world)
    for table in ("identity_providers", "local_credentials", "sign_in_sessions"):
        assert security[table] == (True, True), table


def test_a_tenant_sees_only_its_own_sign_in_sessions(world: World) -> None:
    from bulkhead.identity.sessions import SessionKey, SessionKeys
    from bulkhead.store import signin

    keys = SessionKeys([SessionKey.generate(1, utcnow())])
    with world.db.platform_transaction() as s:
        ids = {}
        for tenant in (world.a, world.b):
            principal = repo.principal_of(s.get(PrincipalRow, world.principal[tenant]))
            created = signin.create_session(
                s, principal, Role.END_USER, keys=keys, mfa=False, ttl_s=60
            )
            ids[tenant] = created.signed_in.id
    with world.db.tenant_transaction(world.a) as s:
        assert signin.load_session(s, ids[world.a]) is not None
        assert signin.load_session(s, ids[world.b]) is None


def test_session_keys_are_the_platforms_alone(world: World) -> None:
    from bulkhead.store.schema import SessionKeyRow

    assert rls_tables(world)["session_keys"] == (True, True)
    with world.db.platform_transaction() as s:
        s.add(SessionKeyRow(id="v77", version=77, sealed=b"sealed", created_at=utcnow()))
    with world.db.tenant_transaction(world.a) as s:
        assert count(s, "session_keys") == 0
    with pytest.raises(ProgrammingError), world.db.tenant_transaction(world.a) as s:
        s.add(SessionKeyRow(id="v78", version=78, sealed=b"sealed", created_at=utcnow()))
        s.flush()
    with world.db.platform_transaction() as s:
        assert count(s, "session_keys", "version = 77") == 1
        s.execute(sa.text("DELETE FROM session_keys WHERE version = 77"))


# Upstream credentials and allowlists (migration 0018) -------------------------------------------


def test_upstream_tables_show_a_tenant_only_its_own_grants_and_allowlist(world: World) -> None:
    from bulkhead.store import upstreams
    from bulkhead.store.schema import TenantEgressRow, UpstreamCredentialGrantRow

    with world.db.platform_transaction() as s:
        upstreams.create_credential(
            s, "rls-cred", credential_id="upc_rls", env=None, sealed=b"sealed-bytes"
        )
        for tenant, host in ((world.a, "a.example.com"), (world.b, "b.example.com")):
            upstreams.allow_credential(s, "rls-cred", tenant)
            upstreams.set_allowlist(s, tenant, [host])
    with world.db.tenant_transaction(world.a) as s:
        # The credentials themselves (sealed secrets included) are the platform's alone.
        assert count(s, "upstream_credentials") == 0
        assert count(s, "upstream_credential_grants") == 1
        assert upstreams.allowed_credentials(s, world.a) == ["rls-cred"]
        assert upstreams.allowlist(s, world.a) == ("a.example.com",)
        assert upstreams.allowlist(s, world.b) == ()
        # Reading is all: an update of its own allowlist touches nothing.
        s.execute(sa.update(TenantEgressRow).values(entries=["0.0.0.0/1"]))
    with world.db.platform_transaction() as s:
        assert upstreams.allowlist(s, world.a) == ("a.example.com",)
    for row in (
        UpstreamCredentialGrantRow(credential="rls-cred", tenant_id=world.a, created_at=utcnow()),
        TenantEgressRow(tenant_id=world.a, entries=["10.0.0.0/8"], updated_at=utcnow()),
    ):
        with pytest.raises(ProgrammingError), world.db.tenant_transaction(world.a) as s:
            s.execute(sa.delete(type(row)))
            s.add(row)
            s.flush()
