"""The fine-tuning queue's order: fewest running first, turns on ties, each tenant's limit."""

from __future__ import annotations

import asyncio

from bulkhead.finetune.contract import Outcome, TrainEvent, TrainInput
from bulkhead.finetune.queue import Scheduler, Ticket
from bulkhead.testing.fake_runner import FakeRunner


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.ended: dict[str, Outcome] = {}
        self.refuse: set[str] = set()
        self.bad: set[str] = set()

    async def load(self, ticket: Ticket) -> TrainInput:
        if ticket.job_id in self.bad:
            raise ValueError("bad")
        return TrainInput(base="smollm2-135m", training=[], validation=[])

    async def started(self, ticket: Ticket) -> bool:
        return ticket.job_id not in self.refuse

    async def event(self, ticket: Ticket, event: TrainEvent) -> None:
        self.events.append((ticket.job_id, event.kind))

    async def finished(self, ticket: Ticket, outcome: Outcome) -> None:
        self.ended[ticket.job_id] = outcome


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def scheduler(limits: dict[str, int], capacity: int) -> tuple[Scheduler, FakeRunner, Sink]:
    runner, sink = FakeRunner(), Sink()
    return (
        Scheduler(runner, sink, concurrency=lambda t: limits.get(t, 1), capacity=capacity),
        runner,
        sink,
    )


async def end(runner: FakeRunner, job_id: str) -> None:
    handle = runner.handles[job_id]
    handle._end(Outcome.success((), 10))
    await settle()


def test_the_tenant_with_fewest_running_goes_first() -> None:
    asyncio.run(_the_tenant_with_fewest_running_goes_first())


async def _the_tenant_with_fewest_running_goes_first() -> None:
    s, runner, _ = scheduler({"a": 3}, capacity=2)
    for job in ("a1", "a2", "a3"):
        s.submit("a", job)
    s.submit("b", "b1")
    await settle()
    assert runner.order == ["a1", "a2"]
    await end(runner, "a1")
    assert runner.order == ["a1", "a2", "b1"]  # b has none running; a has one
    await end(runner, "a2")
    assert runner.order[-1] == "a3"


def test_ties_take_turns() -> None:
    asyncio.run(_ties_take_turns())


async def _ties_take_turns() -> None:
    s, runner, _ = scheduler({"a": 5, "b": 5}, capacity=1)
    for job in ("a1", "a2", "a3"):
        s.submit("a", job)
    for job in ("b1", "b2"):
        s.submit("b", job)
    await settle()
    for job in list(runner.order):
        await end(runner, job)
    while len(runner.order) < 5:
        await end(runner, runner.order[-1])
    assert runner.order == ["a1", "b1", "a2", "b2", "a3"]


def test_a_tenant_never_runs_more_than_its_limit() -> None:
    asyncio.run(_a_tenant_never_runs_more_than_its_limit())


async def _a_tenant_never_runs_more_than_its_limit() -> None:
    s, runner, _ = scheduler({"a": 1}, capacity=4)
    s.submit("a", "a1")
    s.submit("a", "a2")
    await settle()
    assert runner.order == ["a1"] and s.queued("a") == ["a2"] and s.running("a") == ["a1"]
    await end(runner, "a1")
    assert runner.order == ["a1", "a2"]


def test_a_limit_of_zero_starts_nothing() -> None:
    asyncio.run(_a_limit_of_zero_starts_nothing())


async def _a_limit_of_zero_starts_nothing() -> None:
    s, runner, _ = scheduler({"a": 0}, capacity=4)
    s.submit("a", "a1")
    await settle()
    assert runner.order == [] and s.queued("a") == ["a1"]


def test_cancel_takes_a_job_off_the_queue_or_stops_it() -> None:
    asyncio.run(_cancel_takes_a_job_off_the_queue_or_stops_it())


async def _cancel_takes_a_job_off_the_queue_or_stops_it() -> None:
    s, runner, sink = scheduler({"a": 1}, capacity=1)
    s.submit("a", "a1")
    s.submit("a", "a2")
    await settle()
    await s.cancel("a", "a2")
    assert s.queued("a") == []
    await s.cancel("b", "a1")  # another tenant's id: nothing happens
    assert not runner.handles["a1"].cancelled
    await s.cancel("a", "a1")
    await settle()
    assert runner.handles["a1"].cancelled and sink.ended["a1"].reason == "cancelled"
    assert "a2" not in runner.handles and s.running() == []


def test_events_flow_and_bad_input_fails_the_job_not_the_queue() -> None:
    asyncio.run(_events_flow_and_bad_input_fails_the_job_not_the_queue())


async def _events_flow_and_bad_input_fails_the_job_not_the_queue() -> None:
    s, runner, sink = scheduler({"a": 2}, capacity=2)
    sink.bad.add("a1")
    sink.refuse.add("a2")
    for job in ("a1", "a2", "a3"):
        s.submit("a", job)
    await settle()
    assert sink.ended["a1"].reason == "invalid_data" and "a2" not in runner.handles
    assert [k for j, k in sink.events if j == "a3"] == ["status", "metrics", "checkpoint"]
    await end(runner, "a3")
    assert sink.ended["a3"].succeeded and s.running() == []
    await s.close()
