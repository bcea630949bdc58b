"""The body of `POST /v1/fine_tuning/jobs`, checked field by field before anything uses it.

OpenAI's fields: `model`, `training_file`, `validation_file`, `hyperparameters`
(`n_epochs`, `learning_rate_multiplier`, `batch_size`; also accepted under
`method.supervised.hyperparameters`), `suffix`, `seed`.  Bulkhead's own
hyper-parameters (`lora_rank`, `max_seq_len`) go in the extension object
`bulkhead`.  The tier's bounds are checked later, with the tenant known
(`contract.check_hyper`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bulkhead.errors import InvalidRequest

_FIELDS = frozenset(
    {
        "model",
        "training_file",
        "validation_file",
        "hyperparameters",
        "suffix",
        "seed",
        "method",
        "integrations",
        "metadata",
        "bulkhead",
    }
)
_OPENAI_HYPER = {"n_epochs": "epochs", "learning_rate_multiplier": "learning_rate_multiplier"}
_OPENAI_HYPER["batch_size"] = "batch_size"
_EXTENSION = frozenset({"lora_rank", "max_seq_len"})
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SUFFIX = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass(frozen=True, slots=True)
class CreateJob:
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    hyper: dict[str, object]  # in `contract.Hyper`'s names, not yet bounded


def _file(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _FILE_ID.fullmatch(value):
        raise InvalidRequest(f"'{name}' must be the id of an uploaded file.", param=name)
    return value


def _object(value: object, param: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{param}' must be an object.", param=param)
    return value


def _hyper(body: dict[str, Any]) -> dict[str, object]:
    given = _object(body.get("hyperparameters"), "hyperparameters")
    method = _object(body.get("method"), "method")
    if method:
        if method.get("type", "supervised") != "supervised":
            raise InvalidRequest("Only the 'supervised' method is supported.", param="method.type")
        supervised = _object(method.get("supervised"), "method.supervised")
        nested = "method.supervised.hyperparameters"
        given = {**given, **_object(supervised.get("hyperparameters"), nested)}
    hyper: dict[str, object] = {}
    for name, value in given.items():
        if name not in _OPENAI_HYPER:
            raise InvalidRequest(
                f"Unknown hyper-parameter '{name}'.", param=f"hyperparameters.{name}"
            )
        hyper[_OPENAI_HYPER[name]] = value
    extension = _object(body.get("bulkhead"), "bulkhead")
    for name, value in extension.items():
        if name not in _EXTENSION:
            raise InvalidRequest(f"Unknown field 'bulkhead.{name}'.", param=f"bulkhead.{name}")
        hyper[name] = value
    if body.get("seed") is not None:
        hyper["seed"] = body["seed"]
    return hyper


def parse_create(body: dict[str, Any]) -> CreateJob:
    """The request, or `InvalidRequest` naming the first bad field."""
    for name in body:
        if name not in _FIELDS:
            raise InvalidRequest(f"Unknown field '{name}'.", param=name)
    model = body.get("model")
    if not isinstance(model, str) or not 0 < len(model) <= 128:
        raise InvalidRequest("'model' is required and must be a string.", param="model")
    suffix = body.get("suffix")
    if suffix is not None and not (isinstance(suffix, str) and SUFFIX.fullmatch(suffix)):
        message = "'suffix' must be 1 to 40 letters, digits, '-' or '_'."
        raise InvalidRequest(message, param="suffix")
    return CreateJob(
        model=model,
        training_file=_file(body, "training_file", required=True) or "",
        validation_file=_file(body, "validation_file", required=False),
        suffix=suffix,
        hyper=_hyper(body),
    )


def validate_create(body: dict[str, Any]) -> bool:
    """The gateway's validator (`gateway.endpoints`): the body's shape; never streams."""
    parse_create(body)
    return False
