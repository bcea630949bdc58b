"""The fine-tuning contract: hyper-parameter bounds per tier and the chat JSONL validator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bulkhead.domain import Tier
from bulkhead.errors import InvalidRequest
from bulkhead.finetune.contract import (
    HYPER_BOUNDS,
    Hyper,
    Outcome,
    TrainInput,
    check_hyper,
    parse_examples,
)


def line(messages: Any) -> bytes:
    return json.dumps({"messages": messages}).encode()


GOOD = line([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])


def parse(raw: bytes, **kwargs: Any) -> list[dict[str, Any]]:
    return parse_examples(
        raw, max_examples=kwargs.pop("max_examples", 100), max_bytes=1 << 20, **kwargs
    )


# --- hyper-parameters ---------------------------------------------------------------------------


def test_every_tier_has_bounds_that_hold_the_defaults() -> None:
    assert set(HYPER_BOUNDS) == set(Tier)
    for tier in Tier:
        assert check_hyper(tier, {}) == Hyper()


def test_auto_and_missing_values_take_the_defaults() -> None:
    hyper = check_hyper(Tier.SHARED, {"epochs": "auto", "batch_size": None, "lora_rank": 4})
    assert hyper == Hyper(lora_rank=4)


def test_values_inside_the_bounds_are_kept() -> None:
    values = {
        "epochs": 2,
        "learning_rate_multiplier": 3,
        "batch_size": 8,
        "lora_rank": 16,
        "max_seq_len": 512,
        "seed": 42,
    }
    hyper = check_hyper(Tier.SHARED, values)
    assert hyper == Hyper(2, 3.0, 8, 16, 512, 42)
    assert isinstance(hyper.learning_rate_multiplier, float)


@pytest.mark.parametrize(
    ("tier", "name", "value"),
    [
        (Tier.SHARED, "epochs", 0),
        (Tier.SHARED, "epochs", 6),
        (Tier.SHARED, "lora_rank", 32),
        (Tier.SHARED, "batch_size", 9),
        (Tier.SHARED, "max_seq_len", 1024),
        (Tier.SHARED, "learning_rate_multiplier", 0.0),
        (Tier.SHARED, "learning_rate_multiplier", float("nan")),
        (Tier.SHARED, "learning_rate_multiplier", float("inf")),
        (Tier.MIG, "lora_rank", 64),
        (Tier.DEDICATED, "max_seq_len", 4096),
        (Tier.SHARED, "seed", -1),
    ],
)
def test_values_outside_the_tiers_bounds_are_refused(tier: Tier, name: str, value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_hyper(tier, {name: value})
    assert caught.value.param == f"hyperparameters.{name}"


def test_larger_tiers_allow_more() -> None:
    assert check_hyper(Tier.DEDICATED, {"lora_rank": 64, "max_seq_len": 2048}).lora_rank == 64
    assert check_hyper(Tier.MIG, {"lora_rank": 32}).lora_rank == 32


@pytest.mark.parametrize(
    ("name", "value"),
    [("epochs", 2.5), ("epochs", True), ("epochs", "3"), ("learning_rate_multiplier", "x")],
)
def test_values_of_the_wrong_type_are_refused(name: str, value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_hyper(Tier.SHARED, {name: value})
    assert caught.value.param == f"hyperparameters.{name}"


def test_unknown_hyper_parameters_are_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_hyper(Tier.SHARED, {"warmup": 3})
    assert caught.value.param == "hyperparameters.warmup"


# --- chat JSONL ---------------------------------------------------------------------------------


def test_a_valid_file_parses_and_blank_lines_are_skipped() -> None:
    system = {"role": "system", "content": "be brief"}
    second = line([system, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    examples = parse(GOOD + b"\n\n" + second + b"\n")
    assert len(examples) == 2
    assert examples[1]["messages"][0] == system


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "line 2: not valid JSON"),
        (b"[1, 2]", "line 2: an example must be a JSON object"),
        (b'{"messages": []}', "line 2: 'messages' must be a non-empty list"),
        (b'{"prompt": "x"}', "line 2: unsupported key 'prompt'"),
        (b'{"messages": "hi"}', "line 2: 'messages' must be a non-empty list"),
        (line(["hi"]), "line 2: messages[0] is not an object"),
        (
            line([{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]),
            "line 2: messages[0].role must be one of system, user, assistant",
        ),
        (
            line([{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]),
            "line 2: messages[0].content must be a string",
        ),
        (
            line([{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]),
            "line 2: messages[1].content is empty",
        ),
        (
            line([{"role": "user", "content": "x"}, {"role": "assistant"}]),
            "line 2: messages[1].content must be a string",
        ),
        (line([{"role": "user", "content": "x"}]), "line 2: no assistant message to learn from"),
        (
            line(
                [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y", "weight": 0},
                ]
            ),
            "line 2: no assistant message to learn from",
        ),
        (
            line([{"role": "user", "content": "x", "tool_calls": []}]),
            "line 2: messages[0] has unsupported key 'tool_calls'",
        ),
        (b"\xff\xfe", "line 2: not UTF-8"),
    ],
)
def test_bad_lines_are_refused_with_their_line_number(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(GOOD + b"\n" + raw + b"\n", param="validation_file")
    assert caught.value.message == message
    assert caught.value.param == "validation_file"


def test_errors_never_quote_the_files_content() -> None:
    secret = "SECRET-CONTENT-4711"
    bad = line([{"role": secret, "content": secret}])
    with pytest.raises(InvalidRequest) as caught:
        parse(bad)
    assert secret not in str(caught.value)


def test_size_and_count_limits() -> None:
    with pytest.raises(InvalidRequest, match="larger than 10 bytes"):
        parse_examples(GOOD, max_examples=10, max_bytes=10)
    with pytest.raises(InvalidRequest, match="more than 2 examples"):
        parse(b"\n".join([GOOD] * 3), max_examples=2)
    with pytest.raises(InvalidRequest, match="at least 1 example needed, found 0"):
        parse(b"\n\n")
    with pytest.raises(InvalidRequest, match="at least 3 examples needed, found 2"):
        parse(b"\n".join([GOOD] * 2), min_examples=3)


def test_reprs_hold_no_data() -> None:
    job = TrainInput("smollm2-135m", [{"messages": ["SECRET"]}], [])
    assert "SECRET" not in repr(job)
    assert "smollm2" not in repr(job)
    outcome = Outcome.success([("adapter_model.safetensors", b"SECRET")], 10)
    assert "SECRET" not in repr(outcome) and outcome.succeeded
    assert Outcome.failure("oom", "x").reason == "oom"
