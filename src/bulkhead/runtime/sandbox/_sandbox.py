"""The supervisor's side: decide each worker's sandbox, prepare it, clean up after it.

`Sandbox` knows what the host allows (`Host`) and what the operator wants
(`SandboxPolicy`).  For each worker, `confine` makes a private directory owned by a
fresh uid, a memory cgroup and a `Plan`; the worker process applies the plan to itself
as it starts (`_enter`) and reports what is in force.  Whatever the policy wants but
the host cannot give is named, with its reason, in the start-up log and in each
worker's status, rather than silently left out.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Final

from bulkhead.domain import Tier
from bulkhead.errors import ConfigError
from bulkhead.runtime.sandbox import _host
from bulkhead.runtime.sandbox._cgroup import WorkerCgroup
from bulkhead.runtime.sandbox._host import Host, probe_host
from bulkhead.runtime.sandbox._plan import Exposure, Plan
from bulkhead.runtime.sandbox._profile import TIER_LIMITS, Feature, Limits, SandboxMode

log = logging.getLogger("bulkhead.sandbox")

ENTRY_MODULE: Final = "bulkhead.runtime.sandbox"
# -I: no PYTHON* variables, no user site, no current directory on sys.path (the worker's
# directory is writable by the worker); -B: no bytecode files written.
PYTHON_FLAGS: Final = ("-I", "-B")
# Worker uids own nothing outside their directory: "nobody" stands in for them in checks.
_PROBE_UID: Final = 65534


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """What the operator wants; `Sandbox` gives as much of it as the host allows."""

    mode: SandboxMode = SandboxMode.ON
    # Each worker gets the lowest free uid (and a gid of the same number) in this range.
    uid_base: int = 910_000
    uid_count: int = 1000
    limits: Mapping[Tier, Limits] = field(default_factory=lambda: TIER_LIMITS)
    # Never visible to a worker: the gateway's data dir.
    hidden: tuple[Path, ...] = ()
    disabled: frozenset[Feature] = frozenset()


def operator_policy(
    mode: str, *, uid_base: int, uid_count: int, memory_mb: int, data_dir: Path
) -> SandboxPolicy:
    """The operator's policy (BULKHEAD_WORKER_SANDBOX, _UID_BASE/_COUNT and _MEMORY_MB,
    read by `bulkhead.app`): a memory limit of 0 keeps each tier's; the data dir is
    always hidden."""
    limits = dict(TIER_LIMITS)
    if memory_mb:
        memory = memory_mb << 20
        limits = {tier: replace(lim, memory_bytes=memory) for tier, lim in limits.items()}
    return SandboxPolicy(
        mode=SandboxMode(mode),
        uid_base=uid_base,
        uid_count=uid_count,
        limits=MappingProxyType(limits),
        hidden=(data_dir,),
    )


@dataclass(slots=True)
class Confinement:
    """One worker's sandbox; it lasts across the worker's restarts."""

    plan: Plan
    directory: Path
    cgroup: WorkerCgroup | None
    # Wanted but not planned, with the reason.
    missing: Mapping[Feature, str] = field(default_factory=dict)

    @property
    def uid(self) -> int | None:
        return self.plan.uid

    def argv(self, module: str, args: Sequence[str]) -> list[str]:
        """The command that starts `module` inside this sandbox."""
        plan = self.plan.to_json()
        return [sys.executable, *PYTHON_FLAGS, "-m", ENTRY_MODULE, plan, module, *args]

    def env(self) -> dict[str, str]:
        """Variables to add to the scrubbed environment: home and temp in its own dir."""
        return {"HOME": str(self.directory), "TMPDIR": str(self.directory)}

    def oom_kills(self) -> int:
        return self.cgroup.oom_kills() if self.cgroup is not None else 0


class Sandbox:
    """Plans and prepares worker sandboxes within what this host allows."""

    def __init__(self, policy: SandboxPolicy | None = None, host: Host | None = None):
        self.policy = policy or SandboxPolicy()
        self.host = host if host is not None or not self.enabled else probe_host()
        self._uids: set[int] = set()
        self._reach = None
        if self.host is not None:
            views = Feature.FS_VIEW not in {*self.host.missing, *self.policy.disabled}
            self._reach = _Reach.of(mount_namespace=views)
        if self.policy.mode is SandboxMode.REQUIRE and self.unavailable():
            raise ConfigError(f"BULKHEAD_WORKER_SANDBOX=require, but {self.describe()}")

    @property
    def enabled(self) -> bool:
        return self.policy.mode is not SandboxMode.OFF

    def unavailable(self) -> dict[Feature, str]:
        """Every feature workers will go without, and why."""
        if self.host is None or self._reach is None:
            return {f: "the sandbox is off" for f in Feature}
        missing = dict(self.host.missing)
        missing.update({f: "turned off by configuration" for f in self.policy.disabled})
        if Feature.UID not in missing and self._reach.blocked_reason:
            missing[Feature.UID] = self._reach.blocked_reason
        return missing

    def wanted(self) -> frozenset[Feature]:
        return frozenset(Feature) - self.unavailable().keys()

    def describe(self) -> str:
        """One line for the start-up log: what is in force, and what is not and why."""
        if not self.enabled:
            return "worker sandbox: off (BULKHEAD_WORKER_SANDBOX=off)"
        missing = self.unavailable()
        text = f"worker sandbox: {self.policy.mode}; in force: {', '.join(sorted(self.wanted()))}"
        if missing:
            text += "; not available: " + "; ".join(f"{f} ({why})" for f, why in missing.items())
        return text + self._exposed_hidden(missing)

    def _exposed_hidden(self, missing: Mapping[Feature, str]) -> str:
        """A warning where Landlock alone cannot keep a hidden path out of sight."""
        if Feature.FS_VIEW not in missing or self._reach is None:
            return ""
        readable = [*_host.SYSTEM_READ, *self._reach.paths]
        exposed = [(p, _host.inside_any(str(p), readable)) for p in self.policy.hidden]
        warning = "; WARNING: {} lies inside {}, which workers may read"
        return "".join(warning.format(path, outer) for path, outer in exposed if outer)

    def confine(self, parent: Path, tier: Tier, *, gpu: bool = False) -> Confinement:
        """A private directory under `parent`, a uid, a cgroup and the plan for one worker."""
        wanted = set(self.wanted())
        missing = self.unavailable()
        blocked = _host.blocked_ancestor(str(parent / "worker"), _PROBE_UID)
        if Feature.UID in wanted and blocked is not None:
            # Its own directory must be reachable; the gateway's temp dir may not be.
            wanted.discard(Feature.UID)
            missing[Feature.UID] = f"the workers' directory is under {blocked}, closed to others"
            if self.policy.mode is SandboxMode.REQUIRE:
                raise ConfigError(f"BULKHEAD_WORKER_SANDBOX=require, but {missing[Feature.UID]}")
        uid = self._take_uid() if Feature.UID in wanted else None
        directory = parent / secrets.token_hex(8)
        directory.mkdir(mode=0o700)
        if uid is not None:
            os.chown(directory, uid, uid)
        limits = self.policy.limits[tier]
        cgroup = self._cgroup(directory.name, limits, wanted, missing)
        plan = self._plan(wanted, uid, cgroup, limits, directory, gpu)
        return Confinement(plan, directory, cgroup, MappingProxyType(missing))

    def release(self, confinement: Confinement) -> None:
        """Undo `confine` once the worker has exited for good."""
        if confinement.cgroup is not None:
            try:
                confinement.cgroup.remove()
            except OSError as exc:
                log.warning("a worker's cgroup %s stays behind: %s", confinement.cgroup.path, exc)
        self._uids.discard(confinement.uid or -1)
        shutil.rmtree(confinement.directory, ignore_errors=True)

    def _take_uid(self) -> int:
        for uid in range(self.policy.uid_base, self.policy.uid_base + self.policy.uid_count):
            if uid not in self._uids:
                self._uids.add(uid)
                return uid
        raise ConfigError("every worker uid is in use; raise BULKHEAD_WORKER_UID_COUNT")

    def _cgroup(
        self, name: str, limits: Limits, wanted: set[Feature], missing: dict[Feature, str]
    ) -> WorkerCgroup | None:
        if Feature.CGROUP not in wanted or self.host is None or self.host.cgroups is None:
            return None
        try:
            return self.host.cgroups.create(f"bulkhead-{name}", limits.memory_bytes)
        except OSError as exc:
            wanted.discard(Feature.CGROUP)
            missing[Feature.CGROUP] = f"the worker's cgroup cannot be made: {exc}"
            if self.policy.mode is SandboxMode.REQUIRE:
                raise ConfigError(f"BULKHEAD_WORKER_SANDBOX=require, but {exc}") from exc
            return None

    def _plan(
        self,
        wanted: set[Feature],
        uid: int | None,
        cgroup: WorkerCgroup | None,
        limits: Limits,
        directory: Path,
        gpu: bool,
    ) -> Plan:
        assert self.host is not None and self._reach is not None
        read = [*_host.SYSTEM_READ, *self._reach.paths]
        devices = list(_host.SYSTEM_DEVICES)
        if gpu:
            read += _host.GPU_READ
            devices += _host.gpu_devices()
        return Plan(
            features=frozenset(wanted),
            require=self.policy.mode is SandboxMode.REQUIRE,
            uid=uid,
            cgroup_procs=str(cgroup.procs) if cgroup is not None else None,
            rlimits=rlimits(limits),
            expose=self._reach.exposures if uid is not None else (),
            hide=tuple(str(p) for p in self.policy.hidden),
            read=tuple(read),
            write=(str(directory),),
            devices=tuple(devices),
            landlock_abi=self.host.landlock_abi,
        )


def rlimits(limits: Limits) -> tuple[tuple[str, int, int], ...]:
    """The rlimits for `limits`; the data segment backstops the cgroup at twice its size."""
    return (
        ("RLIMIT_DATA", 2 * limits.memory_bytes, 2 * limits.memory_bytes),
        # The soft limit sends SIGXCPU, which ends the worker; the supervisor restarts it.
        ("RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + 30),
        ("RLIMIT_NOFILE", limits.open_files, limits.open_files),
        ("RLIMIT_NPROC", limits.processes, limits.processes),
        ("RLIMIT_FSIZE", limits.file_bytes, limits.file_bytes),
        ("RLIMIT_CORE", 0, 0),
    )


@dataclass(frozen=True, slots=True)
class _Reach:
    """How a dropped uid reaches the interpreter's files: directly, or through mounts.

    Where the interpreter lives under a directory other users may not enter (a virtual
    environment under /root, mode 0700), the worker's mount namespace covers that
    directory with an empty tmpfs and binds back only the interpreter's own directories,
    read-only.  Without a mount namespace that cannot be done, and the worker keeps the
    gateway's uid: `blocked_reason` says why.
    """

    paths: tuple[str, ...]
    exposures: tuple[Exposure, ...]
    blocked_reason: str = ""

    @classmethod
    def of(cls, *, mount_namespace: bool, probe_uid: int = _PROBE_UID) -> _Reach:
        paths = _host.interpreter_paths()
        unreadable = [p for p in paths if not _host.readable(p, probe_uid)]
        if unreadable:
            return cls(paths, (), f"{unreadable[0]} is not readable by other users")
        over: dict[str, list[str]] = {}
        for path in paths:
            blocked = _host.blocked_ancestor(path, probe_uid)
            if blocked is not None:
                over.setdefault(blocked, []).append(path)
        exposures = tuple(Exposure(o, tuple(p)) for o, p in sorted(over.items()))
        if exposures and not mount_namespace:
            names = ", ".join(e.over for e in exposures)
            why = f"the interpreter's files are under {names}, which other users may not enter"
            return cls(paths, (), f"{why}, and no mount namespace can expose them")
        return cls(paths, exposures)
