"""The catalog listener's reconnect logic, against fake connections (no database)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bulkhead.store.catalog import Catalog
from bulkhead.store.listen import CatalogListener, payload_version


class Broken(Exception):
    pass


@dataclass
class Notice:
    payload: str


@dataclass
class FakeConnection:
    """Serves `script`: each `notifies` call yields the next batch; past it, the link breaks."""

    version: list[int]
    script: list[list[str]]
    queries: list[str] = field(default_factory=list)
    closed: bool = False

    def execute(self, query: str) -> Any:
        self.queries.append(query)
        return self

    def fetchone(self) -> tuple[int]:
        return (self.version[0],)

    def notifies(self, *, timeout: float | None = None) -> Iterator[Notice]:
        if not self.script:
            raise Broken("server closed the connection")
        for payload in self.script.pop(0):
            yield Notice(payload)

    def close(self) -> None:
        self.closed = True


class Harness:
    def __init__(self, plan: list[FakeConnection | Exception]):
        self.plan = plan
        self.opened: list[FakeConnection] = []
        self.changes: list[int | None] = []
        self.confirmed: list[tuple[float, int]] = []
        self.done = threading.Event()
        self.listener = CatalogListener(
            self.connect,
            on_change=self.changes.append,
            on_confirmed=lambda at, v: self.confirmed.append((at, v)),
            ping_s=0.0,
            backoff_s=(0.001, 0.004),
        )

    def connect(self) -> FakeConnection:
        if not self.plan:
            self.done.set()
            self.listener._stop.set()
            raise Broken("no more connections in the plan")
        step = self.plan.pop(0)
        if isinstance(step, Exception):
            raise step
        self.opened.append(step)
        return step

    def run(self) -> None:
        thread = threading.Thread(target=self.listener.run, daemon=True)
        thread.start()
        assert self.done.wait(5), "the listener stopped reconnecting"
        thread.join(5)
        assert not thread.is_alive()


def test_it_reconnects_after_failures_and_rereads_the_version_each_time() -> None:
    version = [3]
    first = FakeConnection(version, [["4"], ["5", "junk"]])
    second = FakeConnection(version, [[]])
    h = Harness([OSError("refused"), first, Broken("restarting"), Broken("again"), second])
    h.run()
    # Two connections made it, each closed after its link broke; each began with LISTEN.
    assert h.listener.connections == 2
    assert first.closed and second.closed
    for conn in (first, second):
        assert conn.queries[0] == "LISTEN bulkhead_catalog"
        assert "SELECT version FROM catalog_version" in conn.queries
    # The version read on connecting (3) is a change to look at; so is each notification,
    # and a payload that is no version still wakes the reload (it reads the version itself).
    assert h.changes == [3, 4, 5, None]
    assert h.listener.heard == 5
    assert not h.listener.healthy


def test_a_version_missed_while_away_is_found_by_the_ping() -> None:
    version = [7]

    class ChangedWhileAway(FakeConnection):
        def close(self) -> None:
            super().close()
            version[0] = 9  # committed while the listener was away: no notification for it

    h = Harness([ChangedWhileAway(version, []), FakeConnection(version, [])])
    h.run()
    assert h.changes == [7, 9]
    assert [v for _, v in h.confirmed] == [7, 9]


def test_confirmation_needs_the_snapshot_to_hold_what_was_heard() -> None:
    now = [100.0]
    catalog = Catalog(None, clock=lambda: now[0])  # type: ignore[arg-type]
    catalog.watch(1.0)
    now[0] = 100.5
    assert not catalog.stale()
    catalog.confirm(100.5, newest=1)  # the snapshot (version 0) misses version 1
    now[0] = 101.6
    assert catalog.stale()
    catalog.confirm(101.5, newest=0)
    assert not catalog.stale()
    catalog.watch(0)
    now[0] = 1000.0
    assert not catalog.stale()  # 0: never stale


@pytest.mark.parametrize(("payload", "version"), [("12", 12), ("", None), ("x", None)])
def test_payloads(payload: str, version: int | None) -> None:
    assert payload_version(payload) == version


@pytest.mark.serial
def test_stop_ends_a_listener_waiting_to_reconnect() -> None:
    listener = CatalogListener(
        lambda: (_ for _ in ()).throw(OSError("down")),
        on_change=lambda v: None,
        on_confirmed=lambda at, v: None,
        backoff_s=(10.0, 10.0),
    ).start()
    time.sleep(0.05)
    started = time.monotonic()
    listener.stop()
    assert time.monotonic() - started < 2
    assert not listener.healthy
