"""What this machine lets the gateway put in force, and which files a worker must read."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

from bulkhead.runtime.sandbox import _landlock
from bulkhead.runtime.sandbox._cgroup import CgroupParent, find_parent
from bulkhead.runtime.sandbox._profile import Feature

# What any Python process of ours reads besides its interpreter and packages.  /proc is
# safe to list: another process's memory, environment and descriptors stay behind the
# kernel's ptrace checks, which a different uid and a Landlock domain both fail.
SYSTEM_READ: Final = (
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/mime.types",
    "/proc",
    "/sys/devices/system/cpu",
)
SYSTEM_DEVICES: Final = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
# What a worker pinned to a GPU reads and opens besides.
GPU_READ: Final = ("/sys", "/proc/driver/nvidia")
GPU_DEVICE_GLOBS: Final = ("nvidia*", "nvidia-caps/*", "dri/*")


@dataclass(frozen=True, slots=True)
class Host:
    """What the gateway can put in force here, and why not the rest."""

    root: bool
    landlock_abi: int = 0
    cgroups: CgroupParent | None = None
    missing: Mapping[Feature, str] = field(default_factory=lambda: MappingProxyType({}))


def probe_host() -> Host:
    """Ask the kernel, without changing anything, which sandbox features it offers."""
    missing: dict[Feature, str] = {}
    root = os.geteuid() == 0
    if not root:
        for feature in (Feature.UID, Feature.NETNS, Feature.FS_VIEW):
            missing[feature] = "the gateway does not run as root"
    cgroups = None
    try:
        cgroups = find_parent()
    except OSError as exc:
        missing[Feature.CGROUP] = str(exc)
    abi = _landlock.abi_version()
    if abi < 1:
        missing[Feature.LANDLOCK] = "the kernel has no Landlock (or it is turned off)"
    reason = _seccomp_missing()
    if reason:
        missing[Feature.SECCOMP] = reason
    return Host(root, abi, cgroups, MappingProxyType(missing))


def _seccomp_missing() -> str:
    if "Seccomp_filters" not in Path("/proc/self/status").read_text():
        return "the kernel has no seccomp filters"
    try:
        import pyseccomp

        pyseccomp.get_api()
    except (ImportError, OSError, RuntimeError) as exc:
        return f"libseccomp cannot be loaded ({type(exc).__name__})"
    return ""


def interpreter_paths() -> tuple[str, ...]:
    """The directories this interpreter and its packages are read from, deduplicated."""
    candidates = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        *sys.path,
    ]
    real = {os.path.realpath(p) for p in candidates if p and os.path.exists(p)}
    return outermost(real)


def outermost(paths: Iterable[str]) -> tuple[str, ...]:
    """`paths` less those that lie inside another of them."""
    chosen: list[str] = []
    for path in sorted(set(paths)):
        if not any(_inside(path, outer) for outer in chosen):
            chosen.append(path)
    return tuple(chosen)


def _inside(path: str, outer: str) -> bool:
    return path == outer or path.startswith(outer.rstrip("/") + "/")


def inside_any(path: str, outers: Iterable[str]) -> str | None:
    """The first of `outers` that holds `path`, if any."""
    return next((outer for outer in outers if _inside(path, outer)), None)


def may_access(path: str, uid: int, bits: int) -> bool:
    """Whether `uid` (in group `uid`, no other groups) has `bits` (r=4 w=2 x=1) on `path`."""
    info = os.stat(path)
    if info.st_uid == uid:
        mode = info.st_mode >> 6
    elif info.st_gid == uid:
        mode = info.st_mode >> 3
    else:
        mode = info.st_mode
    return mode & bits == bits


def blocked_ancestor(path: str, uid: int) -> str | None:
    """The outermost directory above `path` that `uid` may not pass through, if any."""
    for parent in reversed(Path(path).parents):
        if not may_access(str(parent), uid, 1):
            return str(parent)
    return None


def readable(path: str, uid: int) -> bool:
    needed = 5 if stat.S_ISDIR(os.stat(path).st_mode) else 4
    return may_access(path, uid, needed)


def gpu_devices(dev: Path = Path("/dev")) -> tuple[str, ...]:
    found = (p for pattern in GPU_DEVICE_GLOBS for p in dev.glob(pattern) if not p.is_dir())
    return tuple(sorted(str(p) for p in found))
