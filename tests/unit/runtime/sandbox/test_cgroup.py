"""Per-worker memory cgroups, on a fake cgroupfs and on this machine's real one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.sandbox import expected_features

from bulkhead.runtime.sandbox import Feature
from bulkhead.runtime.sandbox._cgroup import CgroupParent, find_parent


def _fake_v1(tmp_path: Path) -> Path:
    group = tmp_path / "memory" / "svc"
    group.mkdir(parents=True)
    (tmp_path / "memory" / "cgroup.procs").touch()
    (tmp_path / "self-cgroup").write_text("4:memory:/svc\n1:cpu:/\n0::/\n")
    return group


def test_v1_parent_is_our_own_memory_cgroup(tmp_path: Path) -> None:
    group = _fake_v1(tmp_path)
    parent = find_parent(tmp_path, tmp_path / "self-cgroup")
    assert parent == CgroupParent(group, 1)


def test_v2_needs_the_memory_controller_delegated(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    service = tmp_path / "svc"
    service.mkdir()
    (service / "cgroup.subtree_control").write_text("cpu\n")
    (tmp_path / "self-cgroup").write_text("0::/svc\n")
    with pytest.raises(OSError, match="not delegated"):
        find_parent(tmp_path, tmp_path / "self-cgroup")
    (service / "cgroup.subtree_control").write_text("cpu memory\n")
    assert find_parent(tmp_path, tmp_path / "self-cgroup") == CgroupParent(service, 2)


def test_no_cgroup_hierarchy_says_so(tmp_path: Path) -> None:
    (tmp_path / "self-cgroup").write_text("0::/\n")
    with pytest.raises(OSError, match="no cgroup"):
        find_parent(tmp_path, tmp_path / "self-cgroup")


@pytest.mark.parametrize(
    ("version", "limit_file", "events_file", "events"),
    [
        (1, "memory.limit_in_bytes", "memory.oom_control", "oom_kill_disable 0\noom_kill 3\n"),
        (2, "memory.max", "memory.events", "low 0\noom 4\noom_kill 3\n"),
    ],
)
def test_limit_and_oom_count_on_each_version(
    tmp_path: Path, version: int, limit_file: str, events_file: str, events: str
) -> None:
    group = CgroupParent(tmp_path, version).create("w1", 123 << 20)
    assert (tmp_path / "w1" / limit_file).read_text() == str(123 << 20)
    assert group.oom_kills() == 0  # no events file yet
    (tmp_path / "w1" / events_file).write_text(events)
    assert group.oom_kills() == 3


def test_a_real_cgroup_limits_holds_a_process_and_goes_away() -> None:
    if Feature.CGROUP not in expected_features():
        pytest.skip("this machine has no cgroup memory controller the tests may use")
    parent = find_parent()
    group = parent.create(f"bulkhead-test-{os.getpid()}", 64 << 20)
    try:
        assert (group.path / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        group.procs.write_text(str(child.pid))
        assert str(child.pid) in group.procs.read_text().split()
        group.remove()  # kills what is left inside first
        assert child.wait(timeout=10) == -9
        assert not group.path.exists()
    finally:
        group.remove()
