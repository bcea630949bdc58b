"""Crash safety and several writers: acknowledged events survive kill -9; indices never gap.

Each trial runs a real process that appends events and reports what is
durable, kills it with SIGKILL at a random moment, and checks the database.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bulkhead.audit.bundle import verify_bundle
from bulkhead.audit.checkpoint import Signer, Verifier
from bulkhead.audit.export import build_bundle
from bulkhead.audit.keys import register
from bulkhead.audit.sequencer import Sequencer
from bulkhead.store import Database
from bulkhead.store.schema import AuditEntryRow

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "bulkhead/audit"


def driver(
    url: str, admin_url: str | None, data_dir: Path, count: int | None = None
) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.support.audit_driver", url, str(data_dir)]
    if count is not None:
        args.append(str(count))
    env = dict(os.environ)
    env.pop("BULKHEAD_DATABASE_ADMIN_URL", None)
    if admin_url is not None:
        env["BULKHEAD_DATABASE_ADMIN_URL"] = admin_url
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "READY"
    return process


def resources(url: str) -> list[tuple[int, str]]:
    import json

    db = Database(url)
    with db.platform_transaction() as session:
        rows = session.execute(
            select(AuditEntryRow.idx, AuditEntryRow.body).order_by(AuditEntryRow.idx)
        ).all()
    db.dispose()
    return [(int(idx), json.loads(body).get("resource", "")) for idx, body in rows]


def verify(url: str, data_dir: Path) -> None:
    """A fresh sequencer signs what survived; the export must verify end to end."""
    db = Database(url)
    signer = Signer.generate(ORIGIN)
    register(db, signer.verifier)
    Sequencer(db, signer, ORIGIN).checkpoint()
    bundle = build_bundle(db, ORIGIN)
    db.dispose()
    verify_bundle(bundle, [Verifier.from_vkey(v) for v in bundle["verifiers"]])


@pytest.mark.parametrize("trial", range(20))
def test_kill_9_loses_no_acknowledged_event(
    db_url: str, db_admin_url: str | None, tmp_path: Path, trial: int
) -> None:
    process = driver(db_url, db_admin_url, tmp_path)
    time.sleep(random.Random(trial).uniform(0.2, 0.7))
    os.kill(process.pid, signal.SIGKILL)
    out, _ = process.communicate(timeout=30)
    acked = max(
        (int(line.split()[1]) for line in out.splitlines() if line.startswith("ACK")), default=0
    )
    rows = resources(db_url)
    assert [idx for idx, _ in rows] == list(range(len(rows))), "leaf indices have a gap"
    assert len(rows) >= acked > 0
    assert [r for _, r in rows[:acked]] == [str(i) for i in range(acked)]
    verify(db_url, tmp_path)


def test_several_writers_share_one_gapless_log(pg_admin_url: str, tmp_path: Path) -> None:
    from bulkhead.store import upgrade
    from tests.support.postgres import app_url, create_database, sqlalchemy_url

    admin = sqlalchemy_url(create_database(pg_admin_url, "bulkhead_writers"))
    url = app_url(admin)
    db = Database(url)
    upgrade(db, admin)
    db.dispose()
    writers = [driver(url, admin, tmp_path / f"w{n}", count=3000) for n in range(3)]
    for process in writers:
        out, _ = process.communicate(timeout=120)
        assert out.rstrip().endswith("DONE")
    rows = resources(url)
    assert [idx for idx, _ in rows] == list(range(9000))
    assert sorted(r for _, r in rows) == sorted(str(i) for i in range(3000) for _ in range(3))
    verify(url, tmp_path)
