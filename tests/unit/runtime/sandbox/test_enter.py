"""The sandboxed process applies its plan and reports what the kernel holds it to.

Each layer is also run alone against the escape probe, so that each one is shown to
stop the attacks it is there for, not only the whole stack together.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.sandbox import (
    expected_features,
    listen,
    make_data_dir,
    sandbox_line,
    start,
)

from bulkhead.domain import Tier
from bulkhead.runtime.sandbox import Feature, Sandbox, SandboxMode, SandboxPolicy, probe_host
from bulkhead.runtime.sandbox._enter import EXIT_REFUSED
from bulkhead.runtime.sandbox._plan import Plan
from bulkhead.runtime.sandbox._sandbox import ENTRY_MODULE, PYTHON_FLAGS

PROBE = "bulkhead.testing.escape_probe"
ALL = frozenset(Feature)


def _needs(*features: Feature) -> None:
    missing = set(features) - expected_features()
    if missing:
        pytest.skip(f"this machine cannot offer {', '.join(sorted(missing))}")


def _sandbox(data: Path, only: frozenset[Feature] = ALL) -> Sandbox:
    policy = SandboxPolicy(hidden=(data,), disabled=ALL - only, uid_base=930_000)
    return Sandbox(policy)


@pytest.fixture
def data(open_tmp: Path) -> Path:
    return make_data_dir(open_tmp)


@pytest.fixture
def sibling(open_tmp: Path, data: Path) -> Iterator[int]:
    """A fully sandboxed process idling next to the attacker."""
    sandbox = _sandbox(data)
    confinement = sandbox.confine(open_tmp, Tier.SHARED)
    process = start(confinement, PROBE, "--idle")
    assert process.stdout is not None
    sandbox_line(process)
    assert process.stdout.readline() == b"IDLE\n"
    yield process.pid
    process.kill()
    process.wait()
    sandbox.release(confinement)


def _attack(open_tmp: Path, data: Path, sibling: int, only: frozenset[Feature]) -> dict[str, str]:
    server, port = listen()
    sandbox = _sandbox(data, only)
    confinement = sandbox.confine(open_tmp, Tier.SHARED)
    args = ["--attack", "--port", str(port), "--data", str(data)]
    args += ["--sibling", str(sibling), "--gateway", str(os.getpid())]
    process = start(confinement, PROBE, *args)
    try:
        assert sandbox_line(process) == set(only & sandbox.wanted())
        out, _ = process.communicate(timeout=60)
    finally:
        server.close()
        sandbox.release(confinement)
    outcomes: dict[str, str] = json.loads(out)
    assert outcomes["write_scratch"] == "allowed", outcomes
    return outcomes


def test_the_whole_stack_is_in_force() -> None:
    wanted = Sandbox(SandboxPolicy()).wanted()
    assert wanted >= expected_features(), expected_features() - wanted


def test_without_any_layer_the_probe_does_escape(open_tmp: Path, data: Path, sibling: int) -> None:
    """The control: the probe is able to see an escape when there is one."""
    outcomes = _attack(open_tmp, data, sibling, frozenset())
    for name in ("inet_socket", "connect_gateway_port", "read_data_dir", "exec_shell", "mount"):
        assert outcomes[name] == "allowed", (name, outcomes)


LAYERS: dict[str, tuple[frozenset[Feature], tuple[str, ...]]] = {
    "netns": (frozenset({Feature.NETNS}), ("connect_gateway_port",)),
    "seccomp": (
        frozenset({Feature.SECCOMP, Feature.NO_NEW_PRIVS}),
        (
            "inet_socket",
            "inet6_socket",
            "packet_socket",
            "netlink_socket",
            "connect_gateway_port",
            "ptrace_sibling",
            "vm_read_sibling",
            "exec_shell",
            "mount",
            "unshare_user_namespace",
        ),
    ),
    "landlock": (
        frozenset({Feature.LANDLOCK, Feature.NO_NEW_PRIVS}),
        (
            "list_data_dir",
            "read_data_dir",
            # Landlock guards another process's memory, not what /proc says about it
            # (environ, maps): those stay behind the uid.
            "read_sibling_mem",
            "ptrace_sibling",
            "write_outside_scratch",
            "write_tmp",
            "exec_shell",
        ),
    ),
    "fs-view": (frozenset({Feature.FS_VIEW}), ("list_data_dir", "read_data_dir")),
    "uid": (
        frozenset({Feature.UID, Feature.FS_VIEW}),
        (
            "read_sibling_mem",
            "read_sibling_environ",
            "read_gateway_environ",
            "ptrace_sibling",
            "vm_read_sibling",
            "signal_gateway",
            "write_outside_scratch",
            "mount",
            "become_root",
        ),
    ),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_alone_stops_its_attacks(
    open_tmp: Path, data: Path, sibling: int, layer: str
) -> None:
    only, stopped = LAYERS[layer]
    _needs(*only)
    outcomes = _attack(open_tmp, data, sibling, only)
    leaked = {name: outcomes[name] for name in stopped if outcomes[name] == "allowed"}
    assert not leaked, leaked


def test_newer_landlock_also_refuses_tcp_and_signals_out(
    open_tmp: Path, data: Path, sibling: int
) -> None:
    _needs(Feature.LANDLOCK)
    abi = probe_host().landlock_abi
    outcomes = _attack(open_tmp, data, sibling, frozenset({Feature.LANDLOCK, Feature.NO_NEW_PRIVS}))
    if abi >= 4:
        assert outcomes["connect_gateway_port"] != "allowed"
    if abi >= 6:
        assert outcomes["signal_gateway"] != "allowed"


def _run_plan(plan: Plan, module: str = "platform") -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, *PYTHON_FLAGS, "-m", ENTRY_MODULE, plan.to_json(), module]
    return subprocess.run(argv, capture_output=True, timeout=60)


def test_require_refuses_to_run_a_program_without_every_feature(open_tmp: Path) -> None:
    plan = Plan(
        features=frozenset({Feature.CGROUP, Feature.NO_NEW_PRIVS}),
        require=True,
        cgroup_procs=str(open_tmp / "no-such-cgroup" / "cgroup.procs"),
    )
    done = _run_plan(plan)
    assert done.returncode == EXIT_REFUSED
    assert b"Refusing to start" in done.stderr and b"cgroup-memory" in done.stderr
    assert not done.stdout  # the program never ran


def test_on_mode_reports_a_missing_feature_and_runs_anyway(open_tmp: Path) -> None:
    plan = Plan(
        features=frozenset({Feature.CGROUP, Feature.NO_NEW_PRIVS}),
        cgroup_procs=str(open_tmp / "no-such-cgroup" / "cgroup.procs"),
    )
    done = _run_plan(plan)
    assert done.returncode == 0
    first, program = done.stdout.decode().split("\n", 1)
    assert first == "SANDBOX no-new-privs"
    assert "Linux" in program
    assert b"cgroup-memory is not in force" in done.stderr


def test_a_uid_that_cannot_reach_the_interpreter_is_not_taken(open_tmp: Path) -> None:
    """Without its filesystem view, the worker keeps the gateway's uid rather than break."""
    _needs(Feature.UID, Feature.FS_VIEW)
    sandbox = Sandbox(SandboxPolicy(uid_base=930_100))
    confinement = sandbox.confine(open_tmp, Tier.SHARED)
    sandbox.release(confinement)
    plan = confinement.plan
    if not plan.expose:
        pytest.skip("the interpreter here is readable by every user: nothing to expose")
    broken = Plan(
        features=frozenset({Feature.UID, Feature.FS_VIEW}),
        uid=plan.uid,
        expose=tuple(e.__class__("/proc/no-such-dir", e.paths) for e in plan.expose),
    )
    done = _run_plan(broken)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[0] == "SANDBOX "
    assert b"uid is not in force: it needs fs-view" in done.stderr


def test_a_sigterm_still_stops_a_sandboxed_program(open_tmp: Path, data: Path) -> None:
    sandbox = _sandbox(data)
    confinement = sandbox.confine(open_tmp, Tier.SHARED)
    process = start(confinement, PROBE, "--idle")
    sandbox_line(process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == -signal.SIGTERM
    sandbox.release(confinement)


def test_off_runs_nothing_through_the_sandbox() -> None:
    assert not Sandbox(SandboxPolicy(mode=SandboxMode.OFF)).enabled
