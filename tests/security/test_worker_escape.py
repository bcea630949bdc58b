"""Escape attempts from inside a worker, started by the supervisor exactly as a model is.

The probe (`bulkhead.testing.escape_probe`) runs as the supervisor's worker module, in
the sandbox the gateway's own settings produce, next to an idle sibling worker, while
this test listens on a TCP port of 127.0.0.1 as the gateway does.  From inside, it
tries to open internet sockets, reach that port, read the data dir, read or trace its
sibling and the gateway through /proc and ptrace, write outside its directory, mount,
gain privileges and run a shell.  Every attempt must fail; writing its own scratch
directory must work.  `tests/unit/runtime/sandbox/test_enter.py` shows each layer alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.app import sandbox_policy
from bulkhead.runtime import WorkerSpec, WorkerSupervisor
from bulkhead.runtime.sandbox import Sandbox
from bulkhead.settings import load
from bulkhead.testing.escape_probe import MODULE
from tests.support.sandbox import expected_features, listen, make_data_dir

ATTEMPTS = (
    "inet_socket",
    "inet6_socket",
    "packet_socket",
    "netlink_socket",
    "connect_gateway_port",
    "list_data_dir",
    "read_data_dir",
    "read_sibling_mem",
    "read_sibling_environ",
    "read_gateway_environ",
    "ptrace_sibling",
    "vm_read_sibling",
    "signal_gateway",
    "write_outside_scratch",
    "write_tmp",
    "exec_shell",
    "mount",
    "become_root",
    "unshare_user_namespace",
)


@pytest.fixture(scope="module")
def escape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict]]:
    data = make_data_dir(tmp_path_factory.mktemp("gateway"))
    settings = load(data_dir=data, env={})
    server, port = listen()
    supervisor = WorkerSupervisor(sandbox=Sandbox(sandbox_policy(settings)), worker_module=MODULE)

    async def attack() -> tuple[dict[str, str], dict]:
        try:
            sibling = WorkerSpec(key="sibling", kind="demo-chat", model_name="idle")
            supervisor.sync([sibling])
            assert await supervisor.wait_ready(60), supervisor.status()
            attacker = WorkerSpec(
                key="attacker", kind="demo-chat", model_name=f"attack:{port}:{data}"
            )
            supervisor.sync([sibling, attacker])
            assert await supervisor.wait_ready(60), supervisor.status()
            socket_path = supervisor.target("attacker", 5).unix_socket
            assert socket_path is not None
            outcomes = json.loads((Path(socket_path).parent / "escape.json").read_text())
            status = next(s for s in supervisor.status() if s["deployment"] == "attacker")
            return outcomes, status
        finally:
            await supervisor.close()
            server.close()

    yield asyncio.run(attack())


def test_the_probe_ran_in_the_workers_sandbox(escape: tuple[dict[str, str], dict]) -> None:
    outcomes, status = escape
    assert set(status["sandbox"]) >= {str(f) for f in expected_features()}, status
    assert outcomes["write_scratch"] == "allowed", outcomes


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_escape_attempt_fails(escape: tuple[dict[str, str], dict], attempt: str) -> None:
    outcomes, _ = escape
    assert outcomes[attempt].startswith("refused"), (attempt, outcomes[attempt])


def test_every_attempt_was_made(escape: tuple[dict[str, str], dict]) -> None:
    outcomes, _ = escape
    assert set(outcomes) == {*ATTEMPTS, "write_scratch"}
