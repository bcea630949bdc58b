"""A real `bulkhead serve` under load: kill -9 loses no answered call's audit record, and
SIGTERM drains it (calls and a long stream in flight finish, the log is flushed, exit 0).

Every request id a client saw answered (the `x-request-id` of a whole answer,
whatever its status) must be in the exported, verified log afterwards, and
every model call that reached the upstream must have a durable entry saying
it was forwarded (outcome "started"), written before it went.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import BACKENDS, database_urls
from tests.support.gateway import UpstreamThread
from tests.support.served import Load, ServedPlatform


@pytest.fixture(params=BACKENDS)
def platform(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: UpstreamThread
) -> Iterator[ServedPlatform]:
    url, admin = database_urls(request.param, request)
    served = ServedPlatform(tmp_path, url, admin, upstream)
    yield served
    if served.process is not None and served.process.poll() is None:
        served.kill()


def forwarded(entries: list[dict[str, Any]], model: str) -> int:
    return sum(1 for e in entries if e.get("outcome") == "started" and e.get("model") == model)


def test_kill_9_loses_no_answered_call(platform: ServedPlatform, upstream: UpstreamThread) -> None:
    answered: set[str] = set()
    reached = 0
    for trial in range(2):
        platform.serve()
        before = upstream.fake.requests
        load = Load(platform.url, platform.key).start()
        time.sleep(random.Random(trial).uniform(0.8, 1.6))
        platform.kill()  # SIGKILL at a random moment, calls in flight
        load.stop()
        reached += upstream.fake.requests - before
        assert load.answered, (load.statuses, load.refused, load.broken, platform.log())
        assert set(load.statuses) == {200} and not load.cut, (load.statuses, load.cut)
        answered |= load.answered
    platform.serve()  # restarted on the same log: it recovers, then stops cleanly
    assert platform.terminate() == 0, platform.log()
    entries = platform.verified_entries()
    # A forwarded call is on record from its `started` entry (durable before it went
    # upstream); its closing entry may be lost with the process, its record is not.
    logged = {e.get("request_id") for e in entries}
    missing = answered - logged
    assert not missing, f"{len(missing)} of {len(answered)} answered calls are not in the log"
    # Every call the upstream saw was recorded durably before it was forwarded.
    assert forwarded(entries, "fast") >= reached > 0


@pytest.mark.serial
def test_sigterm_finishes_calls_and_a_long_stream_then_exits_0(
    platform: ServedPlatform, upstream: UpstreamThread
) -> None:
    platform.serve()
    streams: list[tuple[int, bytes, str]] = []

    async def long_stream() -> None:
        body = {"model": "slow-m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        headers = {"authorization": f"Bearer {platform.key}"}
        url = platform.url + "/v1/chat/completions"
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(url, json=body) as r,
        ):
            streams.append((r.status, await r.read(), r.headers["x-request-id"]))

    stream = threading.Thread(target=lambda: asyncio.run(long_stream()))
    stream.start()
    load = Load(platform.url, platform.key, clients=8, keep_alive=True).start()
    time.sleep(0.7)  # the stream is waiting on the slow upstream; calls are in flight
    started = time.monotonic()
    code = platform.terminate()
    drained_s = time.monotonic() - started
    load.stop()
    stream.join(30)
    assert code == 0, platform.log()
    assert drained_s < 20
    # Nothing that was being answered failed; calls after the listener closed were refused.
    assert not load.broken and not load.cut, (load.broken, load.cut)
    assert set(load.statuses) == {200} and load.answered, load.statuses
    [(status, raw, rid)] = streams
    assert status == 200 and raw.rstrip().endswith(b"data: [DONE]")
    logged = {e.get("request_id") for e in platform.verified_entries()}
    assert load.answered | {rid} <= logged


@pytest.mark.serial
def test_a_postgresql_restart_fails_closed_and_recovers_by_itself(
    tmp_path: Path, upstream: UpstreamThread
) -> None:
    from bulkhead.audit.log import RECOVERED
    from tests.support import postgres

    with postgres.cluster() as root:  # a cluster of its own, so that stopping it harms no other
        admin = postgres.create_database(root, "bulkhead_restart")
        platform = ServedPlatform(tmp_path, postgres.app_url(admin), admin, upstream)
        platform.serve()
        try:
            load = Load(platform.url, platform.key, clients=4).start()
            time.sleep(0.5)
            postgres.stop(root)
            time.sleep(3.0)  # the outage: nothing is answered 200 without its durable record
            postgres.start(root)
            up = time.monotonic()
            deadline = up + 20
            while not any(t > up for t in load.succeeded_at) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            load.stop()
            assert platform.terminate() == 0, platform.log()
        finally:
            if platform.process is not None and platform.process.poll() is None:
                platform.kill()
        recovered_s = min(t for t in load.succeeded_at if t > up) - up
        assert recovered_s < 15
        assert not load.broken, load.broken
        assert set(load.statuses) == {200, 503}, load.statuses  # fail closed while it was away
        entries = platform.verified_entries()
    logged = {e.get("request_id") for e in entries}
    assert load.answered <= logged  # the 503 refusals too, written once it was back
    assert any(e["action"] == RECOVERED for e in entries)
