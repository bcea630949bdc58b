"""Planning worker sandboxes: what is wanted, what the host allows, what is reported."""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType

import pytest

from bulkhead.app import sandbox_policy
from bulkhead.domain import Tier
from bulkhead.errors import ConfigError
from bulkhead.runtime.sandbox import (
    TIER_LIMITS,
    Feature,
    Host,
    Limits,
    Sandbox,
    SandboxMode,
    SandboxPolicy,
)
from bulkhead.runtime.sandbox._sandbox import _Reach, rlimits
from bulkhead.settings import load

ROOT_HOST = Host(root=True, landlock_abi=6)
USER_HOST = Host(
    root=False,
    landlock_abi=6,
    missing=MappingProxyType(
        {
            f: "the gateway does not run as root"
            for f in (Feature.UID, Feature.NETNS, Feature.FS_VIEW)
        }
        | {Feature.CGROUP: "no cgroup v1 memory hierarchy"}
    ),
)


def test_off_plans_nothing_and_says_so() -> None:
    sandbox = Sandbox(SandboxPolicy(mode=SandboxMode.OFF))
    assert not sandbox.enabled and sandbox.host is None
    assert "off" in sandbox.describe()
    assert set(sandbox.unavailable()) == set(Feature)


def test_an_unprivileged_gateway_reports_what_it_cannot_give() -> None:
    sandbox = Sandbox(SandboxPolicy(), USER_HOST)
    line = sandbox.describe()
    assert "not available: uid (the gateway does not run as root)" in line
    assert "cgroup-memory (no cgroup v1 memory hierarchy)" in line
    assert sandbox.wanted() == {
        Feature.RLIMITS,
        Feature.LANDLOCK,
        Feature.SECCOMP,
        Feature.NO_NEW_PRIVS,
        Feature.NO_DUMP,
    }


def test_require_refuses_a_host_that_lacks_a_feature() -> None:
    with pytest.raises(ConfigError, match=r"require.*uid"):
        Sandbox(SandboxPolicy(mode=SandboxMode.REQUIRE), USER_HOST)


def test_features_turned_off_are_reported_as_such() -> None:
    sandbox = Sandbox(SandboxPolicy(disabled=frozenset({Feature.SECCOMP})), ROOT_HOST)
    assert sandbox.unavailable()[Feature.SECCOMP] == "turned off by configuration"
    assert Feature.SECCOMP not in sandbox.wanted()


def test_a_private_interpreter_without_mount_namespaces_keeps_the_gateways_uid(
    monkeypatch: pytest.MonkeyPatch, open_tmp: Path
) -> None:
    home = open_tmp / "root"
    prefix = home / ".pyenv" / "versions" / "3.11"
    prefix.mkdir(parents=True)
    os.chmod(home, 0o700)
    monkeypatch.setattr("bulkhead.runtime.sandbox._host.interpreter_paths", lambda: (str(prefix),))
    exposed = _Reach.of(mount_namespace=True)
    assert exposed.exposures[0].over == str(home) and not exposed.blocked_reason
    degraded = _Reach.of(mount_namespace=False)
    assert not degraded.exposures
    assert f"under {home}, which other users may not enter" in degraded.blocked_reason
    sandbox = Sandbox(SandboxPolicy(disabled=frozenset({Feature.FS_VIEW})), ROOT_HOST)
    assert "no mount namespace can expose them" in sandbox.unavailable()[Feature.UID]


def test_each_worker_gets_its_own_uid_directory_and_plan(open_tmp: Path) -> None:
    sandbox = Sandbox(SandboxPolicy(uid_base=920_000, uid_count=2, hidden=(open_tmp,)), ROOT_HOST)
    first = sandbox.confine(open_tmp, Tier.SHARED)
    second = sandbox.confine(open_tmp, Tier.DEDICATED, gpu=True)
    assert (first.uid, second.uid) == (920_000, 920_001)
    assert first.directory.stat().st_uid == 920_000
    assert oct(first.directory.stat().st_mode & 0o777) == "0o700"
    assert first.plan.write == (str(first.directory),)
    assert first.plan.hide == (str(open_tmp),)
    assert ("RLIMIT_CORE", 0, 0) in first.plan.rlimits
    assert "/sys" in second.plan.read and "/sys" not in first.plan.read
    assert first.env() == {"HOME": str(first.directory), "TMPDIR": str(first.directory)}
    argv = first.argv("some.module", ["--flag"])
    assert argv[1:5] == ["-I", "-B", "-m", "bulkhead.runtime.sandbox"]
    assert argv[-2:] == ["some.module", "--flag"]
    with pytest.raises(ConfigError, match="uid"):
        sandbox.confine(open_tmp, Tier.SHARED)
    sandbox.release(first)
    assert not first.directory.exists()
    assert sandbox.confine(open_tmp, Tier.SHARED).uid == 920_000


def test_limits_follow_the_tier() -> None:
    assert TIER_LIMITS[Tier.SHARED].memory_bytes < TIER_LIMITS[Tier.MIG].memory_bytes
    assert TIER_LIMITS[Tier.MIG].memory_bytes <= TIER_LIMITS[Tier.DEDICATED].memory_bytes
    limits = dict((name, (soft, hard)) for name, soft, hard in rlimits(Limits(1 << 30)))
    assert limits["RLIMIT_DATA"] == (2 << 30, 2 << 30)
    assert limits["RLIMIT_CORE"] == (0, 0)
    assert set(limits) == {
        "RLIMIT_DATA",
        "RLIMIT_CPU",
        "RLIMIT_NOFILE",
        "RLIMIT_NPROC",
        "RLIMIT_FSIZE",
        "RLIMIT_CORE",
    }


def test_settings_make_the_policy(tmp_path: Path) -> None:
    env = {
        "BULKHEAD_WORKER_SANDBOX": "require",
        "BULKHEAD_WORKER_UID_BASE": "700000",
        "BULKHEAD_WORKER_UID_COUNT": "10",
        "BULKHEAD_WORKER_MEMORY_MB": "512",
    }
    policy = sandbox_policy(load(data_dir=tmp_path / "data", env=env))
    assert policy.mode is SandboxMode.REQUIRE
    assert (policy.uid_base, policy.uid_count) == (700_000, 10)
    assert {lim.memory_bytes for lim in policy.limits.values()} == {512 << 20}
    assert policy.hidden == ((tmp_path / "data").resolve(),)
    with pytest.raises(ConfigError, match="BULKHEAD_WORKER_SANDBOX"):
        load(data_dir=tmp_path, env={"BULKHEAD_WORKER_SANDBOX": "maybe"})
    default = sandbox_policy(load(data_dir=tmp_path, env={}))
    assert default.mode is SandboxMode.ON and default.limits == TIER_LIMITS


def test_a_hidden_path_landlock_cannot_hide_is_warned_about() -> None:
    policy = SandboxPolicy(hidden=(Path("/usr/share/bulkhead-data"),))
    no_view = Host(root=True, landlock_abi=6, missing=MappingProxyType({Feature.FS_VIEW: "no"}))
    warning = "WARNING: /usr/share/bulkhead-data lies inside /usr"
    assert warning in Sandbox(policy, no_view).describe()
    assert "WARNING" not in Sandbox(policy, ROOT_HOST).describe()


def test_a_workers_directory_others_cannot_reach_keeps_the_gateways_uid(open_tmp: Path) -> None:
    closed = open_tmp / "closed"
    closed.mkdir(mode=0o700)
    sandbox = Sandbox(SandboxPolicy(), ROOT_HOST)
    confinement = sandbox.confine(closed, Tier.SHARED)
    assert confinement.uid is None and Feature.UID not in confinement.plan.features
    assert "closed to others" in confinement.missing[Feature.UID]
    sandbox.release(confinement)
