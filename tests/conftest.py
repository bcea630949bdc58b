"""Fixtures shared by the whole suite: every store-backed test runs on SQLite and PostgreSQL.

On PostgreSQL the gateway connects as a plain role (`db_url`), bound by
row-level security, and migrations run through the owner's URL
(`db_admin_url`), as they would in production.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from tests.support.gateway import GatewayThread, UpstreamThread
from tests.support.postgres import app_url, cluster, create_database, sqlalchemy_url
from tests.support.softhsm import softhsm

# No per-example wall-clock deadline: the suite runs on two workers beside other load, where a
# deadline measures the machine, not the code.  Speed has its own `serial` tests and bench/.
hypothesis_settings.register_profile("bulkhead", deadline=None)
hypothesis_settings.load_profile("bulkhead")

# SoftHSM2 reads its configuration once per process, so the token fixture is defined
# here, once: a module importing it too would make a second token the library never sees.
__all__ = ["softhsm"]

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with cluster() as url:
        yield url


def database_urls(backend: str, request: pytest.FixtureRequest) -> tuple[str | None, str | None]:
    """A fresh database's (application URL, admin URL); None, None means the SQLite default."""
    if backend == "sqlite":
        return None, None
    admin = create_database(
        request.getfixturevalue("pg_admin_url"), f"bulkhead_test_{next(_names)}"
    )
    return app_url(admin), admin


@pytest.fixture(params=BACKENDS)
def db_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """A fresh, empty database on each backend: the application's and the admin's URL."""
    url, admin = database_urls(request.param, request)
    if url is None or admin is None:
        return f"sqlite:///{tmp_path / 'bulkhead.db'}", None
    return sqlalchemy_url(url), sqlalchemy_url(admin)


@pytest.fixture
def db_url(db_urls: tuple[str, str | None]) -> str:
    """The application's URL (a role bound by row-level security on PostgreSQL)."""
    return db_urls[0]


@pytest.fixture
def db_admin_url(db_urls: tuple[str, str | None]) -> str | None:
    """The URL migrations run through: the owner's on PostgreSQL, None on SQLite."""
    return db_urls[1]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamThread]:
    thread = UpstreamThread(slow_s=1.5).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: UpstreamThread,
) -> Iterator[GatewayThread]:
    """A real gateway on 127.0.0.1, one per test module and backend.

    A module's `GATEWAY_ENV` adds settings: the modules whose IdPs serve their JWKS on
    127.0.0.1 set `LOOPBACK_IDP`, the operator's allowance to reach them.
    """
    tmp = tmp_path_factory.mktemp("gateway")
    url, admin = database_urls(request.param, request)
    env = getattr(request.module, "GATEWAY_ENV", None)
    gw = GatewayThread(
        tmp / "data", url, admin_url=admin, max_body_bytes=64 * 1024, env=env
    ).start()
    yield gw
    gw.stop()


@pytest.fixture
def unique() -> str:
    """A fresh lowercase name, for tenants and models that must not collide."""
    return f"t{next(_names)}"
