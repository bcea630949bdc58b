"""What the fine-tuning API and the runner agree on.

The API side validates a job before it is queued (`parse_examples` for the chat JSONL files,
`check_hyper` for the hyper-parameters, bounded per tier by `HYPER_BOUNDS`), then hands the runner
a `TrainInput`: the base weights (decrypted, in memory, in the frame format of imported models) or
the name of a bundled base, the parsed examples and the `Hyper`.  The runner answers with a
`RunHandle` that streams `TrainEvent`s and ends in an `Outcome`: the adapter files (in memory) or a
failure reason.  Nothing here touches a disk.

The learning rate the runner uses is `BASE_LEARNING_RATE * learning_rate_multiplier`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import orjson

from bulkhead.domain import Tier
from bulkhead.errors import InvalidRequest

BUNDLED_BASES: Final = frozenset({"smollm2-135m"})
BASE_LEARNING_RATE: Final = 2e-4

EventKind = Literal["status", "metrics", "checkpoint", "message"]
FailReason = Literal["oom", "nan_loss", "crashed", "timeout", "cancelled", "invalid_data"]
FAIL_REASONS: Final[frozenset[str]] = frozenset(
    {"oom", "nan_loss", "crashed", "timeout", "cancelled", "invalid_data"}
)

Frames = Sequence[tuple[str, bytes | bytearray]]


@dataclass(frozen=True, slots=True)
class Hyper:
    """The hyper-parameters of one job, already inside its tier's bounds."""

    epochs: int = 3
    learning_rate_multiplier: float = 1.0
    batch_size: int = 4
    lora_rank: int = 8
    max_seq_len: int = 256
    seed: int = 0


@dataclass(frozen=True, slots=True)
class HyperBounds:
    """Inclusive (low, high) bounds of each hyper-parameter for one tier."""

    epochs: tuple[int, int]
    learning_rate_multiplier: tuple[float, float]
    batch_size: tuple[int, int]
    lora_rank: tuple[int, int]
    max_seq_len: tuple[int, int]
    seed: tuple[int, int] = (0, 2**31 - 1)


HYPER_BOUNDS: Final[dict[Tier, HyperBounds]] = {
    Tier.SHARED: HyperBounds(
        epochs=(1, 5),
        learning_rate_multiplier=(0.01, 10.0),
        batch_size=(1, 8),
        lora_rank=(1, 16),
        max_seq_len=(16, 512),
    ),
    Tier.MIG: HyperBounds(
        epochs=(1, 10),
        learning_rate_multiplier=(0.01, 10.0),
        batch_size=(1, 16),
        lora_rank=(1, 32),
        max_seq_len=(16, 1024),
    ),
    Tier.DEDICATED: HyperBounds(
        epochs=(1, 20),
        learning_rate_multiplier=(0.01, 10.0),
        batch_size=(1, 32),
        lora_rank=(1, 64),
        max_seq_len=(16, 2048),
    ),
}

_HYPER_FIELDS: Final = (
    "epochs",
    "learning_rate_multiplier",
    "batch_size",
    "lora_rank",
    "max_seq_len",
    "seed",
)


def _check_one(name: str, value: object, low: float, high: float, default: float) -> float:
    param = f"hyperparameters.{name}"
    if value is None or value == "auto":
        return default
    is_float = name == "learning_rate_multiplier"
    if isinstance(value, bool) or not isinstance(value, (int, float) if is_float else int):
        kind = "a number" if is_float else "an integer"
        raise InvalidRequest(f"{name} must be {kind} or 'auto'", param=param)
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high} on this tier", param=param)
    return value


def check_hyper(tier: Tier, values: Mapping[str, object]) -> Hyper:
    """Validate the client's hyper-parameters against ``tier``'s bounds; missing or "auto" take
    the default, clamped into the tier's range."""
    bounds = HYPER_BOUNDS[tier]
    for key in values:
        if key not in _HYPER_FIELDS:
            raise InvalidRequest(f"unknown hyper-parameter {key!r}", param=f"hyperparameters.{key}")
    defaults = Hyper()
    out: dict[str, Any] = {}
    for name in _HYPER_FIELDS:
        low, high = getattr(bounds, name)
        default = min(max(getattr(defaults, name), low), high)
        out[name] = _check_one(name, values.get(name), low, high, default)
    out["learning_rate_multiplier"] = float(out["learning_rate_multiplier"])
    return Hyper(**out)


# --- the chat JSONL format ---------------------------------------------------------------------

ROLES: Final = frozenset({"system", "user", "assistant"})
_EXAMPLE_KEYS: Final = frozenset({"messages"})
_MESSAGE_KEYS: Final = frozenset({"role", "content", "name", "weight"})
MAX_MESSAGES: Final = 64


def _check_message(number: int, index: int, message: object) -> dict[str, Any]:
    where = f"line {number}: messages[{index}]"
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where} is not an object")
    extra = set(message) - _MESSAGE_KEYS
    if extra:
        raise InvalidRequest(f"{where} has unsupported key {sorted(extra)[0]!r}")
    role = message.get("role")
    if role not in ROLES:
        raise InvalidRequest(f"{where}.role must be one of system, user, assistant")
    content = message.get("content")
    if not isinstance(content, str):
        raise InvalidRequest(f"{where}.content must be a string")
    if not content.strip():
        raise InvalidRequest(f"{where}.content is empty")
    weight = message.get("weight", 1)
    if weight not in (0, 1) or isinstance(weight, bool):
        raise InvalidRequest(f"{where}.weight must be 0 or 1")
    return {"role": role, "content": content} | ({"weight": weight} if "weight" in message else {})


def _check_example(number: int, line: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"line {number}: not valid JSON") from None
    if not isinstance(obj, dict):
        raise InvalidRequest(f"line {number}: an example must be a JSON object")
    extra = set(obj) - _EXAMPLE_KEYS
    if extra:
        raise InvalidRequest(f"line {number}: unsupported key {sorted(extra)[0]!r}")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(f"line {number}: 'messages' must be a non-empty list")
    if len(messages) > MAX_MESSAGES:
        raise InvalidRequest(f"line {number}: more than {MAX_MESSAGES} messages")
    checked = [_check_message(number, i, m) for i, m in enumerate(messages)]
    if not any(m["role"] == "assistant" and m.get("weight", 1) for m in checked):
        raise InvalidRequest(f"line {number}: no assistant message to learn from")
    return {"messages": checked}


def parse_examples(
    raw: bytes,
    *,
    max_examples: int,
    max_bytes: int,
    min_examples: int = 1,
    param: str = "training_file",
) -> list[dict[str, Any]]:
    """Parse a chat JSONL file (one {"messages": [{"role", "content"}, ...]} per line).

    Blank lines are skipped.  Every error names its line ("line 3: not valid JSON") and never
    quotes the file's content.  Raises `InvalidRequest` with ``param``.
    """
    try:
        return _parse(raw, max_examples, max_bytes, min_examples)
    except InvalidRequest as exc:
        raise InvalidRequest(exc.message, param=param) from None


def _parse(
    raw: bytes, max_examples: int, max_bytes: int, min_examples: int
) -> list[dict[str, Any]]:
    if len(raw) > max_bytes:
        raise InvalidRequest(f"the file is larger than {max_bytes} bytes")
    examples: list[dict[str, Any]] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            line.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise InvalidRequest(f"line {number}: not UTF-8") from None
        if len(examples) >= max_examples:
            raise InvalidRequest(f"more than {max_examples} examples")
        examples.append(_check_example(number, line))
    if len(examples) < min_examples:
        plural = "" if min_examples == 1 else "s"
        raise InvalidRequest(
            f"at least {min_examples} example{plural} needed, found {len(examples)}"
        )
    return examples


# --- what the runner is given and gives back ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunLimits:
    """The sandbox's limits for one job (the runner has per-tier defaults)."""

    memory_bytes: int = 3 << 30
    cpu_seconds: int = 3600
    wall_seconds: float = 3600.0
    threads: int = 1


@dataclass(frozen=True, slots=True)
class TrainInput:
    """One job's input.  ``base`` is a bundled base's name (see `BUNDLED_BASES`) or the decrypted
    weights of an imported hf-causal model as frames (`bulkhead.runtime.worker.frames`).  Neither
    the weights nor the examples appear in the repr."""

    base: str | Frames = field(repr=False)
    training: Sequence[Mapping[str, Any]] = field(repr=False)
    validation: Sequence[Mapping[str, Any]] = field(repr=False)
    hyper: Hyper = field(default_factory=Hyper)
    limits: RunLimits | None = None

    @property
    def base_name(self) -> str:
        return self.base if isinstance(self.base, str) else "<imported>"


@dataclass(frozen=True, slots=True)
class TrainEvent:
    """One event of a running job.  ``tokens`` is the count of training tokens seen so far
    (for budgets); losses are None where the event has none."""

    kind: EventKind
    step: int = 0
    train_loss: float | None = None
    valid_loss: float | None = None
    text: str = ""
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a job ended: ``adapter`` files (peft's adapter_config.json and
    adapter_model.safetensors) on success, a ``reason`` from `FAIL_REASONS` on failure."""

    status: Literal["succeeded", "failed"]
    adapter: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    reason: FailReason | None = None
    message: str = ""
    trained_tokens: int = 0

    @classmethod
    def success(cls, adapter: Sequence[tuple[str, bytes]], trained_tokens: int) -> Outcome:
        return cls("succeeded", adapter=tuple(adapter), trained_tokens=trained_tokens)

    @classmethod
    def failure(cls, reason: FailReason, message: str, trained_tokens: int = 0) -> Outcome:
        return cls("failed", reason=reason, message=message, trained_tokens=trained_tokens)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class RunHandle(Protocol):
    """A started job."""

    def events(self) -> AsyncIterator[TrainEvent]:
        """The job's events in order; ends when the job has ended."""
        ...

    async def cancel(self) -> None:
        """Stop the job (SIGTERM, then SIGKILL): it has ended when this returns, within 5 s."""
        ...

    async def outcome(self) -> Outcome:
        """Wait for the job to end and return how it ended."""
        ...


class Runner(Protocol):
    """Starts jobs; each in its own sandboxed process."""

    async def start(self, job_id: str, tenant_id: str, job: TrainInput) -> RunHandle: ...
