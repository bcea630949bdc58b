"""`web.server` over raw sockets: the HTTP/1.1 it speaks, and what an attacker sends it."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bulkhead.errors import ConfigError
from bulkhead.settings import load
from bulkhead.web.h1server import MAX_HEAD_BYTES, MAX_HEADERS, MAX_PIPELINED
from tests.unit.web.server_support import Reader, Seen, connect, running

POST = b"POST /v1/x?q=1 HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello"


def test_keep_alive_answers_several_requests_on_one_connection() -> None:
    with running() as (server, _):
        sock = connect(server)
        reader = Reader(sock)
        for _ in range(3):
            sock.sendall(POST)
            reply = reader.reply()
            assert reply.status == 200 and "connection" not in reply.headers
            assert json.loads(reply.body) == {
                "method": "POST",
                "path": "/v1/x",
                "query": "q=1",
                "body": 5,
                "tls": False,
            }
            assert "date" in reply.headers


def test_a_chunked_request_body_is_streamed_to_the_app() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(
            b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        time.sleep(0.05)
        sock.sendall(b"2\r\nde\r\n0\r\n\r\n")
        assert json.loads(Reader(sock).reply().body)["body"] == 5


def test_a_response_without_a_length_is_chunked_as_server_sent_events() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /stream HTTP/1.1\r\nhost: a\r\n\r\n")
        reply = Reader(sock).reply()
        assert reply.headers["transfer-encoding"] == "chunked"
        assert reply.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_http_1_0_gets_its_body_until_the_close() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
        reader = Reader(sock)
        head = reader._until(b"\r\n\r\n")
        assert b"transfer-encoding" not in head and b"connection: close" in head
        while reader._fill():
            pass
        assert reader.buf == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_head_gets_the_headers_and_no_body() -> None:
    with running() as (server, _):
        sock = connect(server)
        reader = Reader(sock)
        sock.sendall(b"HEAD / HTTP/1.1\r\nhost: a\r\n\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n")
        head = reader.reply(head_only=True)
        assert head.status == 200 and int(head.headers["content-length"]) > 0
        assert json.loads(reader.reply().body)["method"] == "GET"  # nothing was left between


@pytest.mark.parametrize(
    "expect",
    [b"expect: 100-continue", b"Expect: 100-Continue \t"],  # read whatever its case and blanks
)
def test_100_continue_is_sent_when_the_app_reads_the_body(expect: bytes) -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(b"POST / HTTP/1.1\r\nhost: a\r\n" + expect + b"\r\ncontent-length: 3\r\n\r\n")
        reader = Reader(sock)
        assert reader.reply(head_only=True).status == 100
        sock.sendall(b"abc")
        assert json.loads(reader.reply().body)["body"] == 3


def test_100_continue_is_not_sent_for_a_body_the_app_refuses_unread() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(
            b"POST /refuse HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 9\r\n\r\n"
        )
        assert Reader(sock).reply().status == 413


def test_a_body_past_the_apps_limit_is_answered_and_the_rest_never_read() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(b"POST /refuse HTTP/1.1\r\nhost: a\r\ncontent-length: 1000000000\r\n\r\n")
        sock.sendall(b"a" * 65536)
        reader = Reader(sock)
        reply = reader.reply()
        assert reply.status == 413 and reply.headers["connection"] == "close"
        assert reader.closed()


def test_the_http_server_setting_picks_one_of_two(tmp_path: Path) -> None:
    assert load(data_dir=tmp_path, env={}).http_server == "bulkhead"
    uvicorn = {"BULKHEAD_HTTP_SERVER": "Uvicorn", "BULKHEAD_HTTP_UVICORN_UNBOUNDED": "1"}
    chosen = load(data_dir=tmp_path, env=uvicorn)
    assert chosen.http_server == "uvicorn"
    with pytest.raises(ConfigError, match="BULKHEAD_HTTP_SERVER must be one of uvicorn, bu"):
        load(data_dir=tmp_path, env={"BULKHEAD_HTTP_SERVER": "nginx"})


def test_pipelined_requests_are_answered_in_order() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(
            b"GET /a HTTP/1.1\r\nhost: a\r\n\r\n" + POST + b"GET /c HTTP/1.1\r\nhost: a\r\n\r\n"
        )
        reader = Reader(sock)
        paths = [json.loads(reader.reply().body)["path"] for _ in range(3)]
        assert paths == ["/a", "/v1/x", "/c"]


def test_a_pipeline_deeper_than_the_limit_is_answered_in_part_then_closed() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /a HTTP/1.1\r\nhost: a\r\n\r\n" * (MAX_PIPELINED + 10))
        reader = Reader(sock)
        answered = 0
        with pytest.raises(EOFError):
            while True:
                assert reader.reply().status == 200
                answered += 1
        assert 1 <= answered <= MAX_PIPELINED + 1 and reader.buf == b""


def test_garbage_after_a_pipelined_request_closes_after_its_answer() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /a HTTP/1.1\r\nhost: a\r\n\r\nNOT HTTP AT ALL\r\n\r\n")
        reader = Reader(sock)
        assert json.loads(reader.reply().body)["path"] == "/a"
        assert reader.closed()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost a\r\n\r\n",  # no colon
        b"GET / HTTP/1.1\r\nbad name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nx: a\x00b\r\n\r\n",
        # Smuggling: two framings, or one that two servers would read differently.
        b"POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3, 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip\r\n\r\nabc",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: +3\r\n\r\nabc",
        b"GET / HTTP/1.1\r\nhost: a\r\nx: a\r\n b\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\nhost: a\n\n",  # bare LF
        b"GET / HTTP/1.1\r\nhost: a\rx: b\r\n\r\n",  # bare CR
        b"GET /\x7f HTTP/1.1\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nhost: a\r\n\r\n",
        b"GET http://[::1 HTTP/1.1\r\nhost: a\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nhost: a\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ],
)
def test_a_malformed_or_ambiguous_request_is_refused_with_400_and_closed(
    request_bytes: bytes,
) -> None:
    with running() as (server, seen):
        sock = connect(server)
        sock.sendall(request_bytes)
        reader = Reader(sock)
        assert reader.reply().status == 400
        assert reader.closed()
        assert seen.scopes == []  # the app never saw it


def test_an_upgrade_is_answered_as_http_then_closed_and_what_follows_unread() -> None:
    with running() as (server, seen):
        sock = connect(server)
        upgrade = b"connection: upgrade\r\nupgrade: websocket\r\n"
        sock.sendall(b"GET /u HTTP/1.1\r\nhost: a\r\n" + upgrade + b"\r\nGET /v HTTP/1.1\r\n\r\n")
        reader = Reader(sock)
        reply = reader.reply()
        assert reply.status == 200 and reply.headers["connection"] == "close"
        assert reader.closed() and [scope["path"] for scope in seen.scopes] == ["/u"]


def test_a_head_past_the_size_limit_gets_431() -> None:
    with running() as (server, seen):
        sock = connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nx: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n")
        reader = Reader(sock)
        assert reader.reply().status == 431 and reader.closed() and seen.scopes == []


def test_a_url_past_the_size_limit_gets_431() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n")
        assert Reader(sock).reply().status == 431


def test_too_many_headers_get_431() -> None:
    with running() as (server, _):
        sock = connect(server)
        lines = b"".join(b"x%d: y\r\n" % n for n in range(MAX_HEADERS + 1))
        sock.sendall(b"GET / HTTP/1.1\r\n" + lines + b"\r\n")
        assert Reader(sock).reply().status == 431


def test_many_headers_within_the_limit_are_served() -> None:
    with running() as (server, seen):
        sock = connect(server)
        lines = b"".join(b"x%d: y \r\n" % n for n in range(MAX_HEADERS - 1))
        sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\n" + lines + b"\r\n")
        assert Reader(sock).reply().status == 200
        assert (b"x0", b"y") in seen.scopes[0]["headers"]  # trailing whitespace trimmed


@pytest.mark.serial
def test_a_slowloris_head_is_cut_with_408() -> None:
    with running(head_timeout_s=1.0) as (server, _):
        sock = connect(server)
        started = time.monotonic()
        reader = Reader(sock)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        with pytest.raises((BrokenPipeError, ConnectionResetError, EOFError)):
            for _ in range(50):  # a byte every 0.2 s: each resets nothing
                sock.sendall(b"x")
                time.sleep(0.2)
            reader.reply()
        reply_or_none = reader.buf
        assert b"408" in reply_or_none or reply_or_none == b""
        assert time.monotonic() - started < 4


@pytest.mark.serial
def test_an_idle_keep_alive_connection_closes_after_its_timeout() -> None:
    with running(keep_alive_s=1.0) as (server, _):
        sock = connect(server)
        reader = Reader(sock)
        sock.sendall(POST)
        assert reader.reply().status == 200
        started = time.monotonic()
        assert reader.closed()
        assert 0.9 < time.monotonic() - started < 3


def test_a_half_closed_client_is_a_client_gone() -> None:
    """As with uvicorn: the connection closes and the call is told `http.disconnect`."""
    with running() as (server, seen):
        sock = connect(server)
        sock.sendall(b"POST /disconnect HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\nabc")
        assert seen.entered.wait(5)
        sock.shutdown(socket.SHUT_WR)
        assert Reader(sock).closed()
        _wait_for(lambda: seen.disconnects == ["http.disconnect"])


def test_a_malformed_chunk_in_a_body_is_400_and_the_call_is_told_disconnect() -> None:
    with running() as (server, seen):
        sock = connect(server)
        head = b"POST /disconnect HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
        sock.sendall(head + b"3\r\nabc\r\n")
        assert seen.entered.wait(5)
        sock.sendall(b"zz\r\nabc\r\n0\r\n\r\n")
        reader = Reader(sock)
        assert reader.reply().status == 400 and reader.closed()
        _wait_for(lambda: seen.disconnects == ["http.disconnect"])


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_client_gone_mid_call_is_told_http_disconnect() -> None:
    with running() as (server, seen):
        sock = connect(server)
        sock.sendall(b"POST /disconnect HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\nabc")
        assert seen.entered.wait(5)
        sock.close()
        _wait_for(lambda: seen.disconnects == ["http.disconnect"])


def test_after_the_whole_body_receive_waits_for_the_client_to_go() -> None:
    with running() as (server, seen):
        sock = connect(server)
        sock.sendall(POST.replace(b"/v1/x?q=1", b"/listen"))
        assert seen.entered.wait(5)
        time.sleep(0.2)
        assert seen.disconnects == []  # not an empty `http.request` again and again
        sock.close()
        _wait_for(lambda: seen.disconnects == ["http.disconnect"])


def test_a_failing_app_gets_500_and_the_connection_closes() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /boom HTTP/1.1\r\nhost: a\r\n\r\n")
        reader = Reader(sock)
        reply = reader.reply()
        assert reply.status == 500 and b"the app's bug" not in reply.body
        assert reader.closed()


def test_a_response_header_that_would_split_the_response_is_refused() -> None:
    with running() as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /split HTTP/1.1\r\nhost: a\r\n\r\n")
        reader = Reader(sock)
        reply = reader.reply()
        assert reply.status == 500 and b"b: c" not in reply.raw_head


def test_a_percent_encoded_path_is_decoded_and_raw_path_kept() -> None:
    with running() as (server, seen):
        sock = connect(server)
        sock.sendall(b"GET /a%2Fb%20c HTTP/1.1\r\nhost: a\r\n\r\n")
        assert Reader(sock).reply().status == 200
        assert seen.scopes[0]["path"] == "/a/b c" and seen.scopes[0]["raw_path"] == b"/a%2Fb%20c"


def test_the_drain_finishes_calls_in_flight_with_connection_close() -> None:
    seen = Seen()
    with running(seen) as (server, _):
        busy, idle = connect(server), connect(server)
        idle_reader = Reader(idle)
        idle.sendall(POST)
        assert idle_reader.reply().status == 200
        busy.sendall(b"GET /slow HTTP/1.1\r\nhost: a\r\n\r\n")
        assert seen.entered.wait(5)
        server.should_exit = True
        time.sleep(0.3)
        with pytest.raises(OSError):  # the listener is closed
            connect(server, timeout=1).sendall(POST)
        # The idle connection is still open: a call on it is answered, then it closes.
        idle.sendall(POST)
        reply = idle_reader.reply()
        assert reply.status == 200 and reply.headers["connection"] == "close"
        assert idle_reader.closed()
        seen.release.set()
        reader = Reader(busy)
        reply = reader.reply()
        assert reply.status == 200 and reply.headers["connection"] == "close"
        assert reader.closed()


@pytest.mark.serial
def test_an_idle_server_has_no_timer_and_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no connection open the deadline tick sleeps until one opens: nothing runs."""
    checks: list[float] = []
    with running() as (server, _):
        monkeypatch.setattr(server, "_check_deadlines", checks.append)
        time.sleep(1.3)
        assert checks == []
        sock = connect(server)  # the first connection wakes the tick, which then runs
        _wait_for(lambda: len(checks) >= 2)
        sock.close()
        asked = time.monotonic()
        server.should_exit = True
        while server.servers[0].is_serving():
            time.sleep(0.01)
        assert time.monotonic() - asked < 0.5
