"""A shared deployment's capacity across replicas on one Redis (`limits.redis_share`).

Three gateways (one database, one Redis) in front of one fake upstream that
counts the calls it is serving: the sum of calls in flight never exceeds the
model's `max_in_flight`, tenants flooding through different replicas get
their weighted shares, a quiet tenant's latency does not suffer from a flood
that comes through another replica, a killed replica's slots free themselves
within their lease, and a Redis restart is a 503 for the tenants that fail
closed (an admitted call for those that fail open) and nothing more.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from bulkhead.limits import LimitExceeded, Limits
from bulkhead.limits.redis_limiter import RedisLimiter
from bulkhead.limits.redis_share import RedisCapacity
from tests.support.gateway import GatewayThread, UpstreamThread, http
from tests.support.redis_server import RedisServer, redis_server
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.serial
SERVICE_S = 0.1  # how long the upstream takes to answer a call
_names = (f"cap{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamThread]:
    thread = UpstreamThread(slow_s=SERVICE_S).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, redis: RedisServer) -> Iterator[list[Any]]:
    """Three gateways on one (SQLite) database and one Redis."""
    data = tmp_path_factory.mktemp("capacity") / "data"
    env = {"BULKHEAD_REDIS_URL": redis.url, "BULKHEAD_QUEUE_WAIT_MS": "30000"}
    first = GatewayThread(data, None, env=env).start()
    db = f"sqlite:///{data / 'bulkhead.db'}"
    rest = [GatewayThread(data, db, env=env).start() for _ in range(2)]
    gateways = [first, *rest]
    yield gateways
    for gw in reversed(gateways):
        gw.stop()


def shared_model(replicas: list[GatewayThread], upstream: UpstreamThread, slots: int) -> str:
    """A fresh shared model of `slots` slots, and every replica's catalog reloaded."""
    name = next(_names)
    replicas[0].must("POST", "/admin/v1/models", {
        "name": name, "upstream": upstream.url, "upstream_model": "slow-x",
        "max_in_flight": slots,
    })  # fmt: skip
    return name


def tenant(
    replicas: list[GatewayThread], model: str, weight: int = 1, *, unlimited: bool = False
) -> tuple[str, str]:
    """A tenant on `model` with its rates lifted (only the shared capacity binds, though
    its concurrency and budgets are still counted unless `unlimited`): name and key."""
    gw, name = replicas[0], next(_names)
    gw.tenant(name)
    gw.grant("admin:quota_requests.approve", name)  # above the tier: a grant
    limits: dict[str, Any] = {"requests_per_minute": None, "tokens_per_minute": None}
    limits["share_weight"] = weight
    if unlimited:
        limits |= {"concurrency": None, "tokens_per_day": None, "tokens_per_month": None}
    gw.must("PATCH", f"/admin/v1/tenants/{name}/limits", limits)
    gw.must("POST", f"/admin/v1/models/{model}/grants", {"tenant": name})
    return name, gw.key(name)


def reload(replicas: list[GatewayThread]) -> None:
    for gw in replicas:
        gw.app.catalog.reload()


class Load:
    """Client threads calling `model` through one replica until stopped; the time and
    the status of every call that ended."""

    def __init__(self, gw: GatewayThread, key: str, model: str, clients: int):
        self.url, self.key = gw.url + "/v1/completions", key
        self.body = _body(model)
        self.done: list[tuple[float, float, int]] = []  # (start, end, status)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            status = http("POST", self.url, self.key, self.body).status
            self.done.append((start, time.monotonic(), status))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def started(self, since: float, until: float) -> list[tuple[float, float, int]]:
        """The calls made from `since` that were over by `until`."""
        return [c for c in self.done if since <= c[0] and c[1] <= until]

    def ended(self, since: float, until: float = float("inf")) -> list[tuple[float, float, int]]:
        return [c for c in self.done if since <= c[1] <= until]


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def test_in_flight_never_exceeds_max_in_flight_across_three_replicas(
    replicas: list[GatewayThread], upstream: UpstreamThread
) -> None:
    model = shared_model(replicas, upstream, slots=4)
    keys = [tenant(replicas, model)[1] for _ in range(2)]
    reload(replicas)
    upstream.fake.peak_in_flight = 0
    loads = [Load(gw, key, model, 4) for gw in replicas for key in keys]  # 24 clients
    for load in loads:
        load.__enter__()
    time.sleep(2.0)
    for load in loads:
        load.__exit__()
    statuses = [c[2] for load in loads for c in load.done]
    assert set(statuses) == {200}
    assert upstream.fake.peak_in_flight == 4  # reached, never passed
    assert len(statuses) >= 2.0 / SERVICE_S * 4 * 0.6  # and the slots were kept busy


def test_weighted_shares_hold_across_replicas(
    replicas: list[GatewayThread], upstream: UpstreamThread, redis: RedisServer
) -> None:
    model = shared_model(replicas, upstream, slots=8)
    (light, light_key), (heavy, heavy_key) = (
        tenant(replicas, model, weight=1),
        tenant(replicas, model, weight=3),
    )
    reload(replicas)
    ids = {t.name: t.id for t in replicas[0].app.catalog.snapshot.tenants.values()}
    held = Held(redis.url, deployment_of(replicas[0], model))
    with Load(replicas[0], light_key, model, 12) as a, Load(replicas[1], heavy_key, model, 12) as b:
        time.sleep(0.5)  # both backlogged from here on
        start = time.monotonic()
        slots = held.sample(2.5)
        end = time.monotonic()
    assert {c[2] for c in a.done + b.done} == {200}
    # The share of the capacity each holds (slots in flight, sampled), and of the calls served.
    slot_share = slots[ids[light]] / (slots[ids[light]] + slots[ids[heavy]])
    served = [len(x.ended(start, end)) for x in (a, b)]
    call_share = served[0] / sum(served)
    assert 0.225 <= slot_share <= 0.275, slots  # 1:3 within +-10 %
    # Calls served follow, less closely: a slot is held while the gateway works on the
    # call too, and the heavy tenant's replica, serving three times the calls on these
    # two cores, takes a little longer over each (about 0.27 where slots are 0.25).
    assert 0.2 <= call_share <= 0.3, served


def deployment_of(gw: GatewayThread, model: str) -> str:
    found = [r for r in gw.app.catalog.snapshot.deployments if r.model.name == model]
    return found[0].deployment.id


class Held:
    """Samples a deployment's slots held per tenant, straight from Redis."""

    def __init__(self, url: str, deployment_id: str):
        self.client = redis_py.Redis.from_url(url)
        self.key = f"bulkhead:cap:{{{deployment_id}}}:held"

    def sample(self, seconds: float) -> dict[str, float]:
        """The mean slots each tenant (by id) held over `seconds`."""
        totals: dict[str, float] = {}
        n, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            for tenant_id, count in self.client.hgetall(self.key).items():
                totals[tenant_id.decode()] = totals.get(tenant_id.decode(), 0) + int(count)
            n += 1
            time.sleep(0.01)
        return {t: v / n for t, v in totals.items()}


def test_a_flood_through_another_replica_leaves_the_victims_p99_alone(
    replicas: list[GatewayThread],
) -> None:
    # A slower model than the module's: the three replicas are threads of this one process,
    # so the flood's CPU (and the GIL) lands on the victim's replica too, which a real
    # replica in its own process would not feel; at 0.3 s a call that noise stays small
    # beside the call itself, and what is measured is whether the victim waits for a slot.
    slow = UpstreamThread(slow_s=0.3).start()
    try:
        model = shared_model(replicas, slow, slots=8)
        victim, neighbour = tenant(replicas, model)[1], tenant(replicas, model, unlimited=True)[1]
        reload(replicas)
        for key in (victim, neighbour):  # first calls (connections, caches) are not measured
            assert replicas[2].call("POST", "/v1/completions", key, _body(model)).status == 200
        ratios = []
        for _ in range(5):  # the median of five rounds: two busy cores make any one round noisy
            with Load(replicas[2], victim, model, 2) as solo:
                time.sleep(1.5)
            with Load(replicas[0], neighbour, model, 20) as flood:  # 10x the victim's calls
                time.sleep(0.3)
                with Load(replicas[2], victim, model, 2) as busy:
                    time.sleep(1.5)
            assert {c[2] for c in solo.done + busy.done + flood.done} == {200}
            alone = p99([c[1] - c[0] for c in solo.done])
            crowded = p99([c[1] - c[0] for c in busy.done])
            ratios.append(crowded / alone)
        assert statistics.median(ratios) <= 1.25, ratios
    finally:
        slow.stop()


_HOLDER = """
import asyncio, sys
from bulkhead.limits import LimitExceeded, Limits
from bulkhead.limits.redis_limiter import RedisLimiter
from bulkhead.limits.redis_share import RedisCapacity

async def main(url):
    capacity = RedisCapacity(url, default_capacity=3, max_wait_s=5, lease_s=2)
    slots = [await capacity.acquire("dep-killed", {}, "t1") for _ in range(3)]
    limiter = RedisLimiter.from_url(url, lease_s=2)
    held = [limiter.reserve("t1", {"tenant": Limits(concurrency=2)}, tokens=1) for _ in range(2)]
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1]))
"""


def test_a_killed_replicas_slots_free_within_their_lease(redis: RedisServer) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, redis.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        limiter = RedisLimiter(redis_py.Redis.from_url(redis.url), lease_s=2)

        async def probe() -> tuple[float, float]:
            capacity = RedisCapacity(redis.url, default_capacity=3, max_wait_s=0.2, lease_s=2)
            await asyncio.sleep(3.0)  # past one lease: the holder's renewals keep its slots
            with pytest.raises(LimitExceeded, match="capacity"):
                await capacity.acquire("dep-killed", {}, "t1")
            with pytest.raises(LimitExceeded, match="concurrency"):
                limiter.reserve("t1", {"tenant": Limits(concurrency=2)}, tokens=1)
            holder.kill()
            holder.wait()
            killed = time.monotonic()
            capacity.max_wait_s = 5.0
            # All three (another tenant would leave one free: t1's headroom).
            slots = [await capacity.acquire("dep-killed", {}, "t1") for _ in range(3)]
            freed = time.monotonic() - killed
            for slot in slots:
                slot.release()
            return freed, killed

        freed, killed = asyncio.run(probe())
        assert freed <= 2.0 + 0.5, freed  # within the lease (2 s), and the poll
        both = []  # the limiter's concurrency slots: each lease ends on its own
        while len(both) < 2 and time.monotonic() - killed < 2.5:
            try:
                both.append(limiter.reserve("t1", {"tenant": Limits(concurrency=2)}, tokens=1))
            except LimitExceeded:
                time.sleep(0.05)
        assert len(both) == 2, time.monotonic() - killed
    finally:
        holder.kill()
        holder.wait()


def _start_on(port: int) -> subprocess.Popen[bytes]:
    """redis-server again on the port the stopped one had (the gateway's URL names it)."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis_py.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc
        except redis_py.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start again"
            time.sleep(0.02)


def test_redis_restarted_under_load_fails_closed_and_recovers(
    tmp_path: Path, upstream: UpstreamThread
) -> None:
    with WebhookReceiver().running() as hook, redis_server() as server:
        env = {"BULKHEAD_REDIS_URL": server.url, "BULKHEAD_ALERT_WEBHOOK_URL": hook.url}
        gw = GatewayThread(tmp_path / "data", None, env=env).start()
        try:
            _restart_under_load(gw, upstream, server, hook)
        finally:
            gw.stop()


def _restart_under_load(
    gw: GatewayThread, upstream: UpstreamThread, server: RedisServer, hook: WebhookReceiver
) -> None:
    """Three tenants on one shared model: limited (fails closed), unmetered (no limits,
    so only the shared capacity asks Redis; fails closed) and one that fails open."""
    model = shared_model([gw], upstream, slots=4)
    _, limited = tenant([gw], model)
    _, unmetered_key = tenant([gw], model, unlimited=True)
    opened, opened_key = tenant([gw], model)
    gw.must("PATCH", f"/admin/v1/tenants/{opened}/config", {"limits_fail_open": True})
    assert gw.call("POST", "/v1/completions", unmetered_key, _body(model)).status == 200
    loads = [Load(gw, key, model, 3) for key in (limited, unmetered_key, opened_key)]
    for load in loads:
        load.__enter__()
    restarted = None
    try:
        time.sleep(0.5)
        server.stop()
        down = time.monotonic()  # Redis is gone
        time.sleep(1.0)
        up = time.monotonic()
        restarted = _start_on(server.port)
        time.sleep(1.5)
    finally:
        for load in loads:
            load.__exit__()
        if restarted is not None:
            restarted.terminate()
            restarted.wait()
    end = time.monotonic()
    # The calls made while Redis was down, and those made from 0.5 s after it came back.
    during = [{c[2] for c in load.started(down, up)} for load in loads]
    after = [{c[2] for c in load.started(up + 0.5, end)} for load in loads]
    assert during == [{503}, {503}, {200}], during
    assert after == [{200}, {200}, {200}], after  # recovered with no manual step
    assert any(b.get("alert") == "limits.fail_open" for b in hook.bodies)


def _body(model: str) -> dict[str, Any]:
    return {"model": model, "prompt": "x", "max_tokens": 1}
