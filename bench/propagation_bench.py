"""Propagation: how long a key revoked through one replica stays usable on the others.

Three `bulkhead serve` processes share one PostgreSQL 15 database (a fresh
cluster, the app as a plain role under RLS).  Each round revokes one key
through replica A's admin API while clients hammer replicas B and C with that
key; the figure is the time from sending the revocation to A until B (and C)
first answer 401.  It so includes A's own handling of the write: an upper
bound on the propagation (NOTIFY, the listener, the catalog reload).

    python bench/propagation_bench.py [--changes 200] [--replicas 3]

Issue 15's bound: in force on every replica within 1 s.  `bench/scaleout.py`
may call `make_keys` and `propagation` with its own replicas' URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.postgres import app_url, cluster, create_database  # noqa: E402

import harness  # noqa: E402
from bulkhead.domain import Role  # noqa: E402
from bulkhead.store import Database, repo  # noqa: E402

HOST = harness.HOST
ACKED: list[float] = []  # how long the writer took to answer each revocation
AFTER_ACK: list[float] = []  # from the writer's answer until a reader refused the key


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _refused_at(http: aiohttp.ClientSession, url: str, key: str, give_up: float) -> float:
    """When `url` first refuses `key` (polled back to back); `give_up` is a monotonic deadline."""
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < give_up:
        async with http.get(url + "/v1/models", headers=headers) as answer:
            await answer.read()
            if answer.status == 401:
                return time.monotonic()
    raise RuntimeError(f"{url} still accepts a revoked key")


async def _accepted(http: aiohttp.ClientSession, url: str, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    deadline, last = time.monotonic() + 10, b""
    while time.monotonic() < deadline:
        async with http.get(url + "/v1/models", headers=headers) as answer:
            last = await answer.read()
            if answer.status == 200:
                return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"{url} never accepted a new key: {last[:300]!r}")


async def propagation(
    writer: str, readers: list[str], admin_key: str, keys: list[tuple[str, str]]
) -> list[float]:
    """Seconds from sending each revocation to `writer` until each reader refuses the key.

    `keys` are (key id, secret) pairs the readers accept now; each is revoked once.
    """
    took: list[float] = []
    auth = {"Authorization": f"Bearer {admin_key}"}
    async with aiohttp.ClientSession() as http:
        for key_id, secret in keys:
            for url in readers:
                await _accepted(http, url, secret)
            started = time.monotonic()
            watchers = [
                asyncio.create_task(_refused_at(http, url, secret, started + 10)) for url in readers
            ]
            async with http.post(f"{writer}/admin/v1/keys/{key_id}/revoke", headers=auth) as r:
                assert r.status == 200, await r.text()
            acked = time.monotonic()
            ACKED.append(acked - started)
            seen = await asyncio.gather(*watchers)
            took += [at - started for at in seen]
            AFTER_ACK.extend(max(0.0, at - acked) for at in seen)
    return took


def _serve(data: Path, env: dict[str, str], index: int) -> tuple[harness.Service, str]:
    port = harness.free_port()
    cmd = [str(harness.BULKHEAD), "--data-dir", str(data), "serve", "--host", HOST]
    cmd += ["--port", str(port), "--metrics-port", str(harness.free_port())]
    log = data.parent / f"replica-{index}.log"
    service = harness.spawn(f"replica-{index}", cmd, index % 2, log, env)
    url = f"http://{HOST}:{port}"
    harness.wait_until(url + "/healthz", service, 30)
    return service, url


def _post(url: str, key: str, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        return json.loads(answer.read())


def make_keys(url: str, tenant: str, count: int) -> list[tuple[str, str]]:
    """`count` keys of the tenant named `tenant` (its rate limits lifted), written straight
    into the store at SQLAlchemy `url` (the set-up, not measured): (key id, secret) pairs."""
    db = Database(url)
    try:
        with db.platform_transaction() as session:
            # The readers poll back to back: no rate limit may answer for the catalog.
            unlimited = {"requests_per_minute": None, "tokens_per_minute": None}
            tid = repo.set_tenant_limits(session, tenant, {**unlimited, "concurrency": None}).id
            made = [repo.create_key(session, tid, role=Role.END_USER) for _ in range(count)]
        return [(k.key.id, k.secret) for k in made]
    finally:
        db.dispose()


def run(changes: int, replicas: int) -> list[float]:
    with cluster() as server, tempfile.TemporaryDirectory(prefix="bulkhead-prop-") as tmp:
        admin = create_database(server, "bench_propagation")
        sa = lambda u: "postgresql+psycopg://" + u.split("://", 1)[1]  # noqa: E731
        env = harness.child_env(
            BULKHEAD_START_WORKERS="0",
            BULKHEAD_DATABASE_URL=sa(app_url(admin)),
            BULKHEAD_DATABASE_ADMIN_URL=sa(admin),
        )
        data = Path(tmp) / "data"
        init = [str(harness.BULKHEAD), "--data-dir", str(data), "init", "--json"]
        done = subprocess.run(init, env=env, capture_output=True, text=True, check=True)
        admin_key = str(json.loads(done.stdout)["admin_key"])
        services = [_serve(data, env, i) for i in range(replicas)]
        try:
            urls = [url for _, url in services]
            _post(f"{urls[0]}/admin/v1/tenants", admin_key, {"name": "prop"})
            keys = make_keys(sa(app_url(admin)), "prop", changes)
            return asyncio.run(propagation(urls[0], urls[1:], admin_key, keys))
        finally:
            for service, _ in services:
                harness.stop(service)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=3)
    opts = parser.parse_args()
    took = run(opts.changes, opts.replicas)
    ms = [t * 1000 for t in took]
    print(
        f"{opts.changes} revocations through replica A, seen by {opts.replicas - 1} others "
        f"({len(ms)} samples): p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
        f"max {max(ms):.1f} ms"
    )
    acked, after = [t * 1000 for t in ACKED], [t * 1000 for t in AFTER_ACK]
    print(
        f"the writer answered in p50 {percentile(acked, 50):.1f} ms, p99 "
        f"{percentile(acked, 99):.1f} ms; after its answer: p50 {percentile(after, 50):.1f} ms, "
        f"p99 {percentile(after, 99):.1f} ms"
    )


if __name__ == "__main__":
    main()
