"""The HTTP servers' limits as settings: `BULKHEAD_HTTP_*` reach the server `bulkhead serve`
builds, each only within a safe range, and uvicorn (which cannot bound a slow client) runs
only with the operator's acknowledgement."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bulkhead.cli.serve import server_config, uvicorn_config
from bulkhead.errors import ConfigError
from bulkhead.settings import SETTINGS, load
from bulkhead.web.drain import DrainingServer
from bulkhead.web.server import Server, ServerConfig
from tests.support.threaded import serving
from tests.unit.web.server_support import Reader, Seen, connect, make_app, running

LIMITS = {
    "BULKHEAD_HTTP_KEEP_ALIVE_S": "keep_alive_s",
    "BULKHEAD_HTTP_HEAD_TIMEOUT_S": "head_timeout_s",
    "BULKHEAD_HTTP_BODY_TIMEOUT_S": "body_timeout_s",
    "BULKHEAD_HTTP_SEND_TIMEOUT_S": "send_timeout_s",
    "BULKHEAD_HTTP_MAX_CONNECTIONS": "max_connections",
}
UVICORN = {"BULKHEAD_HTTP_SERVER": "uvicorn", "BULKHEAD_HTTP_UVICORN_UNBOUNDED": "1"}


def test_the_defaults_are_the_servers_own(tmp_path: Path) -> None:
    config = server_config(load(data_dir=tmp_path, env={}), None)
    for name in LIMITS.values():
        assert getattr(config, name) == getattr(ServerConfig(), name), name


def test_each_setting_reaches_the_server_serve_builds(tmp_path: Path) -> None:
    env = dict(zip(LIMITS, ("7", "11", "31", "61", "123"), strict=True))
    env["BULKHEAD_SHUTDOWN_GRACE_S"] = "9"
    settings = load(data_dir=tmp_path, host="127.0.0.2", port=1234, env=env)
    config = server_config(settings, None)
    wanted = {"keep_alive_s": 7, "head_timeout_s": 11, "body_timeout_s": 31}
    wanted |= {"send_timeout_s": 61, "max_connections": 123, "grace_s": 9}
    assert {name: getattr(config, name) for name in wanted} == wanted
    assert (config.host, config.port) == ("127.0.0.2", 1234)
    state = Server(make_app(Seen()), config).state  # what each connection reads
    for name in LIMITS.values():
        assert getattr(state, name) == getattr(config, name)


@pytest.mark.parametrize("variable", LIMITS)
def test_no_limit_can_be_off_or_unbounded(tmp_path: Path, variable: str) -> None:
    row = next(r for r in SETTINGS if r.env == variable)
    assert row.lo is not None and row.lo >= 1 and row.hi is not None
    for value in ("0", "-1", str(row.hi + 1), "1e9", ""):
        if value == "":
            assert getattr(load(data_dir=tmp_path, env={variable: value}), row.name) > 0
            continue
        with pytest.raises(ConfigError, match=variable):
            load(data_dir=tmp_path, env={variable: value})


def test_the_limits_are_safe_at_their_bounds() -> None:
    rows = {row.env: row for row in SETTINGS}
    # A slow head or body may hold a connection for minutes, not hours; a cap is a cap.
    assert rows["BULKHEAD_HTTP_HEAD_TIMEOUT_S"].hi == 120
    assert rows["BULKHEAD_HTTP_BODY_TIMEOUT_S"].hi == rows["BULKHEAD_HTTP_SEND_TIMEOUT_S"].hi == 600
    assert rows["BULKHEAD_HTTP_KEEP_ALIVE_S"].hi == 300
    assert rows["BULKHEAD_HTTP_MAX_CONNECTIONS"].hi == 100_000


def test_uvicorn_is_refused_without_the_acknowledgement(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(data_dir=tmp_path, env={"BULKHEAD_HTTP_SERVER": "uvicorn"})
    assert "BULKHEAD_HTTP_UVICORN_UNBOUNDED=1" in caught.value.message
    assert "no head, body or send timeout" in caught.value.message
    refused = {"BULKHEAD_HTTP_SERVER": "uvicorn", "BULKHEAD_HTTP_UVICORN_UNBOUNDED": "0"}
    with pytest.raises(ConfigError):
        load(data_dir=tmp_path, env=refused)
    assert load(data_dir=tmp_path, env=UVICORN).http_uvicorn_unbounded
    # The acknowledgement alone changes nothing for the default server.
    alone = load(data_dir=tmp_path, env={"BULKHEAD_HTTP_UVICORN_UNBOUNDED": "1"})
    assert alone.http_server == "bulkhead"


@pytest.mark.parametrize("value", ["2", "on", "maybe"])
def test_the_acknowledgement_is_one_or_zero(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="BULKHEAD_HTTP_UVICORN_UNBOUNDED must be 1 or 0"):
        load(data_dir=tmp_path, env={"BULKHEAD_HTTP_UVICORN_UNBOUNDED": value})


def test_serve_refuses_uvicorn_before_it_builds_anything(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "BULKHEAD_HTTP_SERVER": "uvicorn"}
    done = subprocess.run(
        [sys.executable, "-c", "from bulkhead.cli.main import main; main()", "serve"],
        env=env | {"BULKHEAD_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "BULKHEAD_HTTP_UVICORN_UNBOUNDED=1" in done.stderr
    assert not (tmp_path / "data").exists()


def test_uvicorn_gets_what_it_has_of_the_limits(tmp_path: Path) -> None:
    env = UVICORN | {"BULKHEAD_HTTP_KEEP_ALIVE_S": "3", "BULKHEAD_HTTP_MAX_CONNECTIONS": "77"}
    config = uvicorn_config(make_app(Seen()), load(data_dir=tmp_path, env=env), None)
    assert (config.timeout_keep_alive, config.limit_concurrency) == (3, 77)
    assert not config.proxy_headers and not config.server_header


@contextmanager
def _uvicorn(tmp_path: Path, **env: str) -> Iterator[int]:
    """uvicorn as `bulkhead serve` configures it, on a free port."""
    settings = load(data_dir=tmp_path, port=0, env=UVICORN | env)
    config = uvicorn_config(make_app(Seen()), settings, None)
    config.log_level = "critical"
    server = DrainingServer(config)
    with serving(server):
        yield server.servers[0].sockets[0].getsockname()[1]


def _open_after(sock: socket.socket, seconds: float) -> bool:
    """Whether `sock` is still open (nothing read, no end) `seconds` from now."""
    sock.settimeout(seconds)
    try:
        return bool(sock.recv(1))  # an answer: the server moved on
    except TimeoutError:
        return True
    except ConnectionResetError:
        return False


@pytest.mark.serial
def test_why_uvicorn_needs_the_acknowledgement_a_slow_head_holds_it(tmp_path: Path) -> None:
    """The lean server cuts a head still unfinished after the head timeout (408); uvicorn,
    even with the shortest keep-alive, keeps it open: its only timer starts after an
    answer.  Should uvicorn learn a head timeout, this fails: then revisit the refusal."""
    with running(keep_alive_s=1.0, head_timeout_s=1.0) as (server, _):
        sock = connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\n")
        time.sleep(2.5)
        reader = Reader(sock)
        assert reader.closed() or b"408" in reader.buf
    with _uvicorn(tmp_path, BULKHEAD_HTTP_KEEP_ALIVE_S="1") as port:
        for start in (b"GET / HTTP/1.1\r\nhost: a\r\n", b"\r\n", b""):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(start)  # a slowloris head, blank lines, or nothing at all
                assert _open_after(sock, 2.5), start


def test_uvicorn_answers_503_past_its_cap_but_keeps_the_sockets(tmp_path: Path) -> None:
    """`limit_concurrency` refuses calls, not connections: idle sockets past the cap stay
    open (the lean server answers the one past its cap 503 and closes it)."""
    with _uvicorn(tmp_path, BULKHEAD_HTTP_MAX_CONNECTIONS="16") as port:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
        try:
            socks[-1].sendall(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            assert Reader(socks[-1]).reply().status == 503
            assert all(_open_after(sock, 0.05) for sock in socks[:-1])
        finally:
            for sock in socks:
                sock.close()
