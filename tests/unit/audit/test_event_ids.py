"""Event ids: unique, of the one accepted form, and in the order they were made.

The order is what keeps the log's unique index on `event_id` growing at its
right edge (one page per audit commit); the form is what the writer accepts
(`append._EVENT_ID`), so a fresh id is never replaced by yet another.
"""

from __future__ import annotations

import re
import time

import pytest

from bulkhead.audit import append
from bulkhead.audit.events import AuditEvent, new_event_id


def test_ids_have_the_form_the_writer_keeps_and_never_repeat() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert all(append._EVENT_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    # 80 of the 128 bits are random: the ids of one millisecond differ there.
    assert len({i[12:] for i in ids}) == len(ids)


def test_ids_sort_in_the_order_they_were_made(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    for step in range(50):
        monkeypatch.setattr(time, "time_ns", lambda step=step: (1_700_000_000_000 + step) * 10**6)
        made.append(new_event_id())
    assert made == sorted(made)
    assert made[0].startswith(f"{1_700_000_000_000:012x}")


def test_events_and_substitutes_get_such_ids() -> None:
    event = AuditEvent(action="v1:chat", outcome="success", status=200)
    assert re.fullmatch("[0-9a-f]{32}", event.event_id)
    event.event_id = "\u00e9t\u00e9"  # not plain ASCII: the substitute does not repeat it
    stand_in = append.substitute(event, ValueError("boom"))
    assert append._EVENT_ID.fullmatch(stand_in.event_id)
    assert stand_in.event_id != event.event_id
