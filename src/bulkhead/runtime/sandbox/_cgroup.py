"""Per-worker memory cgroups: a hard memory limit the kernel enforces by OOM-killing.

Each worker gets a child of the gateway's own memory cgroup, so that the gateway's
limit (if any) still bounds them all.  On cgroup v1 that is a directory under the
memory controller's hierarchy (``memory.limit_in_bytes``); on cgroup v2 it is a
directory under the gateway's cgroup, which must have the memory controller delegated
(``memory.max``).  The worker joins its cgroup itself, before it drops its privileges,
so no allocation of its escapes the limit; it cannot write the cgroup's files afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class CgroupParent:
    """Where worker cgroups are made: the gateway's own memory cgroup."""

    path: Path
    version: int

    def create(self, name: str, memory_bytes: int) -> WorkerCgroup:
        """A fresh cgroup `name` limited to `memory_bytes`, swap included."""
        path = self.path / name
        path.mkdir(mode=0o755)
        group = WorkerCgroup(path, self.version)
        try:
            group.limit(memory_bytes)
        except OSError:
            group.remove()
            raise
        return group


@dataclass(frozen=True, slots=True)
class WorkerCgroup:
    path: Path
    version: int

    @property
    def procs(self) -> Path:
        """Writing a pid here moves that process into the cgroup."""
        return self.path / "cgroup.procs"

    def limit(self, memory_bytes: int) -> None:
        if self.version == 1:
            (self.path / "memory.limit_in_bytes").write_text(str(memory_bytes))
            _write_if_present(self.path / "memory.memsw.limit_in_bytes", str(memory_bytes))
        else:
            (self.path / "memory.max").write_text(str(memory_bytes))
            _write_if_present(self.path / "memory.swap.max", "0")

    def oom_kills(self) -> int:
        """How often the kernel killed a process here for going over the limit."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            lines = (self.path / name).read_text().splitlines()
        except OSError:
            return 0
        counts = dict(line.split(maxsplit=1) for line in lines if " " in line)
        return int(counts.get("oom_kill", "0"))

    def kill_all(self) -> None:
        """SIGKILL whatever is left here, e.g. a child the worker forked and detached."""
        with contextlib.suppress(OSError):
            for pid in self.procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)

    def remove(self, wait_s: float = 5.0) -> None:
        """Delete the cgroup; it must be empty, so its processes are killed first.

        A killed process leaves its cgroup only once it has finished exiting, so the
        removal is retried for up to `wait_s` seconds.
        """
        deadline = time.monotonic() + wait_s
        while True:
            self.kill_all()
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.02)


def _write_if_present(path: Path, value: str) -> None:
    # memsw/swap files exist only where swap accounting is on.
    with contextlib.suppress(FileNotFoundError, PermissionError):
        path.write_text(value)


def find_parent(root: Path = CGROUP_ROOT, proc_cgroup: Path | None = None) -> CgroupParent:
    """The gateway's memory cgroup; raises OSError (with the reason) where none is usable."""
    own = _own_cgroups(proc_cgroup or Path("/proc/self/cgroup"))
    v1 = root / "memory"
    if "memory" in own and (v1 / "cgroup.procs").exists():
        return _writable(CgroupParent(v1 / own["memory"].lstrip("/"), 1))
    if "" in own and (root / "cgroup.controllers").exists():
        path = root / own[""].lstrip("/")
        if "memory" not in (path / "cgroup.subtree_control").read_text().split():
            raise OSError(f"the memory controller is not delegated to {path}")
        return _writable(CgroupParent(path, 2))
    raise OSError("no cgroup v1 memory hierarchy nor cgroup v2 with memory is mounted")


def _own_cgroups(proc_cgroup: Path) -> dict[str, str]:
    """Controller name (or "" for the v2 hierarchy) to this process's cgroup path."""
    own: dict[str, str] = {}
    for line in proc_cgroup.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            own[controller] = path
    return own


def _writable(parent: CgroupParent) -> CgroupParent:
    if not os.access(parent.path, os.W_OK):
        raise OSError(f"cannot create cgroups under {parent.path}")
    return parent
