"""The metrics listener: loopback by default; anywhere else only behind a bearer token."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

from bulkhead.errors import ConfigError
from bulkhead.observe import Metrics
from bulkhead.settings import load

TOKEN = "m" * 40


def scrape(port: int, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_with_a_token_only_the_token_scrapes() -> None:
    metrics = Metrics()
    metrics.requests.labels("acme", "v1", 200).inc()
    server = metrics.serve("127.0.0.1", 0, TOKEN)
    try:
        port = server.server_port
        assert scrape(port)[0] == 401
        assert scrape(port, "x" * 40)[0] == 401
        assert scrape(port, TOKEN[:-1])[0] == 401
        status, body = scrape(port, TOKEN)
        assert status == 200
        assert b'tenant="acme"' in body
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_token_it_answers_on_loopback() -> None:
    server = Metrics().serve("127.0.0.1", 0)
    try:
        assert scrape(server.server_port)[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_off_loopback_needs_a_token_file(tmp_path) -> None:
    env = {"BULKHEAD_DATA_DIR": str(tmp_path / "data"), "BULKHEAD_METRICS_HOST": "0.0.0.0"}
    with pytest.raises(ConfigError, match="BULKHEAD_METRICS_TOKEN_FILE"):
        load(env=env)
    token = tmp_path / "token"
    token.write_text("short\n")
    with pytest.raises(ConfigError, match="32\\+ characters"):
        load(env={**env, "BULKHEAD_METRICS_TOKEN_FILE": str(token)})
    with pytest.raises(ConfigError, match="cannot read"):
        load(env={**env, "BULKHEAD_METRICS_TOKEN_FILE": str(tmp_path / "missing")})
    token.write_text(TOKEN + "\n")
    settings = load(env={**env, "BULKHEAD_METRICS_TOKEN_FILE": str(token)})
    assert settings.metrics_host == "0.0.0.0"
    assert settings.metrics_token_file == token.resolve()
    assert TOKEN not in repr(settings)


def test_the_metrics_host_is_an_address(tmp_path) -> None:
    env = {"BULKHEAD_DATA_DIR": str(tmp_path / "data"), "BULKHEAD_METRICS_HOST": "example.com"}
    with pytest.raises(ConfigError, match="IP address"):
        load(env=env)
    assert load(env={**env, "BULKHEAD_METRICS_HOST": "::1"}).metrics_host == "::1"


@pytest.mark.serial
def test_the_idle_listener_waits_for_a_connection_and_stops_at_once() -> None:
    """No timer: `serve_forever` woke twice a second in an idle process; the listener now
    blocks until a connection comes, and `shutdown` brings one itself."""
    server = Metrics().serve("127.0.0.1", 0)
    assert server.timeout is None  # `handle_request` waits without a timeout
    assert scrape(server.server_port)[0] == 200
    started = time.monotonic()
    server.shutdown()
    assert time.monotonic() - started < 1.0
    assert not any(t.name == "metrics" and t.is_alive() for t in threading.enumerate())
    server.server_close()
