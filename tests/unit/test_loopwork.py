"""`LoopJob`: whatever a worker thread's work does, the coroutine awaiting it gets an answer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bulkhead.gateway.offload import Offload
from bulkhead.loopwork import LoopJob


async def _on_a_thread(work: object) -> object:
    job = LoopJob("tenant:t1", work, asyncio.get_running_loop())  # type: ignore[arg-type]
    threading.Thread(target=job.run).start()
    return await asyncio.wait_for(job.future, 5)


def test_a_result_an_error_and_an_interruption_each_reach_the_loop() -> None:
    asyncio.run(_each_reaches_the_loop())


async def _each_reaches_the_loop() -> None:
    assert await _on_a_thread(lambda: 42) == 42

    def fails() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        await _on_a_thread(fails)

    def interrupted() -> None:
        raise SystemExit(3)  # handed on as it is, it would stop the server awaiting it

    with pytest.raises(RuntimeError, match=r"interrupted \(SystemExit\)"):
        await _on_a_thread(interrupted)


def test_the_gateway_offload_answers_an_interrupted_job() -> None:
    """The gateway's offload runs on the same class: a request never waits forever."""
    offload = Offload(inline_bytes=0)

    def interrupted() -> None:
        raise KeyboardInterrupt

    async def run() -> None:
        with pytest.raises(RuntimeError, match="interrupted"):
            await asyncio.wait_for(offload.run("tenant:t1", 1, interrupted), 5)

    asyncio.run(run())
