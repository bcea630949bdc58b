"""Workers onto devices: each tier on its own kind of device, tenants never sharing one."""

from __future__ import annotations

import pytest

from bulkhead.domain import Tier
from bulkhead.runtime.gpu import AssignmentKind, Device, Want, place

GPU_A, GPU_B = "GPU-aaaaaaaa-0000", "GPU-bbbbbbbb-0000"
MIG_A, MIG_B = "MIG-aaaaaaaa-1111", "MIG-bbbbbbbb-2222"
HOST = (
    Device(GPU_A, False, mig_enabled=False),
    Device(GPU_B, False, mig_enabled=False),
    Device("GPU-cccccccc-0000", False, mig_enabled=True),  # in MIG mode: only its instances
    Device(MIG_A, True, profile="3g.40gb"),
    Device(MIG_B, True, profile="1g.10gb"),
)


def test_each_tier_gets_its_kind_of_device() -> None:
    placed = place(
        HOST,
        [
            Want("m1", "t-mig", Tier.MIG),
            Want("m2", "t-mig", Tier.MIG),  # the same tenant's second model: its own instance
            Want("d1", "t-ded", Tier.DEDICATED),
            Want("s1", None, Tier.SHARED),
            Want("s2", "t-shared", Tier.SHARED),
        ],
    )
    assert placed["m1"] is not None and placed["m1"].kind is AssignmentKind.MIG_INSTANCE
    assert placed["m1"] == placed["m2"]
    assert placed["d1"] is not None and placed["d1"].kind is AssignmentKind.WHOLE_GPU
    shared = [placed["s1"], placed["s2"]]
    assert all(a is not None and a.kind is AssignmentKind.SHARED_GPU for a in shared)
    used = {a.uuid for a in placed.values() if a is not None}
    assert "GPU-cccccccc-0000" not in used
    # The dedicated GPU is not also the shared one.
    assert placed["d1"].uuid not in {a.uuid for a in shared if a is not None}


def test_no_free_device_means_the_cpu_never_another_tenants() -> None:
    placed = place(
        HOST,
        [
            Want("a", "t1", Tier.MIG),
            Want("b", "t2", Tier.MIG),
            Want("c", "t3", Tier.MIG),  # two MIG instances, three mig tenants
        ],
    )
    assert sorted(a.uuid for a in placed.values() if a is not None) == [MIG_A, MIG_B]
    assert list(placed.values()).count(None) == 1


def test_shared_workers_split_the_leftover_gpus_memory() -> None:
    placed = place(HOST[:1], [Want(f"s{i}", None, Tier.SHARED) for i in range(4)])
    fractions = [a.memory_fraction for a in placed.values() if a is not None]
    assert fractions == pytest.approx([0.25] * 4)
    assert {a.env()["CUDA_VISIBLE_DEVICES"] for a in placed.values() if a} == {GPU_A}


def test_no_gpus_no_assignments() -> None:
    assert place((), [Want("s", None, Tier.SHARED), Want("d", "t", Tier.DEDICATED)]) == {
        "s": None,
        "d": None,
    }


def test_placement_is_stable() -> None:
    wants = [Want("x", "t1", Tier.DEDICATED), Want("y", "t2", Tier.DEDICATED)]
    assert place(HOST, wants) == place(HOST, list(reversed(wants)))
