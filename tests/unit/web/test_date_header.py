"""The `date` header is made by the first answer in a second, not by a timer: it must still be
the current second's, across a second's boundary and after the clock is set back."""

from __future__ import annotations

import time
import types
from email.utils import formatdate

import pytest

from bulkhead.web import h1server
from bulkhead.web.h1server import ServerState
from bulkhead.web.server import ServerConfig

T = 1_796_652_000.0  # Mon, 07 Dec 2026 14:00:00 GMT


async def _app(scope: object, receive: object, send: object) -> None:
    """Never called: the state is only asked for its date."""


def _line(at: float) -> bytes:
    return b"date: %s\r\n" % formatdate(at, usegmt=True).encode()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [T]
    monkeypatch.setattr(h1server, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


def test_the_date_is_the_current_seconds_across_a_boundary(clock: list[float]) -> None:
    state = ServerState(_app, ServerConfig())
    assert state.date_header == _line(T) == b"date: Mon, 07 Dec 2026 14:00:00 GMT\r\n"
    clock[0] = T + 0.999_999
    assert state.date_header == _line(T)
    clock[0] = T + 1.0  # the boundary itself belongs to the next second
    assert state.date_header == b"date: Mon, 07 Dec 2026 14:00:01 GMT\r\n"
    clock[0] = T + 3_600.5  # an idle hour: nothing ticked, the first answer renews it
    assert state.date_header == b"date: Mon, 07 Dec 2026 15:00:00 GMT\r\n"


def test_a_clock_set_back_is_followed(clock: list[float]) -> None:
    state = ServerState(_app, ServerConfig())
    clock[0] = T + 10.2
    assert state.date_header == _line(T + 10)
    clock[0] = T + 9.9  # NTP stepped the clock back
    assert state.date_header == _line(T + 9)
    clock[0] = T - 86_400
    assert state.date_header == b"date: Sun, 06 Dec 2026 14:00:00 GMT\r\n"


def test_a_real_answer_carries_todays_date() -> None:
    """Unpatched: the line is the clock's now (one second's slack for the boundary)."""
    state = ServerState(_app, ServerConfig())
    before = time.time()
    line = state.date_header
    assert line in (_line(before), _line(before + 1))
    assert line.startswith(b"date: ") and line.endswith(b" GMT\r\n")
