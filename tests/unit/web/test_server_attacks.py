"""`web.server` against what its first tests missed: an attacker's framing and timing."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import pytest

from tests.unit.web.server_support import Reader, Seen, connect, running


@pytest.mark.serial
@pytest.mark.parametrize("first", [True, False])
def test_empty_lines_alone_do_not_hold_a_connection_open(first: bool) -> None:
    """llhttp skips empty lines before a request line without starting a message, so they
    must not lift the keep-alive timeout without starting the head's."""
    with running(keep_alive_s=1.0, head_timeout_s=1.0) as (server, _):
        sock = connect(server)
        reader = Reader(sock)
        if not first:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            assert reader.reply().status == 200
        started = time.monotonic()
        sock.sendall(b"\r\n")
        time.sleep(0.5)
        sock.sendall(b"\r\n")
        assert reader.closed() or b"408" in reader.buf
        assert time.monotonic() - started < 4


@pytest.mark.parametrize(
    "coding", [b"xchunked", b"gzip chunked", b"gzip;chunked", b"gzip, chunked", b"chunked;q=1"]
)
def test_a_transfer_coding_other_than_chunked_alone_never_reaches_the_app(coding: bytes) -> None:
    """llhttp refuses some of these only after the head's callback (the app would already
    have its scope); the others would hand the app a body it cannot decode."""
    with running() as (server, seen):
        sock = connect(server)
        sock.sendall(
            b"DELETE /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: " + coding + b"\r\n\r\n0\r\n\r\n"
        )
        reader = Reader(sock)
        assert reader.reply().status == 400
        assert reader.closed()
        time.sleep(0.1)
        assert seen.scopes == []


def test_trailer_fields_never_join_the_request_headers() -> None:
    """The layers read the headers before the body (authentication) and after it (a
    multipart boundary, a sub-request's copy): a trailer must not add to them."""
    with running() as (server, seen):
        sock = connect(server)
        sock.sendall(
            b"POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nauthorization: Bearer other\r\ncontent-type: x/y\r\n\r\n"
        )
        reply = Reader(sock).reply()
        assert reply.status == 200
        names = [name for name, _ in seen.scopes[0]["headers"]]
        assert names == [b"host", b"transfer-encoding"]


def test_trailers_count_toward_the_head_limit() -> None:
    with running() as (server, _):
        sock = connect(server)
        many = b"".join(b"t%d: %s\r\n" % (n, b"v" * 1000) for n in range(80))
        sock.sendall(
            b"POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n" + many + b"\r\n"
        )
        reader = Reader(sock)
        assert reader.reply().status == 431
        assert reader.closed()


@pytest.mark.serial
@pytest.mark.parametrize("head", [b"content-length: 100", b"transfer-encoding: chunked"])
def test_a_body_that_stops_coming_is_cut_with_408(head: bytes) -> None:
    """A slow-body client (RUDY) sends a head, then a byte now and then or nothing:
    while the application waits for the body, its next bytes must come within
    `body_timeout_s`, or a connection is held for as long as the client likes."""
    with running(body_timeout_s=1.0) as (server, seen):
        sock = connect(server)
        reader = Reader(sock)
        sock.sendall(b"POST /disconnect HTTP/1.1\r\nhost: a\r\n" + head + b"\r\n\r\n")
        assert seen.entered.wait(5)
        started = time.monotonic()
        assert reader.reply().status == 408
        assert reader.closed()
        assert time.monotonic() - started < 3
        _wait_for(lambda: seen.disconnects == ["http.disconnect"])


@pytest.mark.serial
def test_a_body_that_keeps_coming_is_not_cut() -> None:
    with running(body_timeout_s=1.0) as (server, _):
        sock = connect(server)
        reader = Reader(sock)
        sock.sendall(b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\n\r\n")
        for byte in (b"a", b"b", b"c", b"d"):  # 2.4 s in all, 0.6 s apart
            time.sleep(0.6)
            sock.sendall(byte)
        reply = reader.reply()
        assert reply.status == 200 and b'"body": 4' in reply.body


@pytest.mark.serial
def test_an_app_that_does_not_read_is_no_slow_client() -> None:
    """Reading paused (the application busy, not in `receive`) is not the client's delay."""
    seen = Seen()
    with running(seen, body_timeout_s=1.0) as (server, _):
        sock = connect(server)
        sock.sendall(b"POST /slow HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello")
        assert seen.entered.wait(5)
        time.sleep(2.2)
        seen.release.set()
        assert Reader(sock).reply().status == 200


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_two_host_headers_are_refused() -> None:
    """RFC 9112 3.2: 400. The console's Host check reads the first, a proxy may route by
    the last."""
    with running() as (server, seen):
        sock = connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n")
        reader = Reader(sock)
        assert reader.reply().status == 400 and reader.closed()
        time.sleep(0.1)
        assert seen.scopes == []


def test_an_http_1_0_client_gets_no_100_continue() -> None:
    """RFC 9110 10.1.1: a 1.0 client may take the interim answer for the final one."""
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(
            b"POST /x HTTP/1.0\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n"
        )
        time.sleep(0.2)
        sock.sendall(b"hello")
        reader = Reader(sock)
        assert reader.reply().status == 200


@pytest.mark.serial
def test_a_client_that_stops_reading_is_cut() -> None:
    """A slow reader (a stream's client that never reads) held its call, and the upstream
    generation and slots behind it, for as long as it liked."""
    with running(send_timeout_s=1.0) as (server, seen):
        sock = connect(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /flood HTTP/1.1\r\nhost: a\r\n\r\n")
        started = time.monotonic()
        _wait_for(lambda: seen.disconnects == ["flooded"])  # its sends no-ops once cut
        assert time.monotonic() - started < 4


def test_a_failing_calls_log_line_cannot_be_forged_through_its_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The path is percent-decoded: `%0a` would start a log line of the client's own."""
    with running() as (server, _), caplog.at_level(logging.ERROR, logger="bulkhead.web"):
        sock = connect(server)
        sock.sendall(b"GET /boom%0aINFO%20forged HTTP/1.1\r\nhost: a\r\n\r\n")
        assert Reader(sock).reply().status == 500
        _wait_for(lambda: bool(caplog.records))
    assert all("\n" not in record.getMessage() for record in caplog.records)


def test_connections_past_the_limit_get_503_and_are_closed() -> None:
    """Each connection holds a parser and buffers: a flood of sockets is bounded."""
    with running(max_connections=2) as (server, _):
        held = [connect(server), connect(server)]
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            assert Reader(sock).reply().status == 200
        extra = Reader(connect(server))
        reply = extra.reply()
        assert reply.status == 503 and reply.headers["connection"] == "close"
        assert extra.closed()
        held[0].close()
        deadline = time.monotonic() + 5
        while True:  # the server sees the close on its next read
            sock = connect(server)
            sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            if (status := Reader(sock).reply().status) == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 200
