"""The MIG planner: examples, its reasons for refusing, and properties against a reference."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.errors import InvalidRequest
from bulkhead.runtime.gpu import (
    GPU_MODELS,
    MigPlan,
    NoMigLayout,
    _planner,
    gpu_model,
    parse_profiles,
    plan,
)

from .reference import assert_valid_layout, feasible

H100 = gpu_model("h100-80gb")


def layout_of(found: MigPlan, gpu: int = 0) -> list[tuple[str, int]]:
    return [(i.profile, i.start) for i in found.layouts[gpu].instances]


# Examples -------------------------------------------------------------------------------


def test_the_issue_example_fits_one_h100() -> None:
    found = plan(H100, parse_profiles("3g.40gb,2g.20gb,1g.10gb"))
    assert len(found.layouts) == 1
    assert sorted(p for p, _ in layout_of(found)) == ["1g.10gb", "2g.20gb", "3g.40gb"]
    assert_valid_layout(H100, found.layouts[0].instances)
    assert (found.layouts[0].memory_used, found.layouts[0].compute_used) == (7, 6)


@pytest.mark.parametrize(
    ("request_", "layout"),
    [
        pytest.param("7g.80gb", [("7g.80gb", 0)], id="whole-gpu"),
        pytest.param("4g.40gb,3g.40gb", [("4g.40gb", 0), ("3g.40gb", 4)], id="4g-then-3g"),
        pytest.param("3g.40gb:2", [("3g.40gb", 0), ("3g.40gb", 4)], id="two-halves"),
        pytest.param(
            "1g.20gb:4", [("1g.20gb", 0), ("1g.20gb", 2), ("1g.20gb", 4), ("1g.20gb", 6)], id="4x"
        ),
        pytest.param("1g.10gb:7", [("1g.10gb", s) for s in range(7)], id="seven-1g"),
    ],
)
def test_layouts_that_have_only_one_shape(request_: str, layout: list[tuple[str, int]]) -> None:
    assert layout_of(plan(H100, parse_profiles(request_))) == layout


def test_the_eighth_slice_is_reached_only_by_profiles_that_may_start_there() -> None:
    # 1g.10gb may not start at 7, so six of them and a 1g.20gb need the 1g.20gb at 6.
    found = plan(H100, parse_profiles("1g.10gb:6,1g.20gb"))
    assert ("1g.20gb", 6) in layout_of(found)


def test_a100_40gb_names_are_its_own() -> None:
    a100 = gpu_model("a100-40gb")
    found = plan(a100, parse_profiles("3g.20gb,2g.10gb,1g.5gb:2"))
    assert_valid_layout(a100, found.layouts[0].instances)
    with pytest.raises(InvalidRequest, match=r"has no MIG profile '3g\.40gb'"):
        plan(a100, ["3g.40gb"])


def test_several_gpus_share_out_what_one_cannot_hold() -> None:
    found = plan(H100, parse_profiles("3g.40gb:3,2g.20gb:2"), gpus=2)
    assert len(found.layouts) == 2
    for layout in found.layouts:
        assert_valid_layout(H100, layout.instances)
    with pytest.raises(NoMigLayout):
        plan(H100, parse_profiles("3g.40gb:3,2g.20gb:2"))


# Reasons --------------------------------------------------------------------------------


def test_too_much_memory_is_named_with_the_numbers() -> None:
    with pytest.raises(NoMigLayout) as caught:
        plan(H100, parse_profiles("4g.40gb,3g.40gb,2g.20gb"))
    assert "needs 10 of 8 memory slices on one H100 80GB" in caught.value.message
    assert "4g.40gb = 4, 3g.40gb = 4, 2g.20gb = 2" in caught.value.message
    assert caught.value.code == "no_mig_layout"
    assert caught.value.param == "profiles"


def test_too_much_compute_is_named() -> None:
    with pytest.raises(NoMigLayout) as caught:
        plan(H100, parse_profiles("4g.40gb,2g.20gb,1g.10gb:2"))
    assert caught.value.reasons == (
        "It needs 8 of 7 compute slices on one H100 80GB "
        "(4g.40gb = 4, 2g.20gb = 2, 2 x 1g.10gb = 2).",
    )


def test_a_profile_over_its_count_is_named() -> None:
    with pytest.raises(NoMigLayout, match=r"2 x 1g.10gb\+me; the limit is 1 on one H100"):
        plan(H100, parse_profiles("1g.10gb+me:2"))


def test_a_split_that_no_gpu_can_take_names_the_instances_that_collide() -> None:
    # The totals fit two GPUs, but the 7g.80gb fills one and the other takes one +me only.
    with pytest.raises(NoMigLayout) as caught:
        plan(H100, parse_profiles("7g.80gb,1g.10gb+me:2,2g.20gb"), gpus=2)
    (reason,) = caught.value.reasons
    assert reason.startswith("7g.80gb and 2 x 1g.10gb+me fit the slice totals on 2 x H100 80GB")
    assert "2g.20gb" not in reason, "only the instances that collide are named"
    assert "1g.10gb+me starts at 0, 1, 2, 3, 4, 5 or 6, at most 1 per GPU" in reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "at least one", id="empty"),
        pytest.param(" , ,", "at least one", id="only-commas"),
        pytest.param("1g.10gb:x", "Bad count", id="count-not-a-number"),
        pytest.param("1g.10gb:0", "Bad count", id="count-zero"),
        pytest.param("1g.10gb:-1", "Bad count", id="count-negative"),
        pytest.param("1g.10gb:999", "Bad count", id="count-huge"),
    ],
)
def test_malformed_profile_lists_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_profiles(text)


def test_profile_lists_accept_counts_and_repeats() -> None:
    assert parse_profiles(" 3g.40gb , 1g.10gb:2,1g.10gb ") == ("3g.40gb",) + ("1g.10gb",) * 3


@pytest.mark.parametrize("gpus", [0, -1, 17])
def test_the_gpu_count_is_bounded(gpus: int) -> None:
    with pytest.raises(InvalidRequest, match="number of GPUs"):
        plan(H100, ["1g.10gb"], gpus=gpus)


def test_an_empty_request_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="at least one"):
        plan(H100, [])


# Properties against the reference ---------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn, max_gpus: int = 2) -> tuple[str, list[str], int]:
    key = draw(st.sampled_from(sorted(GPU_MODELS)))
    gpus = draw(st.integers(1, max_gpus))
    names = [p.name for p in GPU_MODELS[key].profiles]
    wanted = draw(st.lists(st.sampled_from(names), min_size=1, max_size=8 * gpus))
    return key, wanted, gpus


@settings(max_examples=300, deadline=None)
@given(requests(max_gpus=3))
def test_every_layout_obeys_the_rules_and_feasibility_matches_the_reference(
    request_: tuple[str, list[str], int],
) -> None:
    key, wanted, gpus = request_
    model = GPU_MODELS[key]
    try:
        found = plan(model, wanted, gpus=gpus)
    except NoMigLayout as exc:
        assert exc.reasons and all(r.endswith(".") for r in exc.reasons)
        assert not feasible(key, Counter(wanted), gpus), f"a layout exists for {wanted}"
        return
    assert feasible(key, Counter(wanted), gpus)
    assert len(found.layouts) == gpus
    placed = Counter(i.profile for layout in found.layouts for i in layout.instances)
    assert placed == Counter(wanted), "every requested instance is placed exactly once"
    for layout in found.layouts:
        assert_valid_layout(model, layout.instances)


@settings(max_examples=100, deadline=None)
@given(requests(max_gpus=1))
def test_adding_a_gpu_never_turns_a_layout_into_a_refusal(
    request_: tuple[str, list[str], int],
) -> None:
    key, wanted, _ = request_
    model = GPU_MODELS[key]
    try:
        plan(model, wanted)
    except NoMigLayout:
        return
    plan(model, wanted, gpus=2)


@pytest.mark.serial
def test_many_gpus_stay_fast() -> None:
    started = time.perf_counter()
    full = "3g.40gb:16,2g.20gb:16,1g.10gb+me:16,1g.10gb:16"
    found = plan(H100, parse_profiles(full), gpus=16)
    for layout in found.layouts:
        assert_valid_layout(H100, layout.instances)
        assert (layout.memory_used, layout.compute_used) == (8, 7)
    with pytest.raises(NoMigLayout, match="cannot be divided among the GPUs"):
        plan(H100, parse_profiles("7g.80gb:15,1g.10gb+me:2"), gpus=16)
    assert time.perf_counter() - started < 5


# Every slice is needed, yet five "+me" instances need five 1-slice partners and
# only three 1g.10gb exist: refuting that means trying a great many splits.
PARITY_TRAP = "7g.80gb:6,4g.40gb:4,3g.40gb:10,2g.20gb:4,1g.20gb:4,1g.10gb:3,1g.10gb+me:5"


def test_a_search_too_large_says_so_rather_than_claim_no_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_planner, "MAX_SEARCH_STEPS", 50)
    with pytest.raises(InvalidRequest) as caught:
        plan(H100, parse_profiles(PARITY_TRAP), gpus=16)
    assert not isinstance(caught.value, NoMigLayout)
    assert caught.value.code == "mig_search_too_large"
    assert "plan the GPUs in smaller groups" in caught.value.message


@pytest.mark.serial
def test_the_search_budget_bounds_the_time_of_a_hard_refusal() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidRequest):
        plan(H100, parse_profiles(PARITY_TRAP), gpus=16)
    assert time.perf_counter() - started < 30
