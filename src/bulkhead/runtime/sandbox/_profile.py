"""What a worker's sandbox consists of, and the limits each isolation tier gets."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from bulkhead.domain import Tier

GIB: Final = 1 << 30


class Feature(enum.StrEnum):
    """One layer of the sandbox; status lists those actually in force per worker."""

    UID = "uid"  # its own unprivileged uid and gid, no supplementary groups
    RLIMITS = "rlimits"  # data size, CPU time, open files, processes, file size, no core
    CGROUP = "cgroup-memory"  # a memory cgroup of its own with a hard limit
    NETNS = "netns"  # a network namespace of its own: no interface but a down loopback
    FS_VIEW = "fs-view"  # a mount namespace hiding the data dir and the rest of /root
    LANDLOCK = "landlock"  # reads only what it needs, writes only its own directory
    SECCOMP = "seccomp"  # no internet sockets, ptrace, mount, exec, ...
    NO_NEW_PRIVS = "no-new-privs"  # nothing it runs can gain privileges
    NO_DUMP = "no-dump"  # not dumpable: no core, no /proc/<pid>/mem for its own uid


class SandboxMode(enum.StrEnum):
    """BULKHEAD_WORKER_SANDBOX: off, on (what this host allows, reporting the rest) or
    require (refuse to start a worker missing any feature)."""

    OFF = "off"
    ON = "on"
    REQUIRE = "require"


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one worker.

    `memory_bytes` is the cgroup's hard limit; the data-segment rlimit is set to twice
    that, as a backstop where no cgroup can be made (address-space limits would break
    CUDA, which reserves far more address space than it uses).  `cpu_seconds` is a
    recycling bound: past it the kernel stops the worker and the supervisor starts a
    fresh one.
    """

    memory_bytes: int
    cpu_seconds: int = 24 * 3600
    open_files: int = 1024
    processes: int = 512  # threads count here too
    file_bytes: int = 64 << 20


# Shared workers serve base models for many tenants; mig and dedicated tenants get
# workers of their own, sized for the larger models they bring.
TIER_LIMITS: Final[Mapping[Tier, Limits]] = MappingProxyType(
    {
        Tier.SHARED: Limits(memory_bytes=4 * GIB),
        Tier.MIG: Limits(memory_bytes=16 * GIB),
        Tier.DEDICATED: Limits(memory_bytes=32 * GIB),
    }
)
