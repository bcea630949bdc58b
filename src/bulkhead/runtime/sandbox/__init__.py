"""Worker sandboxes: own uid, rlimits, memory cgroup, no network, Landlock, seccomp.

The supervisor asks a `Sandbox` to `confine` each worker; the worker process starts
through ``python -m bulkhead.runtime.sandbox``, which applies the plan to itself and
reports what the kernel actually holds it to.  See `_sandbox` for the supervisor's
side and `_enter` for the worker's.
"""

from bulkhead.runtime.sandbox._cgroup import WorkerCgroup
from bulkhead.runtime.sandbox._host import Host, probe_host
from bulkhead.runtime.sandbox._profile import TIER_LIMITS, Feature, Limits, SandboxMode
from bulkhead.runtime.sandbox._sandbox import (
    Confinement,
    Sandbox,
    SandboxPolicy,
    operator_policy,
)

__all__ = [
    "TIER_LIMITS",
    "Confinement",
    "Feature",
    "Host",
    "Limits",
    "Sandbox",
    "SandboxMode",
    "SandboxPolicy",
    "WorkerCgroup",
    "operator_policy",
    "probe_host",
]
