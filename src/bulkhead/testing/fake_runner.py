"""A fine-tuning `Runner` for tests: each job emits a few events, then ends when told to.

A started job emits a status event, a metrics event and a checkpoint event,
then waits for the test: `succeed`, `fail` or nothing (a cancel through the
API ends it as the real runner does, failure "cancelled").  The test runs on
another thread than the gateway's event loop, so every command crosses over
with `call_soon_threadsafe`; `wait_started` blocks the test's thread until a
job has started.  It records each job's `TrainInput` (in memory, as given).
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bulkhead.finetune.contract import FailReason, Outcome, TrainEvent, TrainInput

TOKENS_PER_STEP = 100


def fake_adapter(rank: int = 2, width: int = 4) -> tuple[tuple[str, bytes], ...]:
    """A well-formed LoRA adapter (zeros) that the gateway stores: one A/B pair on q_proj."""
    module = "base_model.model.model.layers.0.self_attn.q_proj."
    shapes = {module + "lora_A.weight": [rank, width], module + "lora_B.weight": [width, rank]}
    header: dict[str, object] = {}
    offset = 0
    for name, shape in shapes.items():
        size = shape[0] * shape[1] * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    weights = struct.pack("<Q", len(raw)) + raw + bytes(offset)
    config = {"r": rank, "lora_alpha": 2 * rank, "target_modules": ["q_proj"]}
    return (
        ("adapter_config.json", json.dumps(config).encode()),
        ("adapter_model.safetensors", weights),
    )


@dataclass
class FakeHandle:
    job_id: str
    tenant_id: str
    job: TrainInput
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[TrainEvent | None] = field(default_factory=asyncio.Queue)
    done: asyncio.Future[Outcome] | None = None
    cancelled: bool = False

    def __post_init__(self) -> None:
        self.done = self.loop.create_future()
        for step, kind in enumerate(("status", "metrics", "checkpoint"), start=1):
            self.queue.put_nowait(
                TrainEvent(
                    kind=kind,  # type: ignore[arg-type]
                    step=step,
                    train_loss=2.0 / step if kind != "status" else None,
                    valid_loss=2.5 / step if kind == "checkpoint" else None,
                    text=f"fake {kind} {step}",
                    tokens=step * TOKENS_PER_STEP,
                )
            )

    def _end(self, outcome: Outcome) -> None:
        assert self.done is not None
        if not self.done.done():
            self.done.set_result(outcome)
            self.queue.put_nowait(None)

    async def events(self) -> AsyncIterator[TrainEvent]:
        while (event := await self.queue.get()) is not None:
            yield event

    async def cancel(self) -> None:
        self.cancelled = True
        self._end(Outcome.failure("cancelled", "Cancelled.", 3 * TOKENS_PER_STEP))

    async def outcome(self) -> Outcome:
        assert self.done is not None
        return await self.done


class FakeRunner:
    def __init__(self) -> None:
        self.handles: dict[str, FakeHandle] = {}
        self.order: list[str] = []  # job ids in the order they started
        self._started = threading.Condition()

    async def start(self, job_id: str, tenant_id: str, job: TrainInput) -> FakeHandle:
        handle = FakeHandle(job_id, tenant_id, job, asyncio.get_running_loop())
        with self._started:
            self.handles[job_id] = handle
            self.order.append(job_id)
            self._started.notify_all()
        return handle

    def wait_started(self, job_id: str, timeout: float = 10.0) -> FakeHandle:
        with self._started:
            if not self._started.wait_for(lambda: job_id in self.handles, timeout):
                raise TimeoutError(f"job {job_id} did not start")
            return self.handles[job_id]

    def running(self) -> list[str]:
        with self._started:
            return [j for j, h in self.handles.items() if h.done is not None and not h.done.done()]

    def succeed(
        self, job_id: str, tokens: int = 1234, adapter: tuple[tuple[str, bytes], ...] = ()
    ) -> None:
        """End the job well, with `adapter` (a well-formed one by default)."""
        handle = self.wait_started(job_id)
        outcome = Outcome.success(adapter or fake_adapter(), tokens)
        handle.loop.call_soon_threadsafe(handle._end, outcome)

    def fail(self, job_id: str, reason: FailReason = "nan_loss") -> None:
        handle = self.wait_started(job_id)
        outcome = Outcome.failure(reason, f"fake {reason}", TOKENS_PER_STEP)
        handle.loop.call_soon_threadsafe(handle._end, outcome)
