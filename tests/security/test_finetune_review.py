"""Findings of the fine-tuning security review (issue 17), each pinned by a test.

The training process runs third-party code on a tenant's data, so everything it writes to its
stdout is hostile input to the gateway: its adapter frames, its events and its end event.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import openai
import orjson
import pytest

from bulkhead.domain import (
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.errors import RateLimited
from bulkhead.finetune.contract import FailReason, Outcome, RunLimits, TrainInput
from bulkhead.finetune.queue import Scheduler, Ticket
from bulkhead.finetune.request import parse_create
from bulkhead.finetune.service import FineTuning
from bulkhead.finetune.stream import MAX_EVENT_BYTES, StreamRun, event_of, read_frames
from bulkhead.runtime.worker import frames
from bulkhead.runtime.worker.adapter_format import MAX_WEIGHTS_BYTES
from bulkhead.store import repo
from bulkhead.testing.fake_runner import FakeRunner
from tests.support.gateway import GatewayThread


def _frame_head(name: str, size: int) -> bytes:
    raw = name.encode()
    return struct.pack(">H", len(raw)) + raw + struct.pack(">Q", size)


async def _refused_at_once(data: bytes) -> None:
    """`read_frames` on `data` (the stream stays open): it must refuse without waiting for
    the bytes announced, i.e. before the gateway would buffer them."""
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    with pytest.raises(frames.FrameError):
        await asyncio.wait_for(read_frames(stream), 2.0)


def test_an_adapter_file_larger_than_any_adapter_is_refused_before_it_is_read() -> None:
    # 600 MiB announced: over what `adapter_format` accepts for the weights (512 MiB).
    head = struct.pack(">I", 1) + _frame_head("adapter_model.safetensors", 600 << 20)
    asyncio.run(_refused_at_once(head))


def test_many_adapter_files_cannot_add_up_past_one_adapter() -> None:
    # Sixteen files of 512 MiB each would have been 8 GiB held in the gateway's memory.
    first = _frame_head("a", 1 << 17) + b"x" * (1 << 17)
    second = _frame_head("b", MAX_WEIGHTS_BYTES)
    asyncio.run(_refused_at_once(struct.pack(">I", 16) + first + second))


# --- a hostile event stream ------------------------------------------------------------------


class _NullWriter:
    def write(self, data: bytes | bytearray) -> None:
        pass

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


class ScriptedRun(StreamRun):
    """A `StreamRun` whose process wrote `out` to its stdout and exited with `code`."""

    def __init__(self, out: bytes, code: int = 0) -> None:
        super().__init__("ftjob-review", RunLimits(wall_seconds=60))
        self.out, self.code = out, code

    async def _connect(self) -> tuple[_NullWriter, asyncio.StreamReader]:
        reader = asyncio.StreamReader(limit=MAX_EVENT_BYTES)
        reader.feed_data(self.out)
        reader.feed_eof()
        return _NullWriter(), reader

    async def _stop(self, reason: FailReason) -> None:
        self._stopping = reason

    async def _abort(self) -> None:
        pass

    async def _exit_code(self) -> int | None:
        return self.code


def _run(out: bytes, code: int = 0) -> tuple[ScriptedRun, Outcome]:
    async def main() -> tuple[ScriptedRun, Outcome]:
        run = ScriptedRun(out, code)
        run._begin(b"{}\n", TrainInput(base="smollm2-135m", training=[], validation=[]))
        return run, await run.outcome()

    return asyncio.run(main())


def _lines(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def test_an_event_flood_is_not_kept_without_bound() -> None:
    """Every event the process writes was kept in the gateway's memory (and became a row of
    the job's events): a process that writes events without end grew both for its whole
    wall-clock limit.  The kept events are bounded; the tokens still count."""
    count = 30_000
    out = _lines(*({"kind": "metrics", "step": i, "tokens": i} for i in range(count)))
    out += _lines({"kind": "end", "status": "failed", "reason": "nan_loss", "message": "NaN"})
    run, outcome = _run(out, code=1)
    assert len(run._events) < count // 2
    assert outcome.reason == "nan_loss"
    assert outcome.trained_tokens == count - 1  # what it reported, dropped events included


def _succeeded(end_tokens: object) -> bytes:
    from bulkhead.testing.fake_runner import fake_adapter

    out = _lines({"kind": "metrics", "step": 1, "tokens": 100})
    out += _lines({"kind": "end", "status": "succeeded", "tokens": end_tokens})
    return out + b"".join(frames.encode(fake_adapter()))


@pytest.mark.parametrize("end_tokens", ["lots", -5, 10**30, 1e300, True, None])
def test_the_end_events_token_count_is_checked(end_tokens: object) -> None:
    """A token count that is not a plain count failed the whole outcome with an exception
    (a string, infinity) or was recorded as is (negative, past a BIGINT): the tokens the
    events reported stand instead."""
    _, outcome = _run(_succeeded(end_tokens))
    assert outcome.succeeded
    assert outcome.trained_tokens == 100


@pytest.mark.parametrize("tokens", [10**30, -1, 2**53])
def test_an_events_token_count_is_checked(tokens: int) -> None:
    out = _lines(
        {"kind": "metrics", "step": 1, "tokens": 7},
        {"kind": "metrics", "step": 2, "tokens": tokens},
        {"kind": "end", "status": "failed", "reason": "nan_loss", "message": "NaN"},
    )
    run, outcome = _run(out, code=1)
    assert outcome.trained_tokens == 7
    assert all(0 <= e.tokens < 2**53 for e in run._events)


# --- through a gateway -----------------------------------------------------------------------

BASE = "smol-review"
EXAMPLE = {
    "messages": [
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
    ]
}
GOOD = b"\n".join(orjson.dumps(EXAMPLE) for _ in range(40)) + b"\n"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayThread, FakeRunner]]:
    runner = FakeRunner()
    data = tmp_path_factory.mktemp("review17") / "data"
    env = {"BULKHEAD_FINE_TUNING_JOBS": "1", "BULKHEAD_FINE_TUNING_POLL_MS": "100"}
    gateway = GatewayThread(data, None, env=env, fine_tuning_runner=runner).start()
    gateway.must("POST", "/admin/v1/models", {"name": BASE, "worker": "smollm2-135m"})
    yield gateway, runner
    gateway.stop()


def _tenant(gateway: GatewayThread, name: str, limits: dict[str, int] | None = None) -> str:
    gateway.tenant(name)
    gateway.must("POST", f"/admin/v1/models/{BASE}/grants", {"tenant": name})
    if limits:
        with gateway.app.db.platform_transaction() as session:
            repo.set_tenant_limits(session, name, limits)
    gateway.app.catalog.reload()
    return gateway.key(name, role="model_developer")


def _upload(gateway: GatewayThread, key: str) -> str:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    made = client.files.create(file=("t.jsonl", io.BytesIO(GOOD)), purpose="fine-tune")  # type: ignore[arg-type]
    return str(made.id)


def _wait(gateway: GatewayThread, key: str, job_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while (got := gateway.call("GET", f"/v1/fine_tuning/jobs/{job_id}", key)).body[
        "status"
    ] not in statuses:
        assert time.monotonic() < deadline, got.body
        time.sleep(0.02)
    return got.body


def test_jobs_queued_together_cannot_spend_past_the_budget(
    gw: tuple[GatewayThread, FakeRunner],
) -> None:
    """The budget was checked at `create` only: jobs queued behind a running one each fit
    what was left then, and each was charged in full once it ran (a charge is never
    refused), so a tenant spent its day's budget many times over.  A job is checked again
    as it starts, and one that no longer fits fails with the budget's error, untrained."""
    gateway, runner = gw
    service = gateway.app.fine_tuning
    assert service is not None and service.budget is not None
    counter = service.budget.admission.counter
    getattr(counter, "load", lambda: None)()
    estimate = service.budget.estimate([EXAMPLE] * 40, 1)
    day = 2 * estimate + 1
    key = _tenant(gateway, "queued-budget", {"tokens_per_day": day})
    training = _upload(gateway, key)
    body = {"model": BASE, "training_file": training, "hyperparameters": {"n_epochs": 1}}
    ids = []
    for _ in range(3):  # each fits what is left now: nothing has been charged yet
        made = gateway.call("POST", "/v1/fine_tuning/jobs", key, body)
        assert made.status == 200, made.body
        ids.append(str(made.body["id"]))
    first, second, third = ids
    runner.succeed(first, tokens=day - estimate + 1)  # what is left no longer fits one epoch
    assert _wait(gateway, key, first, "succeeded")["trained_tokens"] == day - estimate + 1
    for job_id in (second, third):
        failed = _wait(gateway, key, job_id, "failed", "succeeded", "cancelled")
        assert failed["status"] == "failed", failed
        assert "tokens_per_day" in failed["error"]["message"]
        assert job_id not in runner.handles  # never trained


def test_a_tuned_model_goes_with_its_base_grant(gw: tuple[GatewayThread, FakeRunner]) -> None:
    """A tuned model is its base's weights plus a small adapter (a rank-1 adapter trained one
    step at the lowest rate is the base): it stayed usable after the platform revoked the
    base's grant, so one cheap job kept a revoked model forever.  It is usable only while
    the tenant may use a model of its base's weights, and again once the grant is back."""
    gateway, runner = gw
    key = _tenant(gateway, "revoked-base")
    training = _upload(gateway, key)
    body = {"model": BASE, "training_file": training, "suffix": "keep"}
    made = gateway.call("POST", "/v1/fine_tuning/jobs", key, body)
    assert made.status == 200, made.body
    job_id = str(made.body["id"])
    runner.succeed(job_id)
    tuned = str(_wait(gateway, key, job_id, "succeeded", "failed")["fine_tuned_model"])

    def listed() -> set[str]:
        return {m["id"] for m in gateway.call("GET", "/v1/models", key).body["data"]}

    assert tuned in listed()
    gateway.must("DELETE", f"/admin/v1/models/{BASE}/grants/revoked-base")
    gateway.app.catalog.reload()
    assert BASE not in listed() and tuned not in listed()
    chat = {"model": tuned, "messages": [{"role": "user", "content": "hi"}]}
    refused = gateway.call("POST", "/v1/chat/completions", key, chat)
    assert (refused.status, refused.body["error"]["code"]) == (404, "model_not_found")
    gateway.must("POST", f"/admin/v1/models/{BASE}/grants", {"tenant": "revoked-base"})
    gateway.app.catalog.reload()
    assert tuned in listed()


def test_suspending_a_tenant_stops_its_running_jobs(gw: tuple[GatewayThread, FakeRunner]) -> None:
    """A suspended tenant's queued jobs were held, but its running ones trained on to their
    end and registered their models.  They are stopped within a lease round or two."""
    gateway, runner = gw
    key = _tenant(gateway, "suspended-trainer")
    training = _upload(gateway, key)
    made = gateway.call(
        "POST", "/v1/fine_tuning/jobs", key, {"model": BASE, "training_file": training}
    )
    assert made.status == 200, made.body
    job_id = str(made.body["id"])
    handle = runner.wait_started(job_id)
    gateway.must("PATCH", "/admin/v1/tenants/suspended-trainer", {"status": "suspended"})
    gateway.app.catalog.reload()
    deadline = time.monotonic() + 10
    while not handle.cancelled:
        assert time.monotonic() < deadline, "the suspended tenant's job still runs"
        time.sleep(0.02)
    service = gateway.app.fine_tuning
    assert service is not None
    while (
        job := service.jobs.get(_tenant_id(gateway, "suspended-trainer"), job_id)
    ).status == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
    assert job.status == "cancelled" and job.fine_tuned_model is None


def _tenant_id(gateway: GatewayThread, name: str) -> str:
    return next(t.id for t in gateway.app.catalog.snapshot.tenants.values() if t.name == name)


# --- a run the gateway could not record ------------------------------------------------------


def test_control_characters_in_a_process_text_are_dropped() -> None:
    """PostgreSQL refuses a NUL in a text column: an event whose text held one failed the
    job's event write (below, what that did), and an end message with one its final move."""
    event = event_of({"kind": "message", "text": "a\u0000b\u001b[2Jc\nd"})
    assert event.text == "ab[2Jcd"  # the escape character gone
    out = _lines({"kind": "end", "status": "failed", "reason": "nan_loss", "message": "x\u0000y"})
    _, outcome = _run(out, code=1)
    assert outcome.message == "xy"
    run, _ = _run(b"SANDBOX net,\x00seccomp\n" + out, code=1)
    assert all("\x00" not in e.text for e in run._events)


def test_a_run_whose_events_cannot_be_recorded_is_stopped() -> None:
    """When the sink failed on an event the job was failed and its slot freed, but its
    process trained on unsupervised (to its wall-clock limit), so the replica started
    another job beside it: a way past `capacity`.  The run is stopped first."""

    class Sink:
        ended: Outcome | None = None

        async def load(self, ticket: Ticket) -> TrainInput:
            return TrainInput(base="smollm2-135m", training=[], validation=[])

        async def started(self, ticket: Ticket) -> bool:
            return True

        async def event(self, ticket: Ticket, event: Any) -> None:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")

        async def finished(self, ticket: Ticket, outcome: Outcome) -> None:
            self.ended = outcome

    async def main() -> tuple[FakeRunner, Sink]:
        runner, sink = FakeRunner(), Sink()
        scheduler = Scheduler(runner, sink, concurrency=lambda _t: 1, capacity=1)
        scheduler.launch(Ticket("t", "ftjob-1", claimed=True))
        for _ in range(50):
            await asyncio.sleep(0)
        return runner, sink

    runner, sink = asyncio.run(main())
    assert sink.ended is not None and sink.ended.reason == "crashed"
    assert runner.handles["ftjob-1"].cancelled


# --- the checks at create ------------------------------------------------------------------


def test_a_tenant_cannot_fill_the_worker_threads_with_creates() -> None:
    """Each `create` decrypts and parses its files (up to `BULKHEAD_MAX_FILE_BYTES` each) on
    the event loop's shared worker threads: a tenant sending many at once held them all, and
    every other tenant's calls that need one waited.  A tenant may have two checking."""
    release = threading.Event()
    service = FineTuning(
        jobs=SimpleNamespace(db=None),  # type: ignore[arg-type]
        files=None,  # type: ignore[arg-type]
        artifacts=None,
        tenant_of=lambda _t: None,
        resolve=lambda _t, _m: None,
        emit=lambda _e: None,
        runner=FakeRunner(),
    )

    def check(ctx: Any, request: Any, resolved: Any) -> Any:
        release.wait(10)
        return SimpleNamespace(tenant_id=ctx.tenant.id, created_by=None, id="ftjob-1", model="m")

    service.check = check  # type: ignore[method-assign]

    def caller(tenant_id: str) -> TenantContext:
        tenant = Tenant(tenant_id, tenant_id, Tier.SHARED, TenantStatus.ACTIVE)
        who = Principal("p", tenant_id, "dev", PrincipalKind.SERVICE, frozenset())
        return TenantContext(tenant, who, Role.MODEL_DEVELOPER, "k")

    request = parse_create({"model": "m", "training_file": "file-1"})

    async def main() -> None:
        a = caller("t-a")
        first = [asyncio.create_task(service.create(a, request, None)) for _ in range(2)]  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        with pytest.raises(RateLimited):
            await service.create(a, request, None)  # type: ignore[arg-type]
        other = asyncio.create_task(service.create(caller("t-b"), request, None))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*first, other)
        await service.create(a, request, None)  # type: ignore[arg-type]  # the slots are back

    asyncio.run(main())
