"""The create body: OpenAI's fields mapped to `Hyper`'s names, everything else refused."""

from __future__ import annotations

from typing import Any

import pytest

from bulkhead.errors import InvalidRequest
from bulkhead.finetune.request import parse_create

BASE = {"model": "smol", "training_file": "file-abc"}


def test_openai_fields_and_the_extension_map_to_hyper_names() -> None:
    body = {
        **BASE,
        "hyperparameters": {"n_epochs": 2, "batch_size": 4},
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
        "bulkhead": {"lora_rank": 8, "max_seq_len": 128},
        "seed": 5,
        "suffix": "my-model_1",
        "validation_file": "file-def",
    }
    job = parse_create(body)
    assert job.hyper == {
        "epochs": 3, "batch_size": 4, "lora_rank": 8, "max_seq_len": 128, "seed": 5,
    }  # fmt: skip
    assert (job.suffix, job.validation_file) == ("my-model_1", "file-def")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"training_file": "file-abc"}, "model"),
        ({"model": "smol"}, "training_file"),
        ({**BASE, "training_file": "../x"}, "training_file"),
        ({**BASE, "validation_file": 3}, "validation_file"),
        ({**BASE, "suffix": "a b"}, "suffix"),
        ({**BASE, "suffix": "x" * 41}, "suffix"),
        ({**BASE, "hyperparameters": [1]}, "hyperparameters"),
        ({**BASE, "hyperparameters": {"warmup": 1}}, "hyperparameters.warmup"),
        ({**BASE, "bulkhead": {"dropout": 0.1}}, "bulkhead.dropout"),
        ({**BASE, "method": {"type": "dpo"}}, "method.type"),
        ({**BASE, "tenant": "other"}, "tenant"),
    ],
)
def test_bad_bodies_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_create(body)
    assert refused.value.param == param
