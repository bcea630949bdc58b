"""What the worker sandbox should find on the machine the tests run on.

A feature this kernel or machine lacks makes the sandbox tests fail only where it
should have been there: the expectations come from the kernel's own configuration,
the cgroup mounts and whether the tests run as root, never from the sandbox code
under test.
"""

from __future__ import annotations

import gzip
import os
import platform
import re
import socket
import subprocess
from pathlib import Path

from bulkhead.runtime.sandbox import Confinement, Feature
from bulkhead.runtime.workers import worker_env
from bulkhead.testing.escape_probe import SECRET_NAME

ALWAYS = {Feature.RLIMITS, Feature.NO_NEW_PRIVS, Feature.NO_DUMP}


def kernel_config() -> str:
    """The running kernel's build configuration, or "" where it cannot be read."""
    config = Path("/proc/config.gz")
    if config.exists():
        return gzip.decompress(config.read_bytes()).decode(errors="replace")
    boot = Path(f"/boot/config-{platform.release()}")
    return boot.read_text(errors="replace") if boot.exists() else ""


def _landlock_expected(config: str) -> bool:
    if not config:
        major, minor = (int(x) for x in re.findall(r"\d+", platform.release())[:2])
        return (major, minor) >= (5, 13)
    lsm = re.search(r'^CONFIG_LSM="([^"]*)"', config, re.M)
    cmdline = Path("/proc/cmdline").read_text()
    enabled = "landlock" in (lsm.group(1) if lsm else "") or "landlock" in cmdline
    return "CONFIG_SECURITY_LANDLOCK=y" in config and enabled


def expected_features() -> set[Feature]:
    expected = set(ALWAYS)
    if os.geteuid() == 0:
        expected |= {Feature.UID, Feature.NETNS, Feature.FS_VIEW}
        if Path("/sys/fs/cgroup/memory/cgroup.procs").exists():
            expected.add(Feature.CGROUP)
    config = kernel_config()
    if "Seccomp_filters" in Path("/proc/self/status").read_text():
        expected.add(Feature.SECCOMP)
    if _landlock_expected(config):
        expected.add(Feature.LANDLOCK)
    return expected


def start(confinement: Confinement, module: str, *args: str) -> subprocess.Popen[bytes]:
    """Start `module` in `confinement` the way the supervisor starts a worker."""
    return subprocess.Popen(
        confinement.argv(module, list(args)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**worker_env(), **confinement.env()},
        cwd=confinement.directory,
        start_new_session=True,
    )


def sandbox_line(process: subprocess.Popen[bytes]) -> set[str]:
    """The features the process reported in force (its first line of output)."""
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    assert line.startswith("SANDBOX "), line
    return set(filter(None, line.split(" ", 1)[1].strip().split(",")))


def make_data_dir(parent: Path) -> Path:
    """A data dir as the gateway keeps it (0700, a 0600 secret inside)."""
    data = parent / "data"
    data.mkdir(mode=0o700)
    secret = data / SECRET_NAME
    secret.write_text("the master key")
    os.chmod(secret, 0o600)
    return data


def listen() -> tuple[socket.socket, int]:
    """A TCP listener on 127.0.0.1, standing in for the gateway's port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server, server.getsockname()[1]
