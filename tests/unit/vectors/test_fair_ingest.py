"""Ingestion's threads are shared fairly between tenants (`vectors.fair`).

A plain pool ran every heavy step in arrival order: a tenant's large files kept both
threads busy, and another tenant's small file waited behind their steps at each of its
own (read, split, seal).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import numpy as np
import pytest

from bulkhead.vectors import service as vs
from bulkhead.vectors.fair import FairPool

LARGE_S = 0.4  # each heavy step of a large file


LARGE_TEXT = "a large file " * 8


class _Files:
    def __init__(self, ended: list[str]) -> None:
        self.ended = ended
        self.reading = 0  # large files whose read has started

    def content(self, tenant_id: str, file_id: str) -> bytes:
        if file_id.startswith("large"):
            self.reading += 1
            time.sleep(LARGE_S)
            self.ended.append(f"{file_id} read")
            return LARGE_TEXT.encode()
        return b"a small file"


class _Stores:
    def __init__(self, ended: list[str]) -> None:
        self.ended = ended

    def complete(self, tenant: Any, store_id: str, file_id: str, *rest: object) -> None:
        if file_id.startswith("large"):
            time.sleep(LARGE_S)
        self.ended.append(f"{file_id} sealed")

    def fail(self, *args: object) -> None:
        raise AssertionError(f"an ingestion failed: {args}")


class _Tenant:
    def __init__(self, tenant_id: str):
        self.id = tenant_id


class _Store:
    id, model = "vs_1", "m"


class _Link:
    def __init__(self, file_id: str):
        self.file_id = file_id


async def _embed(origin: object, model: str, texts: list[str]) -> Any:
    return np.ones((len(texts), 4), dtype=np.float32)


@pytest.mark.serial
def test_a_small_file_is_ingested_while_another_tenant_has_large_ones_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every heavy step of A's large files is slow.  B's small file arrives while two of A's
    steps hold both threads: it waits for one of them, then each of its own steps finds the
    thread A may not take.  In arrival order it waited behind A's next steps too."""
    ended: list[str] = []
    split = vs.split
    split("the tokenizer, built once", vs.Chunking(100, 0), vs.fits_for("m"))

    def slow_split(text: str, *args: Any) -> Any:
        if text == LARGE_TEXT:
            time.sleep(LARGE_S)
            ended.append("a large file split")
        return split(text, *args)

    monkeypatch.setattr(vs, "split", slow_split)

    async def run() -> None:
        files = _Files(ended)
        service = vs.VectorService(_Stores(ended), files, _embed, loads=2)  # type: ignore[arg-type]
        a, b = _Tenant("tenant-a"), _Tenant("tenant-b")
        for i in range(6):
            service.ingest_later({}, a, _Store(), _Link(f"large-{i}"), vs.Chunking(100, 0))  # type: ignore[arg-type]
        while files.reading < 2:  # A's first two files hold both threads (a loaded
            await asyncio.sleep(0.005)  # machine may take a while to start them)
        service.ingest_later({}, b, _Store(), _Link("small"), vs.Chunking(100, 0))  # type: ignore[arg-type]
        await service.settle()

    asyncio.run(run())
    assert len([e for e in ended if e.endswith("sealed")]) == 7
    before = ended[: ended.index("small sealed")]
    # Only A's running steps ended first: B waited for a thread, not behind A's next steps.
    # (Whether the second of them ends before B's three short steps is up to the machine.)
    assert before and set(before) <= {"large-0 read", "large-1 read"}, ended


def _record(order: list[str], name: str, hold: threading.Event | None = None) -> None:
    order.append(name)
    if hold is not None:
        hold.wait(5)


def test_a_free_thread_goes_round_robin_to_the_tenants_with_work() -> None:
    """One thread: A queued three steps before B and C queued theirs; they alternate."""
    pool, order = FairPool(1, "test-fair"), []
    hold = threading.Event()

    async def run() -> None:
        first = asyncio.ensure_future(pool.run("a", _record, order, "a0", hold))
        await asyncio.sleep(0.05)  # a0 holds the thread
        steps = [
            asyncio.ensure_future(pool.run(tenant, _record, order, f"{tenant}{i}"))
            for tenant in ("a", "b", "c")
            for i in (1, 2)
        ]
        await asyncio.sleep(0.05)
        hold.set()
        await asyncio.gather(first, *steps)

    asyncio.run(run())
    assert order == ["a0", "b1", "c1", "a1", "b2", "c2", "a2"]


def test_a_tenant_keeps_to_its_share_while_another_has_work() -> None:
    pool = FairPool(2, "test-fair")
    running: list[str] = []
    peak: dict[str, int] = {}
    lock = threading.Lock()

    def step(tenant: str, hold: threading.Event) -> None:
        with lock:
            running.append(tenant)
            peak[tenant] = max(peak.get(tenant, 0), running.count(tenant))
        hold.wait(5)
        with lock:
            running.remove(tenant)

    async def run() -> None:
        shared, alone = threading.Event(), threading.Event()
        with pool.working("a"), pool.working("b"):
            steps = [asyncio.ensure_future(pool.run("a", step, "a", shared)) for _ in range(4)]
            await asyncio.sleep(0.05)
            assert running == ["a"]  # B has work: A takes one thread, not both
            steps.append(asyncio.ensure_future(pool.run("b", step, "b", shared)))
            await asyncio.sleep(0.05)
            assert sorted(running) == ["a", "b"]  # B's step found the thread kept for it
            shared.set()
            await asyncio.gather(*steps)
        steps = [asyncio.ensure_future(pool.run("a", step, "a", alone)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert running == ["a", "a"]  # alone, A uses every thread
        alone.set()
        await asyncio.gather(*steps)

    asyncio.run(run())
    assert peak == {"a": 2, "b": 1}


def test_a_step_whose_caller_left_is_skipped_and_an_error_reaches_its_caller() -> None:
    pool, order = FairPool(1, "test-fair"), []
    hold = threading.Event()

    def fails() -> None:
        raise ValueError("bad file")

    async def run() -> None:
        first = asyncio.ensure_future(pool.run("a", _record, order, "a0", hold))
        await asyncio.sleep(0.05)
        left = asyncio.ensure_future(pool.run("b", _record, order, "b-left"))
        await asyncio.sleep(0)
        left.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await left
        hold.set()
        await first
        with pytest.raises(ValueError, match="bad file"):
            await pool.run("b", fails)
        await pool.run("b", _record, order, "b1")

    asyncio.run(run())
    assert order == ["a0", "b1"]


class _Interrupted(BaseException):
    """Not an `Exception`: what a step may raise that a plain `except Exception` misses."""


def test_a_step_that_raises_a_base_exception_answers_its_caller_and_frees_the_thread() -> None:
    pool = FairPool(1, "test-fair")

    def interrupted() -> None:
        raise _Interrupted

    async def run() -> None:
        # Without an answer the caller would wait forever, holding its tenant's ingestion turn.
        with pytest.raises(RuntimeError, match="interrupted"):
            await asyncio.wait_for(pool.run("a", interrupted), 5)
        assert await asyncio.wait_for(pool.run("a", lambda: "next"), 5) == "next"

    asyncio.run(run())
