"""The mig-parted config: it parses as YAML and as mig-parted's v1 spec, and says what was planned.

`assert_mig_parted_v1` restates the checks of mig-parted's `api/spec/v1/spec.go`
(`Spec.UnmarshalJSON`, `MigConfigSpec.UnmarshalJSON`) and the profile format
of `pkg/types/mig_profile.go`.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.errors import InvalidRequest
from bulkhead.runtime.gpu import (
    GPU_MODELS,
    NoMigLayout,
    gpu_model,
    mig_parted_config,
    parse_profiles,
    plan,
)

PROFILE = re.compile(r"^(\d+c\.)?\d+g\.\d+gb(\+me)?$")
ENTRY_FIELDS = {"device-filter", "devices", "mig-enabled", "mig-devices"}


def assert_mig_parted_v1(spec: Any) -> None:
    assert isinstance(spec, dict)
    assert set(spec) == {"version", "mig-configs"}, "unexpected or missing top-level field"
    assert spec["version"] == "v1"
    configs = spec["mig-configs"]
    assert isinstance(configs, dict) and configs, "at least one entry in 'mig-configs'"
    for entries in configs.values():
        assert isinstance(entries, list) and entries
        for entry in entries:
            assert_entry(entry)


def assert_entry(entry: Any) -> None:
    assert isinstance(entry, dict)
    assert set(entry) <= ENTRY_FIELDS
    assert {"devices", "mig-enabled"} <= set(entry)
    devices = entry["devices"]
    assert devices == "all" or (
        isinstance(devices, list) and all(type(d) is int and d >= 0 for d in devices)
    )
    assert type(entry["mig-enabled"]) is bool
    mig_devices = entry.get("mig-devices")
    if entry["mig-enabled"]:
        assert isinstance(mig_devices, dict), "'mig-devices' is required when enabled"
    else:
        assert not mig_devices
    for name, count in (mig_devices or {}).items():
        assert isinstance(name, str) and PROFILE.match(name), name
        assert type(count) is int and count >= 0


def parsed(text: str) -> dict[str, Any]:
    spec = yaml.safe_load(text)
    assert_mig_parted_v1(spec)
    assert isinstance(spec, dict)
    return spec


def test_the_issue_example_as_a_config() -> None:
    found = plan(gpu_model("h100-80gb"), parse_profiles("3g.40gb,2g.20gb,1g.10gb"))
    text = mig_parted_config(found)
    assert parsed(text) == {
        "version": "v1",
        "mig-configs": {
            "bulkhead": [
                {
                    "devices": [0],
                    "mig-enabled": True,
                    "mig-devices": {"1g.10gb": 1, "2g.20gb": 1, "3g.40gb": 1},
                }
            ]
        },
    }
    assert text == mig_parted_config(found), "the same plan always prints the same config"


def test_gpus_with_the_same_counts_share_an_entry_and_empty_gpus_keep_mig_on() -> None:
    found = plan(gpu_model("h100-80gb"), parse_profiles("3g.40gb:2,7g.80gb,4g.40gb"), gpus=4)
    entries = parsed(mig_parted_config(found, name="prod-a"))["mig-configs"]["prod-a"]
    devices = sorted(d for e in entries for d in e["devices"])
    assert devices == [0, 1, 2, 3]
    assert {"devices": [3], "mig-enabled": True, "mig-devices": {}} in entries


def test_devices_map_planned_gpus_to_real_indices() -> None:
    found = plan(gpu_model("a100-40gb"), parse_profiles("7g.40gb:2"), gpus=2)
    entries = parsed(mig_parted_config(found, devices=[4, 6]))["mig-configs"]["bulkhead"]
    assert entries == [{"devices": [4, 6], "mig-enabled": True, "mig-devices": {"7g.40gb": 1}}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"devices": [1]}, "2 distinct device indices", id="too-few"),
        pytest.param({"devices": [1, 1]}, "2 distinct device indices", id="repeated"),
        pytest.param({"devices": [0, -1]}, "never negative", id="negative"),
        pytest.param({"name": "Has Space"}, "config name", id="name-space"),
        pytest.param({"name": "x: y"}, "config name", id="name-yaml"),
        pytest.param({"name": ""}, "config name", id="name-empty"),
        pytest.param({"name": "-lead"}, "config name", id="name-dash"),
    ],
)
def test_bad_devices_and_names_are_refused(kwargs: dict[str, Any], message: str) -> None:
    found = plan(gpu_model("h100-80gb"), ["1g.10gb", "1g.10gb"], gpus=2)
    with pytest.raises(InvalidRequest, match=message):
        mig_parted_config(found, **kwargs)


@st.composite
def plans(draw: st.DrawFn) -> tuple[str, list[str], int]:
    key = draw(st.sampled_from(sorted(GPU_MODELS)))
    gpus = draw(st.integers(1, 4))
    names = [p.name for p in GPU_MODELS[key].profiles]
    return key, draw(st.lists(st.sampled_from(names), min_size=1, max_size=6 * gpus)), gpus


@settings(max_examples=200, deadline=None)
@given(plans())
def test_every_config_parses_as_v1_and_asks_for_exactly_what_was_planned(
    drawn: tuple[str, list[str], int],
) -> None:
    key, wanted, gpus = drawn
    try:
        found = plan(GPU_MODELS[key], wanted, gpus=gpus)
    except NoMigLayout:
        return
    entries = parsed(mig_parted_config(found))["mig-configs"]["bulkhead"]
    asked: Counter[str] = Counter()
    devices: list[int] = []
    for entry in entries:
        devices.extend(entry["devices"])
        for name, count in entry["mig-devices"].items():
            asked[name] += count * len(entry["devices"])
    assert sorted(devices) == list(range(gpus)), "every planned GPU once"
    assert asked == Counter(wanted)
