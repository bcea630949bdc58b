"""Work an event loop hands to a worker thread, its result handed back to the loop.

One class for the gateway's offload (`gateway/offload.py`) and vector ingestion's fair
pool (`vectors/fair.py`): both queue a `LoopJob`, a thread `run`s it, and the coroutine
that queued it awaits `future`.  A job no thread will run (its pool's executor refused it:
shut down as the interpreter exits, or no thread could be started) is answered at once with
`refuse`, so its caller gets an error instead of waiting forever, and each pool undoes what
it counted for the job.  `ThreadPoolExecutor.submit` queues the work before it starts a
thread, so a job refused because no thread could be started may still reach a live thread:
there it is neither run nor uncounted a second time (`LoopJob.refused`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from bulkhead.errors import Unavailable

NO_THREAD = (
    "The server's worker threads take no more work (it is shutting down, or out of threads); "
    "retry shortly, on another replica if this one is stopping."
)


def unavailable() -> Unavailable:
    """The error a job gets when its pool's executor refused it."""
    return Unavailable(NO_THREAD)


class LoopJob:
    """One piece of work for a worker thread; its result goes back to the waiting event loop."""

    def __init__(self, owner: str, work: Callable[[], Any], loop: asyncio.AbstractEventLoop):
        self.owner = owner  # whose turn or quota the job takes (a tenant's, or the platform's)
        self.work = work
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.abandoned = False  # set on the loop when nobody waits for it any more
        # Set (under its pool's lock) when its submit failed: `ThreadPoolExecutor.submit`
        # queues the work before it starts a thread, so a live thread may still meet it.
        self.refused = False

    def run(self) -> None:
        if self.refused:  # answered already and uncounted: its pool does not count it again
            return
        error: Exception | None
        try:
            result, error = self.work(), None
        except Exception as exc:
            result, error = None, exc
        except BaseException as exc:  # unanswered, its caller would wait forever
            # Not handed on as it is: a SystemExit awaited on the loop would stop the server.
            name = type(exc).__name__
            result, error = None, RuntimeError(f"the work was interrupted ({name})")
        try:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                self.loop.call_soon_threadsafe(self._settle, result, error)
        finally:
            # This frame is in the error's traceback: holding the error too would make a
            # cycle (and keep the work's input) that only the collector frees, in a pause.
            del result, error

    def refuse(self, error: Exception) -> None:
        """Answer the waiting coroutine with `error`, the work not run (from any thread)."""
        self.refused = True
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            self.loop.call_soon_threadsafe(self._settle, None, error)

    def _settle(self, result: Any, error: Exception | None) -> None:
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)
