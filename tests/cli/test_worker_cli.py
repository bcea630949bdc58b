"""`bulkhead worker list`: each local worker with its tenant, device, state and sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.cli.worker import COLUMNS
from tests.cli.test_cli import as_admin, bulkhead, clean_env
from tests.support.gateway import GatewayThread
from tests.support.sandbox import expected_features

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    gw = GatewayThread(tmp_path_factory.mktemp("workers") / "data", None, workers=True).start()
    deadline = time.monotonic() + 180
    while not (gw.app.workers.status() and all(w["ready"] for w in gw.app.workers.status())):
        assert time.monotonic() < deadline, gw.app.workers.status()
        time.sleep(0.2)
    yield gw
    gw.stop()


def test_worker_list_shows_the_sandbox_in_force(served: GatewayThread, tmp_path: Path) -> None:
    result = as_admin(served, tmp_path, "worker", "list", "--json")
    assert result.returncode == 0, result.stderr
    workers = {w["kind"]: w for w in json.loads(result.stdout)}
    assert set(workers) == {"demo-chat", "minilm-embed"}
    for worker in workers.values():
        assert worker["state"] == "ready" and isinstance(worker["pid"], int)
        assert set(worker["sandbox"]) >= {str(f) for f in expected_features()}, worker
        assert {"tenant", "device", "restarts", "sandbox_missing", "last_exit"} <= set(worker)


def test_worker_list_prints_a_table(served: GatewayThread, tmp_path: Path) -> None:
    args = ("--server", served.url, "--key", served.admin_key, "worker", "list")
    result = bulkhead(*args, cwd=tmp_path, env=clean_env(COLUMNS="300"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (header,) = [n for n, line in enumerate(lines) if line.split() == list(COLUMNS)]
    rows = [line for line in lines[header + 1 :] if line.strip()]
    assert len(rows) == 2 and all("ready" in row and "seccomp" in row for row in rows), rows
