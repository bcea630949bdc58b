"""The data plane answers from memory, and tenant-naming metrics stay off the public port."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event

from tests.support.gateway import GatewayThread, UpstreamThread, http
from tests.support.postgres import free_port


def test_model_calls_make_no_database_round_trip(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-m", upstream.url, grant=(unique,), upstream_model="fake")
    key = gateway.key(unique)
    statements: list[str] = []
    loop_thread = gateway._thread

    def record(*args: Any) -> None:
        # Only the event loop serves requests; the audit writer, the sequencer and
        # the catalog poll run on their own threads, off the request path.
        if threading.current_thread() is loop_thread:
            statements.append(str(args[2]))

    engine = gateway.app.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(5):
            assert gateway.call("GET", "/v1/models", key).status == 200
            body = {"model": f"{unique}-m", "messages": [{"role": "user", "content": "x"}]}
            assert gateway.call("POST", "/v1/chat/completions", key, body).status == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == []


def test_metrics_are_not_on_the_public_port(gateway: GatewayThread) -> None:
    assert gateway.call("GET", "/metrics", None).status == 401
    assert gateway.call("GET", "/metrics", gateway.admin_key).status == 404


def test_metrics_listener_names_tenants(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    key = gateway.key(unique)
    gateway.call("GET", "/v1/models", key)
    port = free_port()
    gateway.app.metrics.serve("127.0.0.1", port)
    text = http("GET", f"http://127.0.0.1:{port}/metrics").raw.decode()
    assert f'tenant="{unique}"' in text
    assert "bulkhead_request_seconds_bucket" in text
    # What the alert rules read, registered by the composition root.
    assert 'bulkhead_limiter_up{store="memory"} 1.0' in text
    assert "bulkhead_break_glass_total 0.0" in text
    assert f'bulkhead_api_key_oldest_age_seconds{{tenant="{unique}"}}' in text
    assert "# TYPE bulkhead_worker_restarts_total counter" in text
