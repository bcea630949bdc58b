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
opened at start-up) fails that request like any other error and is tried again
by the next one; nothing is ever served without it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from bulkhead.web.scope import ASGIApp, Receive, Scope, Send

T = TypeVar("T")


class Deferred(Generic[T]):
    """`make()`'s result, made once by the first caller of `get` (from any thread)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: T | None = None
        self._lock = threading.Lock()

    @property
    def made(self) -> bool:
        return self._made is not None

    def get(self) -> T:
        made = self._made
        if made is None:
            with self._lock:
                if self._made is None:
                    self._made = self._make()
                made = self._made
        return made

    async def ready(self) -> T:
        """`get`, off the event loop the first time (importing takes tens of ms of CPU)."""
        made = self._made
        return made if made is not None else await asyncio.to_thread(self.get)


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
