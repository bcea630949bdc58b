"""Push for the catalog: every replica LISTENs for the NOTIFY a control-plane change sends.

`repo.bump_version` sends `NOTIFY bulkhead_catalog, '<version>'` in the
writer's transaction, so PostgreSQL delivers it when (and only if) the change
commits.  `CatalogListener` holds one dedicated connection per replica, in a
thread of its own (never the event loop, never the pool), and calls
`on_change` for each notification; the application then reloads its catalog
off the event loop.

It reconnects by itself, with a capped backoff, when the database goes away
(a restart, a dropped connection).  Notifications sent while it was away are
lost; that is why, every `ping_s` between notifications, it reads the version
row on the same connection: a version newer than any heard calls `on_change`
too, and the version read (the newest when the ping was sent) goes to
`on_confirmed`, the catalog's freshness clock (`Catalog.confirm`).  `healthy`
says whether the push is working; while it is not, the application polls
more often.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from bulkhead.store.repo import CATALOG_CHANNEL

log = logging.getLogger("bulkhead.catalog")
_VERSION = "SELECT version FROM catalog_version"


class _Notify(Protocol):
    @property
    def payload(self) -> str: ...


class _Cursor(Protocol):
    def fetchone(self) -> Sequence[Any] | None: ...


class Connection(Protocol):
    """What the listener needs of a psycopg connection (a fake one in the unit tests)."""

    def execute(self, query: str) -> _Cursor: ...

    def notifies(self, *, timeout: float | None = None) -> Iterable[_Notify]: ...

    def close(self) -> None: ...


def psycopg_connector(url: str, *, timeout_s: float = 2.0) -> Callable[[], Connection]:
    """A function that opens an autocommit psycopg connection to the SQLAlchemy `url`."""
    import psycopg

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    def connect() -> Connection:
        return psycopg.connect(
            conninfo,
            autocommit=True,
            connect_timeout=max(1, round(timeout_s)),
            application_name="bulkhead-catalog-listener",
        )

    return connect


def payload_version(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None


class CatalogListener:
    """One thread, one connection: LISTEN, hear, ping, and reconnect when it breaks."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        *,
        on_change: Callable[[int | None], None],
        on_confirmed: Callable[[float, int], None],
        ping_s: float = 0.25,
        backoff_s: tuple[float, float] = (0.1, 2.0),
        clock: Callable[[], float] = time.monotonic,
    ):
        self._connect = connect
        self._on_change = on_change  # a version heard, or None: read the version again
        self._on_confirmed = on_confirmed  # (when, the highest version heard so far)
        self.ping_s = ping_s
        self._backoff = backoff_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self.healthy = False
        self.heard = 0  # the highest version a notification carried
        self.connections = 0  # how many times it (re)connected, for tests and metrics

    def start(self) -> CatalogListener:
        self._thread = threading.Thread(target=self.run, name="catalog-listener", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        """Until stopped: connect, listen until the connection breaks, back off, again."""
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                connection = self._connect()
            except Exception as exc:  # The database is away: try again, a little later each time.
                log.warning("catalog listener cannot connect: %s", type(exc).__name__)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            try:
                self._listen(connection)
            except Exception as exc:  # A restart or a dropped connection: reconnect.
                if not self._stop.is_set():
                    log.warning("catalog listener lost its connection: %s", type(exc).__name__)
            finally:
                self.healthy = False
                try:
                    connection.close()
                except Exception:  # Closing a broken connection may fail too; it is gone.
                    log.debug("closing the listener's connection failed")
            self._stop.wait(delay)

    def _listen(self, connection: Connection) -> None:
        connection.execute(f"LISTEN {CATALOG_CHANNEL}")
        self.connections += 1
        self.healthy = True
        while not self._stop.is_set():
            # The ping reads the version: what it reads was the newest when it was sent,
            # whether or not a notification for it came (none does for changes made
            # while this connection was away).
            started = self._clock()
            row = connection.execute(_VERSION).fetchone()
            newest = int(row[0]) if row is not None else 0
            if newest > self.heard:
                self.heard = newest
                self._on_change(newest)
            self._on_confirmed(started, self.heard)
            self._hear(connection.notifies(timeout=self.ping_s))

    def _hear(self, notifications: Iterable[_Notify]) -> None:
        for notification in notifications:
            version = payload_version(notification.payload)
            if version is not None:
                self.heard = max(self.heard, version)
            self._on_change(version)
