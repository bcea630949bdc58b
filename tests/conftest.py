"""Fixtures shared by the whole suite: every store-backed test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import GatewayThread, UpstreamThread
from tests.support.postgres import cluster, create_database

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with cluster() as url:
        yield url


def database_url(backend: str, request: pytest.FixtureRequest, tmp: Path) -> str | None:
    """None means the embedded default (SQLite in the data dir)."""
    if backend == "sqlite":
        return None
    admin = request.getfixturevalue("pg_admin_url")
    return create_database(admin, f"bulkhead_test_{next(_names)}")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend, as a SQLAlchemy URL."""
    url = database_url(request.param, request, tmp_path)
    if url is None:
        return f"sqlite:///{tmp_path / 'bulkhead.db'}"
    return "postgresql+psycopg://" + url.split("://", 1)[1]


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
    """A real gateway on 127.0.0.1, one per test module and backend."""
    tmp = tmp_path_factory.mktemp("gateway")
    url = database_url(request.param, request, tmp)
    gw = GatewayThread(tmp / "data", url, max_body_bytes=64 * 1024).start()
    yield gw
    gw.stop()


@pytest.fixture
def unique() -> str:
    """A fresh lowercase name, for tenants and models that must not collide."""
    return f"t{next(_names)}"
