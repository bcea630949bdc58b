"""Migration 0018: platform deployments' env names become credentials; tenants' are dropped."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from bulkhead.store import Database, migrate, upgrade
from bulkhead.store.catalog import load_snapshot


def _to(url: str, revision: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option(
                "script_location", str(Path(migrate.__file__).parent / "migrations")
            )
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


ROWS = [
    "INSERT INTO tenants (id, name, tier, status, quotas, config, attributes, created_at,"
    " updated_at) VALUES ('ten_a', 'acme', 'shared', 'active', '{}', '{}', '{}', :now, :now)",
    "INSERT INTO models (id, scope, owner_tenant_id, name, endpoints, description, attributes,"
    " created_at) VALUES ('mdl_s', '*', NULL, 'shared', '[\"chat\"]', '', '{}', :now),"
    " ('mdl_p', 'ten_a', 'ten_a', 'private', '[\"chat\"]', '', '{}', :now)",
    "INSERT INTO deployments (id, model_id, kind, base_url, upstream_model, api_key_env, worker,"
    " timeout_s, options) VALUES"
    " ('dep_s', 'mdl_s', 'upstream', 'http://10.0.0.5/v1', 'm', 'VLLM_KEY', NULL, 60, '{}'),"
    " ('dep_p', 'mdl_p', 'upstream', 'http://10.0.0.6/v1', 'm', 'BULKHEAD_KMS_MASTER_KEY',"
    " NULL, 60, '{}')",
    "INSERT INTO model_versions (id, tenant_id, model_id, version, kind, base_url,"
    " upstream_model, api_key_env, timeout_s, created_at, retired_at) VALUES ('ver_1', 'ten_a',"
    " 'mdl_p', '1', 'upstream', 'http://attacker.example/v1', 'm', 'BULKHEAD_KMS_MASTER_KEY',"
    " 60, :now, NULL)",
]


def test_env_names_become_credentials_and_tenants_lose_theirs(
    db_url: str, db_admin_url: str | None
) -> None:
    owner = db_admin_url or db_url
    _to(owner, "0017")
    engine = sa.create_engine(owner)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT set_config('app.platform', 'on', true)"))
        for statement in ROWS:
            connection.execute(sa.text(statement), {"now": "2026-01-01 00:00:00+00:00"})
    engine.dispose()
    db = Database(db_url)
    try:
        upgrade(db, db_admin_url)
        with db.platform_transaction() as session:
            credentials = session.execute(
                sa.text("SELECT name, source, env_name FROM upstream_credentials ORDER BY name")
            ).all()
            deployments = dict(
                session.execute(sa.text("SELECT id, credential FROM deployments")).all()
            )
            versions = session.execute(sa.text("SELECT credential FROM model_versions")).all()
        snapshot = load_snapshot(
            db, env={"VLLM_KEY": "vllm-secret", "BULKHEAD_KMS_MASTER_KEY": "x"}
        )
    finally:
        db.dispose()
    assert [tuple(c) for c in credentials] == [
        ("BULKHEAD_KMS_MASTER_KEY", "env", "BULKHEAD_KMS_MASTER_KEY"),
        ("VLLM_KEY", "env", "VLLM_KEY"),
    ]
    assert deployments == {"dep_s": "VLLM_KEY", "dep_p": "BULKHEAD_KMS_MASTER_KEY"}
    assert [tuple(v) for v in versions] == [(None,)]
    # The platform's own variable was carried over for the operator to see, and is never read.
    assert dict(snapshot.upstreams.secrets) == {"VLLM_KEY": "vllm-secret"}
