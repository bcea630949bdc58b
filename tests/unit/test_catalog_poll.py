"""The catalog poll of a running gateway on SQLite: an idle look costs no thread and no
transaction, yet a change another process commits is in force within `catalog_poll_s`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.domain import Tier
from bulkhead.store import Database, repo
from tests.support.gateway import GatewayThread

pytestmark = pytest.mark.serial

SLACK_S = 0.5  # a loaded test machine's scheduling, on top of the setting's bound


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[GatewayThread]:
    started = GatewayThread(tmp_path / "data", None).start()
    yield started
    started.stop()


def test_an_idle_poll_hops_to_no_thread_but_a_change_arrives_in_time(
    gw: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog, every = gw.app.catalog, gw.settings.catalog_poll_s
    assert gw.app.db.dialect == "sqlite" and every == 1.0
    looks: list[float] = []
    real = catalog.refresh_if_changed

    def counted() -> bool:
        looks.append(time.monotonic())
        return real()

    monkeypatch.setattr(catalog, "refresh_if_changed", counted)
    time.sleep(every + SLACK_S)  # the first look reads the version on a thread
    looks.clear()
    time.sleep(2.5 * every)
    assert looks == []  # nothing committed: answered on the event loop
    assert catalog.unconfirmed_s() < every + SLACK_S  # ...and still confirmed fresh

    other = Database(gw.settings.database_url)  # another process's connection, in effect
    try:
        with other.platform_transaction() as session:
            tenant = repo.create_tenant(session, "elsewhere", Tier.SHARED)
        committed = time.monotonic()
        while tenant.id not in catalog.snapshot.tenants:
            assert time.monotonic() - committed < every + SLACK_S, "the change did not arrive"
            time.sleep(0.01)
    finally:
        other.dispose()
    assert len(looks) >= 1  # the commit sent the poll the long way


def test_a_busy_counter_sends_the_poll_the_long_way(gw: GatewayThread) -> None:
    """The quick look never waits: with the counter's lock held it says `look`, at once."""
    catalog = gw.app.catalog
    time.sleep(gw.settings.catalog_poll_s + SLACK_S)
    watch = catalog._commits
    assert watch is not None
    with watch._lock:
        started = time.monotonic()
        assert catalog.confirm_if_unchanged() is False
        assert time.monotonic() - started < 0.05
    assert catalog.refresh_if_changed() is False
    assert catalog.confirm_if_unchanged() is True
