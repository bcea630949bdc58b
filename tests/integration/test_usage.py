"""Durable usage through real gateways: what the API reports is what was called, on every replica.

Usage is written with the audit log's batches (`store.usage`), so each test
flushes the serving gateway's audit writer before it reads.  Runs on SQLite
and PostgreSQL (the app's role under row-level security).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, database_urls
from tests.support.gateway import GatewayThread, UpstreamThread, http

CHAT = "/v1/chat/completions"


def chat(gw: GatewayThread, key: str, model: str, max_tokens: int = 5) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return gw.call("POST", CHAT, key, body | {"max_tokens": max_tokens})


def setup_tenant(gw: GatewayThread, upstream: UpstreamThread, name: str) -> tuple[str, str]:
    """A tenant with a model granted; returns (a caller's key, a tenant admin's key)."""
    gw.tenant(name)
    gw.model(f"{name}-m", upstream.url, grant=(name,), upstream_model="fake")
    return gw.key(name), gw.key(name, role="tenant_admin")


def usage(gw: GatewayThread, key: str, query: str = "") -> list[dict[str, Any]]:
    response = gw.call("GET", f"/tenant/v1/usage{query}", key)
    assert response.status == 200, (response.status, response.body)
    return list(response.body["data"])


def test_usage_equals_the_calls_made(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    key, admin = setup_tenant(gateway, upstream, unique)
    model = f"{unique}-m"
    keys = gateway.must("GET", f"/admin/v1/tenants/{unique}/keys")["data"]
    caller = next(k["id"] for k in keys if k["role"] == "end_user")
    # The key's own limit of 4 requests a minute refuses the fifth and sixth call.
    gateway.must(
        "PATCH", f"/admin/v1/tenants/{unique}/keys/{caller}/limits", {"requests_per_minute": 4}
    )
    answers = [chat(gateway, key, model, max_tokens=3 + i) for i in range(4)]
    assert all(a.status == 200 for a in answers)
    refused = [chat(gateway, key, model) for _ in range(2)]
    assert [r.status for r in refused] == [429, 429]
    gateway.app.audit.flush()

    (line,) = usage(gateway, admin)
    assert line["model"] == model
    assert (line["requests"], line["successes"], line["errors"], line["refusals"]) == (6, 4, 0, 2)
    assert line["prompt_tokens"] == sum(a.body["usage"]["prompt_tokens"] for a in answers)
    assert line["completion_tokens"] == sum(a.body["usage"]["completion_tokens"] for a in answers)
    assert 0 < line["latency_ms_avg"] <= line["latency_ms_max"]
    assert sum(line["latency_ms_buckets"].values()) == 6

    by = usage(gateway, admin, "?group_by=key,reason,hour")
    assert {(x["key"], x["reason"], x["requests"]) for x in by} == {
        (caller, "", 4),
        (caller, "rate_limit_exceeded", 2),
    }
    assert all(x["start"].endswith(("+00:00", "Z")) and x["model"] is None for x in by)
    assert usage(gateway, admin, "?since=2001-01-01T00:00:00Z&until=2001-01-02T00:00:00Z") == []
    platform = gateway.must("GET", f"/admin/v1/tenants/{unique}/usage")["data"]
    assert platform == usage(gateway, admin)


def test_another_tenants_usage_is_never_visible(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    key, _ = setup_tenant(gateway, upstream, unique)
    assert chat(gateway, key, f"{unique}-m").status == 200
    other = unique + "x"
    gateway.tenant(other)
    other_admin = gateway.key(other, role="tenant_admin")
    gateway.app.audit.flush()
    victim = gateway.must("GET", f"/admin/v1/tenants/{unique}")["id"]
    assert usage(gateway, other_admin) == []
    # The tenant is the credential's: a tenant named in the query changes nothing.
    for query in (f"?tenant_id={victim}", f"?tenant={unique}", f"?tenant_id={victim}&tenant_id=x"):
        assert usage(gateway, other_admin, query) == []
    # ... and the platform's route is not the tenant's.
    assert gateway.call("GET", f"/admin/v1/tenants/{unique}/usage", other_admin).status in (
        401,
        403,
    )
    assert gateway.admin("GET", "/admin/v1/tenants/nobody-here/usage").status == 404


@pytest.mark.parametrize(
    "query",
    [
        "?since=yesterday",
        "?until=-5",
        "?since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z",
        "?group_by=tenant",
        "?group_by=hour,day",
        "?group_by=model,model",
        "?limit=0",
        "?limit=1&group_by=reason,hour",
    ],
)
def test_bad_queries_are_clear_400s(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str, query: str
) -> None:
    key, admin = setup_tenant(gateway, upstream, unique)
    gateway.must("PATCH", f"/admin/v1/tenants/{unique}/limits", {"requests_per_minute": 1})
    chat(gateway, key, f"{unique}-m")
    chat(gateway, key, f"{unique}-m")  # refused: a second group when grouped by reason
    gateway.app.audit.flush()
    response = gateway.call("GET", f"/tenant/v1/usage{query}", admin)
    assert response.status == 400, (response.status, response.body)
    assert response.body["error"]["type"] == "invalid_request_error"


def test_the_cli_shows_a_tenants_usage(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str, tmp_path: Path
) -> None:
    from tests.cli.test_cli import as_admin, as_json

    key, _ = setup_tenant(gateway, upstream, unique)
    assert chat(gateway, key, f"{unique}-m").status == 200
    gateway.app.audit.flush()
    shown = as_json(gateway, tmp_path, "tenant", "usage", unique, "--group-by", "model,day")
    assert [(x["model"], x["requests"]) for x in shown] == [(f"{unique}-m", 1)]
    table = as_admin(gateway, tmp_path, "tenant", "usage", unique)
    assert table.returncode == 0 and f"{unique}-m" in table.stdout


# Several gateways on one database, and a restart ------------------------------------------------


@pytest.fixture(params=BACKENDS)
def replicas(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[GatewayThread, GatewayThread, str, str | None]]:
    url, admin = database_urls(request.param, request)
    first = GatewayThread(tmp_path / "data", url, admin_url=admin).start()
    url = url or f"sqlite:///{tmp_path / 'data' / 'bulkhead.db'}"
    second = GatewayThread(tmp_path / "data", url, admin_url=admin).start()
    yield first, second, url, admin
    second.stop()
    first.stop()


def test_every_replica_reports_the_same_usage_and_it_survives_a_restart(
    replicas: tuple[GatewayThread, GatewayThread, str, str | None],
    upstream: UpstreamThread,
    tmp_path: Path,
) -> None:
    first, second, url, admin_url = replicas
    key, admin = setup_tenant(first, upstream, "rep")
    second.app.catalog.reload()
    for gw in (first, second, second):
        assert chat(gw, key, "rep-m").status == 200
    for gw in (first, second):
        gw.app.audit.flush()
    seen = [usage(gw, admin) for gw in (first, second)]
    assert seen[0] == seen[1] and seen[0][0]["requests"] == 3

    second.stop()  # every replica gone: nothing is held in any process
    first.stop()
    again = GatewayThread(tmp_path / "data", url, admin_url=admin_url).start()
    try:
        assert usage(again, admin) == seen[0]
        assert chat(again, key, "rep-m").status == 200
        again.app.audit.flush()
        assert usage(again, admin)[0]["requests"] == 4
    finally:
        again.stop()


def test_usage_is_counted_once_whichever_replica_writes_it(
    replicas: tuple[GatewayThread, GatewayThread, str, str | None], upstream: UpstreamThread
) -> None:
    """Concurrent calls on both replicas: the count is exact, never lost or doubled."""
    first, second, _, _ = replicas
    key, admin = setup_tenant(first, upstream, "conc")
    second.app.catalog.reload()
    statuses: list[int] = []
    lock = threading.Lock()

    def client(gw: GatewayThread) -> None:
        for _ in range(10):
            body = {"model": "conc-m", "prompt": "count me", "max_tokens": 2}
            status = http("POST", gw.url + "/v1/completions", key, body).status
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=client, args=(g,)) for g in (first, second) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for gw in (first, second):
        # Flush's default wait (5 s) can end before two replicas contending for one SQLite
        # file have written 60 records on a loaded machine; the count is what is checked.
        gw.app.audit.flush(60)
    (line,) = usage(second, admin)
    assert line["requests"] == len(statuses) == 60
    assert line["successes"] == statuses.count(200)
    assert json.dumps(usage(first, admin)) == json.dumps(usage(second, admin))


def test_maintenance_deletes_usage_past_its_retention(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    from datetime import UTC, datetime, timedelta

    key, admin = setup_tenant(gateway, upstream, unique)
    assert chat(gateway, key, f"{unique}-m").status == 200
    gateway.app.audit.flush()
    maintenance = gateway.app.maintenance
    assert maintenance.usage_days == gateway.settings.usage_retention_days == 400
    assert maintenance.run_once(datetime.now(UTC) + timedelta(days=399))["usage_purged"] == 0
    assert usage(gateway, admin)[0]["requests"] == 1
    assert maintenance.run_once(datetime.now(UTC) + timedelta(days=401))["usage_purged"] >= 1
    assert usage(gateway, admin) == []
    gateway.app.audit.flush()
    assert any(e["action"] == "system:usage.purge" for e in gateway.audit_events())
