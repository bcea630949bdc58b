"""The MIG profile catalog, pinned to the NVIDIA MIG User Guide's tables."""

from __future__ import annotations

import pytest

from bulkhead.errors import InvalidRequest
from bulkhead.runtime.gpu import GPU_MODELS, gpu_model, model_key_for

# MIG User Guide, "Supported MIG Profiles", GPU Instance Profiles on H100 (80GB):
# name -> (memory slices, SM slices, instances available), and the placements
# that `nvidia-smi mig -lgipp` lists for the same profile ids.
H100_80GB = {
    "1g.10gb": (1, 1, 7, (0, 1, 2, 3, 4, 5, 6)),
    "1g.10gb+me": (1, 1, 1, (0, 1, 2, 3, 4, 5, 6)),
    "1g.20gb": (2, 1, 4, (0, 2, 4, 6)),
    "2g.20gb": (2, 2, 3, (0, 2, 4)),
    "3g.40gb": (4, 3, 2, (0, 4)),
    "4g.40gb": (4, 4, 1, (0,)),
    "7g.80gb": (8, 7, 1, (0,)),
}
NAMES = {
    "a100-40gb": ["1g.5gb", "1g.5gb+me", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"],
    "a100-80gb": ["1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"],
    "h100-80gb": list(H100_80GB),
    "h100-94gb": ["1g.12gb", "1g.12gb+me", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"],
    "h200-141gb": [
        "1g.18gb",
        "1g.18gb+me",
        "1g.35gb",
        "2g.35gb",
        "3g.71gb",
        "4g.71gb",
        "7g.141gb",
    ],
}


def test_h100_80gb_matches_the_user_guide() -> None:
    h100 = gpu_model("h100-80gb")
    got = {
        p.name: (p.memory_slices, p.compute_slices, p.max_count, p.starts) for p in h100.profiles
    }
    assert got == H100_80GB
    assert (h100.memory_slices, h100.compute_slices) == (8, 7)


@pytest.mark.parametrize("key", sorted(NAMES))
def test_every_model_has_the_guides_profile_names_on_the_same_shapes(key: str) -> None:
    model = gpu_model(key)
    assert [p.name for p in model.profiles] == NAMES[key]
    shapes = [(p.memory_slices, p.compute_slices, p.max_count, p.starts) for p in model.profiles]
    assert shapes == list(H100_80GB.values())


@pytest.mark.parametrize("key", sorted(GPU_MODELS))
def test_every_start_keeps_the_instance_on_the_gpu(key: str) -> None:
    model = gpu_model(key)
    for p in model.profiles:
        assert p.starts == tuple(sorted(set(p.starts)))
        assert all(s + p.memory_slices <= model.memory_slices for s in p.starts)
        assert 1 <= p.compute_slices <= model.compute_slices
        # A name states its compute slices ("3g") and its memory ("40gb").
        assert p.name.startswith(f"{p.compute_slices}g.")


def test_gpu_model_keys_are_case_insensitive_and_unknown_keys_list_the_known() -> None:
    assert gpu_model(" H100-80GB ") is GPU_MODELS["h100-80gb"]
    with pytest.raises(InvalidRequest, match="known: a100-40gb, a100-80gb, h100-80gb") as caught:
        gpu_model("v100")
    assert caught.value.param == "gpu"


def test_unknown_profile_names_list_the_models_profiles() -> None:
    with pytest.raises(InvalidRequest) as caught:
        gpu_model("h100-80gb").profile("5g.50gb")
    assert "has no MIG profile '5g.50gb'; it has 1g.10gb, 1g.10gb+me," in caught.value.message


@pytest.mark.parametrize(
    ("name", "memory_mib", "key"),
    [
        ("NVIDIA A100-SXM4-40GB", 40960, "a100-40gb"),
        ("NVIDIA A100-PCIE-40GB", 40960, "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", 81920, "a100-80gb"),
        ("NVIDIA A100 80GB PCIe", 81920, "a100-80gb"),
        ("NVIDIA H100 80GB HBM3", 81559, "h100-80gb"),
        ("NVIDIA H100 PCIe", 81559, "h100-80gb"),
        ("NVIDIA H100 NVL", 95830, "h100-94gb"),
        ("NVIDIA H200", 143771, "h200-141gb"),
        ("NVIDIA H200 NVL", 143771, "h200-141gb"),
        ("NVIDIA GH200 480GB", 97871, None),
        ("NVIDIA H20", 97871, None),
        ("NVIDIA A10", 23028, None),
        ("NVIDIA GeForce RTX 4090", 24564, None),
    ],
)
def test_discovered_gpus_map_to_catalog_keys(name: str, memory_mib: int, key: str | None) -> None:
    assert model_key_for(name, memory_mib * 1024 * 1024) == key
