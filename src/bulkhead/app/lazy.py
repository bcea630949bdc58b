"""Parts of the gateway made at their first request, not at start-up.

A model call never reaches the management APIs (`admin.api`: some 45 modules
with their pydantic models) nor the web console (`console`), yet importing and
building them cost every gateway memory and start-up time.  `DeferredApp`
stands in their place at the end of the request chain: the chain in front of
it (request id, errors, audit, authentication, CSRF, ...) is built at start-up
as before and runs on every request, the first one included; what waits is
only the innermost app, which is made (imports and all) on a worker thread by
the first request that reaches it and then serves every request, that one
included, exactly as if it had been made at start-up (the management router
asks the `Authorizer` before any handler runs, whenever it was made).

A failure to make it (it cannot happen without a bug: everything it needs was
opened at start-up) is logged at ERROR once, with its cause, and answered 503
`service_unavailable` in the API's error format (no traceback nor internal
detail to the client) to every request that waited for that attempt; the next
request tries again.  Concurrent first requests make it once: the others wait
for the same attempt (on the event loop, one worker thread makes it for all),
for at most `WAIT_S`, then get a 503 too; nothing is ever served without it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from bulkhead.errors import Unavailable
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send

T = TypeVar("T")

log = logging.getLogger("bulkhead")

# How long a request waits for another's making before it is answered 503: making takes
# tens of milliseconds; seconds mean a stuck import, and a client should not hang on it.
WAIT_S = 30.0


class NotMade(Unavailable):
    """A 503: the part could not be made (logged where it failed) or not in time."""


class Deferred(Generic[T]):
    """`make()`'s result, made once by the first caller of `get` (from any thread).

    `name` is what a client and the log are told could not be made.
    """

    def __init__(self, make: Callable[[], T], *, name: str, wait_s: float = WAIT_S) -> None:
        self._make = make
        self._name = name
        self._wait_s = wait_s
        self._made: T | None = None
        self._lock = threading.Lock()
        self._tries = 0  # attempts finished without making it
        self._task: asyncio.Task[T] | None = None  # the attempt requests on the loop wait for

    @property
    def made(self) -> bool:
        return self._made is not None

    def get(self) -> T:
        """The part, made now if need be; a caller that waited for an attempt that failed
        gets its answer (a 503) rather than trying again at once."""
        made = self._made
        if made is not None:
            return made
        tries = self._tries
        if not self._lock.acquire(timeout=self._wait_s):
            raise self._busy()
        try:
            if self._made is not None:
                return self._made
            if self._tries != tries:  # the attempt this caller waited for failed
                raise self._failed()
            try:
                self._made = made = self._make()
            except NotMade as exc:  # a part it needs failed, and said so in the log
                self._tries += 1
                raise self._failed() from exc
            except Exception as exc:
                self._tries += 1
                log.error(
                    "making the %s failed; the next request tries again", self._name, exc_info=exc
                )
                raise self._failed() from exc
            return made
        finally:
            self._lock.release()

    async def ready(self) -> T:
        """`get`, off the event loop the first time (importing takes tens of ms of CPU), on
        one worker thread for every request that waits meanwhile."""
        made = self._made
        if made is not None:
            return made
        task = self._task
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = self._task = asyncio.ensure_future(asyncio.to_thread(self.get))
            task.add_done_callback(self._settled)
        # Each waiter raises an exception of its own: the error layer clears the frames of
        # the one it answers, which would close the other waiters' coroutines if shared.
        done, _ = await asyncio.wait({task}, timeout=self._wait_s)
        if not done:
            raise self._busy()
        failure = task.exception()
        if failure is not None:
            raise NotMade(str(failure)) if isinstance(failure, NotMade) else self._failed()
        return task.result()

    def _settled(self, task: asyncio.Task[T]) -> None:
        """The attempt is over: the next request makes its own if this one failed."""
        if self._task is task:
            self._task = None
        if not task.cancelled():
            task.exception()  # seen here, whether or not a waiter is left to see it

    def _failed(self) -> NotMade:
        return NotMade(f"The {self._name} could not be started; try again shortly.")

    def _busy(self) -> NotMade:
        return NotMade(f"The {self._name} is still starting; try again shortly.")


class DeferredApp:
    """The ASGI app `app_of` finds in a `Deferred`, made at the first request."""

    def __init__(self, deferred: Deferred[Any], app_of: Callable[[Any], ASGIApp]) -> None:
        self.deferred = deferred
        self._app_of = app_of
        self._app: ASGIApp | None = None

    def made(self) -> ASGIApp:
        """The app, made now if no request has made it yet (tests look inside it)."""
        app = self._app
        if app is None:
            app = self._app = self._app_of(self.deferred.get())
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            await self.deferred.ready()  # made off the event loop
        await self.made()(scope, receive, send)
