"""A training job's sandbox holds against escape attempts, as a worker's does.

The escape probe (`bulkhead.testing.escape_probe`) runs in two sandboxes made by the
fine-tuning runner exactly as it makes one per job (its own uid from the training range,
no network, the data dir hidden, seccomp, Landlock, rlimits, memory cgroup): one idles as
another tenant's job, the other tries every escape against it, the data dir, the gateway's
TCP port and the gateway process.  Each attempt must be refused.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.domain import Tier
from bulkhead.finetune.contract import RunLimits
from bulkhead.finetune.runner import RunnerConfig, SandboxRunner
from bulkhead.runtime.sandbox import Confinement, Sandbox, SandboxPolicy
from bulkhead.testing.escape_probe import MODULE
from tests.security.test_worker_escape import ATTEMPTS
from tests.support.sandbox import expected_features, listen, make_data_dir, sandbox_line, start

LIMITS = RunLimits(memory_bytes=1 << 30)


@pytest.fixture(scope="module")
def escape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], set[str]]]:
    data = make_data_dir(tmp_path_factory.mktemp("gateway"))
    runner = SandboxRunner(RunnerConfig(hidden=(data,)))
    server, port = listen()
    made: list[tuple[Sandbox, Confinement, int]] = []
    processes: list[subprocess.Popen[bytes]] = []

    def confined() -> Confinement:
        sandbox, uid = runner.sandbox_for(LIMITS)
        confinement = sandbox.confine(runner.directory, Tier.SHARED)
        made.append((sandbox, confinement, uid))
        return confinement

    try:
        idle = start(confined(), MODULE, "--idle")
        processes.append(idle)
        assert idle.stdout is not None
        sandbox_line(idle)
        assert idle.stdout.readline().strip() == b"IDLE"
        args = ["--attack", "--port", str(port), "--data", str(data)]
        args += ["--sibling", str(idle.pid), "--gateway", str(os.getpid())]
        attacker = start(confined(), MODULE, *args)
        processes.append(attacker)
        assert attacker.stdout is not None
        features = sandbox_line(attacker)
        outcomes = json.loads(attacker.stdout.readline())
        yield outcomes, features
    finally:
        for process in processes:
            process.kill()
            process.wait(5)
        for sandbox, confinement, uid in made:
            sandbox.release(confinement)
            runner.free_uid(uid)
        server.close()
        Path(runner.directory).rmdir()


def test_the_probe_ran_in_a_training_jobs_sandbox(escape: tuple[dict[str, str], set[str]]) -> None:
    outcomes, features = escape
    assert features == {str(f) for f in expected_features()}
    assert outcomes["write_scratch"] == "allowed", outcomes


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_escape_attempt_from_a_training_job_fails(
    escape: tuple[dict[str, str], set[str]], attempt: str
) -> None:
    outcomes, _ = escape
    assert outcomes[attempt].startswith("refused"), (attempt, outcomes[attempt])


def test_training_uids_are_apart_from_the_workers() -> None:
    policy = SandboxPolicy()  # the workers' default range
    workers = range(policy.uid_base, policy.uid_base + policy.uid_count)
    config = RunnerConfig()
    assert not set(workers) & set(range(config.uid_base, config.uid_base + config.uid_count))
