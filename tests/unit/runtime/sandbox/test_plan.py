"""The plan travels as JSON on the sandboxed process's command line."""

from __future__ import annotations

from bulkhead.runtime.sandbox import Feature
from bulkhead.runtime.sandbox._plan import Exposure, Plan


def test_a_plan_survives_its_json_form() -> None:
    plan = Plan(
        features=frozenset({Feature.UID, Feature.SECCOMP}),
        require=True,
        uid=910_001,
        cgroup_procs="/sys/fs/cgroup/memory/x/cgroup.procs",
        rlimits=(("RLIMIT_CORE", 0, 0), ("RLIMIT_NOFILE", 64, 64)),
        expose=(Exposure("/root", ("/root/.pyenv/versions/3.11.7",)),),
        hide=("/srv/data",),
        read=("/usr",),
        write=("/tmp/w",),
        devices=("/dev/null",),
        landlock_abi=6,
    )
    assert Plan.from_json(plan.to_json()) == plan


def test_an_empty_plan_is_valid() -> None:
    plan = Plan(features=frozenset())
    assert Plan.from_json(plan.to_json()) == plan
