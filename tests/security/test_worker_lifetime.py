"""Workers die with their gateway (issue 12, item 28).

A gateway killed with SIGKILL (or crashed by a native library) used to leave its
sandboxed workers serving, re-parented to init, with a tenant's decrypted weights in
memory.  Now the kernel kills them (PR_SET_PDEATHSIG, armed again after the sandbox
drops its uid), and a gateway starting on the same data dir reaps whatever a dead one
left behind, without touching the workers of a live replica or of another Bulkhead
on this machine (another `make run` may be running next to the tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.runtime.lineage import EXIT_ORPHANED, SUPERVISOR_ENV, WorkerLedger, start_time
from tests.support.gateway import http
from tests.support.postgres import free_port

BULKHEAD = str(Path(sys.executable).parent / "bulkhead")


def gone(pid: int) -> bool:
    return start_time(pid) is None


def wait_until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


class Gateway:
    """`bulkhead serve` in a process of its own, on a data dir made by `bulkhead init`."""

    def __init__(self, data_dir: Path, *, workers: bool):
        from bulkhead.app import initialize
        from bulkhead.settings import load

        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
            "BULKHEAD_DATA_DIR": str(data_dir),
            "BULKHEAD_PORT": str(self.port),
            "BULKHEAD_METRICS_PORT": "0",
            "BULKHEAD_START_WORKERS": "1" if workers else "0",
            "BULKHEAD_DEMO_CHAT_MODEL": "demo-chat",
        }
        self.url = f"http://127.0.0.1:{self.port}"
        if not (data_dir / "bulkhead.db").exists():
            settings = load(data_dir=data_dir, port=self.port, metrics_port=0, env=self.env)
            self.admin_key = initialize(settings, self.url).admin_key
        self.process = subprocess.Popen(
            [BULKHEAD, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
        try:
            return http("GET", self.url + "/healthz").status == 200
        except OSError:
            return False

    def workers(self) -> list[dict[str, object]]:
        listed = http("GET", self.url + "/admin/v1/workers", self.admin_key).body
        return list(listed["data"]) if isinstance(listed, dict) else []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


@pytest.mark.local
def test_workers_die_within_seconds_of_a_kill_9_and_a_restart_cleans_up(data_dir: Path) -> None:
    gateway = Gateway(data_dir, workers=True)
    pids: list[int] = []
    try:
        wait_until(gateway.healthy, 60, "the gateway did not start")
        wait_until(
            lambda: (w := gateway.workers()) and all(x["ready"] for x in w), 240, "no workers"
        )
        workers = gateway.workers()
        pids = [int(str(w["pid"])) for w in workers]
        assert pids and all(not gone(pid) for pid in pids)
        records = list((data_dir / "workers").glob("*.json"))
        assert len(records) == 1, records
        recorded = json.loads(records[0].read_text())
        left_behind = Path(recorded["workers_dir"])
        cgroups = [Path(w["cgroup"]) for w in recorded["workers"].values() if w["cgroup"]]
        assert left_behind.is_dir() and all(c.is_dir() for c in cgroups)
        assert sorted(w["pid"] for w in recorded["workers"].values()) == sorted(pids)

        gateway.process.kill()  # SIGKILL: no shutdown code runs
        gateway.process.wait()
        deadline = time.monotonic() + 5
        while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in pids if not gone(pid)] == [], "workers outlived their gateway"
    finally:
        gateway.stop()
        for pid in pids:  # never leave a worker behind, even when the test fails
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)

    # What the dead gateway could not clean up itself goes when the next one starts.
    restarted = Gateway(data_dir, workers=False)
    try:
        wait_until(restarted.healthy, 60, "the gateway did not restart")
        assert not left_behind.exists() and not any(c.exists() for c in cgroups)
        assert not records[0].exists()
    finally:
        restarted.stop()


def test_a_worker_whose_supervisor_is_already_gone_exits_at_once() -> None:
    """The parent died before the signal was armed: the worker notices and exits."""
    code = "from bulkhead.runtime.lineage import die_with_supervisor as d; d(); print('alive')"
    env = {**os.environ, SUPERVISOR_ENV: "1"}  # not this child's parent
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == EXIT_ORPHANED and "alive" not in result.stdout
    env[SUPERVISOR_ENV] = str(os.getpid())
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "alive" in result.stdout


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def _record(ledger: WorkerLedger, path: Path, supervisor: tuple[int, int], *pids: int) -> None:
    """A ledger file as the supervisor (pid, start) would have written it."""
    document = {
        "host": ledger.host,
        "boot": ledger.boot,
        "supervisor": {"pid": supervisor[0], "start": supervisor[1]},
        "workers_dir": "/nonexistent",
        "workers": {
            str(pid): {"pid": pid, "start": start_time(pid), "cgroup": None, "cgroup_version": 0}
            for pid in pids
        },
    }
    path.write_text(json.dumps(document))


def test_a_restarted_supervisor_reaps_only_the_orphans_of_its_own_data_dir(
    tmp_path: Path,
) -> None:
    own, other = tmp_path / "data" / "workers", tmp_path / "other" / "workers"
    own.mkdir(parents=True)
    other.mkdir(parents=True)
    orphan, replica_worker, foreign = _sleeper(), _sleeper(), _sleeper()
    try:
        finished = subprocess.run(["true"], check=True)
        assert finished.returncode == 0
        probe = WorkerLedger(own, tmp_path)
        me = (os.getpid(), start_time(os.getpid()) or 0)
        # A gateway that died (its pid no longer runs with that start time)...
        _record(probe, own / "dead.json", (me[0], me[1] + 1), orphan.pid)
        # ...a replica on the same data dir that still runs...
        _record(probe, own / "live.json", me, replica_worker.pid)
        # ...and another Bulkhead's dead gateway, whose data dir is not ours.
        _record(probe, other / "dead.json", (me[0], me[1] + 1), foreign.pid)

        assert WorkerLedger(own, tmp_path).reap_orphans() == 1
        orphan.wait(5)
        assert orphan.returncode == -signal.SIGKILL
        assert not (own / "dead.json").exists() and (own / "live.json").exists()
        assert replica_worker.poll() is None and foreign.poll() is None
    finally:
        for process in (orphan, replica_worker, foreign):
            process.kill()
            process.wait()
