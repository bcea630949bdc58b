"""The `date` header without an idle clock: the server renews it on the second only while a
connection is open, and the first connection to open renews it before its first answer,
so every answer carries the current second (within the tick's millisecond)."""

from __future__ import annotations

import time
from email.utils import formatdate, parsedate_to_datetime

import pytest

from bulkhead.web.h1server import ServerState
from bulkhead.web.server import ServerConfig
from tests.unit.web.server_support import Reader, connect, running

POST = b"POST /v1/x HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello"
STALE = b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"


async def _app(scope: object, receive: object, send: object) -> None:
    """Never called: the state is only asked for its date."""


def _age_s(header: str) -> float:
    """How far the header's second is from now (0 for this second)."""
    return abs(time.time() - parsedate_to_datetime(header).timestamp())


def test_a_renewed_date_is_this_seconds() -> None:
    state = ServerState(_app, ServerConfig())
    before = time.time()
    state.renew_date()
    assert state.date_header in (
        b"date: %s\r\n" % formatdate(before, usegmt=True).encode(),
        b"date: %s\r\n" % formatdate(before + 1, usegmt=True).encode(),
    )
    state.date_header = STALE
    state.on_first_connection()  # a bare state (benches) renews it too
    assert state.date_header != STALE


@pytest.mark.serial
def test_the_first_connection_after_an_idle_spell_gets_the_current_date() -> None:
    with running() as (server, _):
        time.sleep(1.2)  # idle: no tick ran, so nothing renewed the date
        server.state.date_header = STALE  # as if the server had idled since 1970
        sock = connect(server)
        sock.sendall(POST)
        reply = Reader(sock).reply()
        assert reply.status == 200
        assert _age_s(reply.headers["date"]) < 2


@pytest.mark.serial
def test_while_a_connection_is_open_the_date_follows_the_clock() -> None:
    with running() as (server, _):
        sock = connect(server)
        reader = Reader(sock)
        sock.sendall(POST)
        assert reader.reply().status == 200
        server.state.date_header = STALE
        time.sleep(1.2)  # one tick on the second, at least
        sock.sendall(POST)
        reply = reader.reply()
        assert _age_s(reply.headers["date"]) < 2
