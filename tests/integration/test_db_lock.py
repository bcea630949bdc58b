"""`Database.lock`: on PostgreSQL one holder at a time across connections (and so processes)."""

from __future__ import annotations

import threading
import time

from bulkhead.store import Database


def test_lock_is_held_by_one_at_a_time(db_url: str) -> None:
    db = Database(db_url)
    order: list[str] = []
    entered = threading.Event()

    def first() -> None:
        with db.lock("bulkhead/test"):
            entered.set()
            order.append("first in")
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(5)
    started = time.monotonic()
    with db.lock("bulkhead/test"):
        waited = time.monotonic() - started
        order.append("second in")
    with db.lock("bulkhead/other"):  # another name is another lock
        pass
    thread.join()
    db.dispose()
    if db.dialect == "postgresql":
        assert order == ["first in", "first out", "second in"]
        assert waited >= 0.2
