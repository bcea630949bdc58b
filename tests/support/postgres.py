"""A throwaway PostgreSQL 15 cluster for the tests, started in well under a second.

initdb refuses to run as root, so as root the cluster runs as the `postgres`
user.  Failing to start is an error, never a skip: CI must run the suite on
PostgreSQL.

As in production, the gateway connects as a plain login role (`APP_ROLE`:
no superuser, no BYPASSRLS, owning nothing), so row-level security binds it;
migrations run through the superuser URL, which grants that role its access.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("BULKHEAD_PG_BIN", "/usr/lib/postgresql/15/bin"))
APP_ROLE = "bulkhead_app"
_CREATE_APP_ROLE = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
      PASSWORD '{APP_ROLE}';
  END IF;
END $$
"""


_STARTED: dict[str, list[str]] = {}  # the superuser URL of a cluster started here: pg_ctl's args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def cluster(*, fsync: bool = False) -> Iterator[str]:
    """Yield a superuser URL of a fresh cluster; stop and delete it afterwards.

    Tests run without fsync for speed; benchmarks of durability pass `fsync=True`.
    """
    given = os.environ.get("BULKHEAD_TEST_PG_URL")
    if given:
        _create_app_role(given)
        yield given
        return
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL 15 is not installed at {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="bulkhead-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    run = lambda args: subprocess.run(_as_postgres(args), check=True, capture_output=True)  # noqa: E731
    try:
        run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        pg_ctl = [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-k {root} -h 127.0.0.1 -p {port} -c max_connections=200"
            + ("" if fsync else " -F -c fsync=off"),
        ]
        run([*pg_ctl, "start"])
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _STARTED[url] = pg_ctl
        _create_app_role(url)
        yield url
    finally:
        _STARTED.pop(f"postgresql://postgres@127.0.0.1:{port}/postgres", None)
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def stop(admin_url: str) -> None:
    """Stop a cluster `cluster` started (a fast shutdown: every session is cut off)."""
    pg_ctl = _STARTED[admin_url.rsplit("/", 1)[0] + "/postgres"]
    subprocess.run(_as_postgres([*pg_ctl, "-m", "fast", "stop"]), check=True, capture_output=True)


def start(admin_url: str) -> None:
    """Start a stopped cluster again, on its own port and data."""
    pg_ctl = _STARTED[admin_url.rsplit("/", 1)[0] + "/postgres"]
    subprocess.run(_as_postgres([*pg_ctl, "start"]), check=True, capture_output=True)


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def _create_app_role(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(_CREATE_APP_ROLE)


def app_url(admin_url: str) -> str:
    """The same database as `admin_url`, reached as the application's plain role."""
    scheme, rest = admin_url.split("://", 1)
    return f"{scheme}://{APP_ROLE}:{APP_ROLE}@{rest.rsplit('@', 1)[-1]}"


def sqlalchemy_url(url: str) -> str:
    """`url` with the psycopg 3 driver named, as SQLAlchemy needs it."""
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def restart(admin_url: str) -> None:
    """Restart the cluster behind `admin_url` (a superuser's), with the options it had.

    Every connection is dropped, as in a real restart; the port stays.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    data = Path(row[0])
    # The server's output goes to its log, as at start-up: a pipe it held would never close.
    args = ["-D", str(data), "-l", str(data.parent / "log"), "-m", "fast", "-w", "restart"]
    subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), *args]),
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
