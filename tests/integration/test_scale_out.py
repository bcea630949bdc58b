"""Scale-out, proven on real processes: nginx in front of 3 replicas on shared services.

One stack (`tests.support.scale`) serves the whole module: the platform is
one whichever replica answers, file quotas and the audit log hold across
replicas, and faults (a replica killed, Redis restarted, the HSM gone, a
rolling restart) cost only what they must.  Every loop is bounded.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bulkhead.audit.bundle import verify_bundle
from bulkhead.audit.checkpoint import Verifier
from bulkhead.store import Database
from bulkhead.store.schema import AuditEntryRow, StorageUsageRow, TenantRow
from tests.support.scale.client import Loop, call, chat, multipart
from tests.support.scale.stack import CHAT, MODEL, SLOW_MODEL, Stack

pytestmark = pytest.mark.serial


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    started = Stack().start()
    yield started
    started.stop()
    started.remove()


def _upload(url: str, key: str, content: bytes) -> int:
    body, kind = multipart({"purpose": "assistants"}, "data.bin", content)
    return call("POST", url + "/v1/files", key, raw=body, headers={"content-type": kind}).status


def _until(check: object, timeout_s: float, step_s: float = 0.05) -> float:
    """Seconds until `check()` is true; fails the test after `timeout_s`."""
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - start < timeout_s, f"not within {timeout_s}s"
        time.sleep(step_s)
    return time.monotonic() - start


def test_the_stack_comes_up_and_nginx_spreads_calls(stack: Stack) -> None:
    assert call("GET", stack.url + "/healthz").status == 200
    answered_by = set()
    for _ in range(9):
        answer = call("POST", stack.url + CHAT, stack.key, chat(MODEL))
        assert answer.status == 200, answer.body
        answered_by.add(answer.upstream)
    assert answered_by == {r.address for r in stack.replicas}


def test_one_platform_whichever_replica_answers(stack: Stack) -> None:
    first = stack.replicas[0].url
    stack.must("POST", "/admin/v1/tenants", {"name": "everywhere", "tier": "shared"}, via=first)
    stack.set_quotas("everywhere", {"requests_per_minute": None, "tokens_per_minute": None})
    stack.must("POST", f"/admin/v1/models/{MODEL}/grants", {"tenant": "everywhere"}, via=first)
    key = stack.mint_key("everywhere", via=first)
    # Every replica takes it (within its catalog poll), directly and through nginx.
    assert stack.wait_everywhere(key, MODEL, timeout_s=5) < 5
    for replica in stack.replicas:
        assert call("POST", replica.url + CHAT, key, chat(MODEL)).status == 200
    assert call("POST", stack.url + CHAT, key, chat(MODEL)).status == 200
    listed = stack.must("GET", "/admin/v1/tenants", via=stack.replicas[2].url)["data"]
    assert "everywhere" in {t["name"] for t in listed}


def test_file_quota_is_exact_under_concurrent_uploads_through_every_replica(
    stack: Stack,
) -> None:
    size, fits, tries = 4096, 5, 15
    stack.tenant("quota")
    stack.set_quotas("quota", {"storage_bytes": size * fits})
    key = stack.mint_key("quota")
    stack.must("POST", f"/admin/v1/models/{MODEL}/grants", {"tenant": "quota"})
    stack.wait_everywhere(key, MODEL)
    statuses: list[int] = []
    barrier = threading.Barrier(tries)

    def upload(n: int) -> None:
        replica = stack.replicas[n % len(stack.replicas)]
        barrier.wait()
        statuses.append(_upload(replica.url, key, bytes([n]) * size))

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(tries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200] * fits + [413] * (tries - fits), statuses
    db = Database(stack.app_url)
    try:
        with db.platform_transaction() as session:
            tenant_id = session.execute(
                select(TenantRow.id).where(TenantRow.name == "quota")
            ).scalar_one()
            used = session.get(StorageUsageRow, tenant_id)
            assert used is not None and used.used_bytes == fits * size
    finally:
        db.dispose()
    listed = call("GET", stack.url + "/v1/files", key).body
    assert len(listed["data"]) == fits


def test_one_gapless_audit_log_across_replicas_whose_checkpoints_verify(stack: Stack) -> None:
    answered = []
    for n in range(12):
        replica = stack.replicas[n % len(stack.replicas)]
        answer = call("POST", replica.url + CHAT, stack.key, chat(MODEL))
        assert answer.status == 200
        answered.append(answer.headers["x-request-id"])
    time.sleep(1.0)  # a checkpoint is signed every 0.5 s by whichever replica takes the lock
    db = Database(stack.app_url)
    try:
        with db.platform_transaction() as session:
            indices = session.execute(select(AuditEntryRow.idx).order_by(AuditEntryRow.idx))
            idx = list(indices.scalars())
    finally:
        db.dispose()
    assert idx == list(range(len(idx)))
    stack.grant("admin:audit.export.get", "platform")  # a privileged read: a PAM grant
    bundle = stack.must("GET", "/admin/v1/audit/bundle")
    report = verify_bundle(bundle, [Verifier.from_vkey(v) for v in bundle["verifiers"]])
    assert report.size >= len(idx) and report.signed_size >= len(idx) - 1
    logged = {json.loads(e["body"]).get("request_id") for e in bundle["entries"]}
    assert set(answered) <= logged


def test_kill_9_of_a_replica_fails_only_its_in_flight_calls(stack: Stack) -> None:
    victim = stack.replicas[1]
    with Loop(stack.url + CHAT, stack.key, chat(SLOW_MODEL), clients=6) as loop:
        time.sleep(1.0)
        victim.proc.kill9()
        killed_at = time.monotonic()  # dead and reaped: nothing can reach it after this
        time.sleep(1.5)
        restarted_at = time.monotonic()
        victim.start()
        back = _until(
            lambda: any(
                o.upstream == victim.address and o.status == 200 and o.started > restarted_at
                for o in loop.snapshot()
            ),
            timeout_s=15,
        )
    failed = loop.failures()
    # Only calls the victim held when it died fail: at most one per client, all its own.
    assert len(failed) <= 6, failed
    assert all(victim.address in o.upstream for o in failed), failed
    assert all(o.started < killed_at for o in failed), failed
    after = [o for o in loop.outcomes if o.started > killed_at + 0.1]
    assert after and all(o.status == 200 for o in after)
    assert back < 15


def test_kill_9_loses_no_answered_call_from_the_audit_log(stack: Stack) -> None:
    """Every call a client got an answer for is in the verified log, though a replica
    died mid-stream (the record must be durable before the answer completes)."""
    victim = stack.replicas[2]
    with Loop(stack.url + CHAT, stack.key, chat(MODEL), clients=8) as loop:
        time.sleep(1.5)
        victim.proc.kill9()
        time.sleep(0.5)
    victim.start()
    answered = {o.request_id for o in loop.outcomes if o.status == 200}
    assert len(answered) > 100
    time.sleep(1.0)  # the next checkpoint
    stack.grant("admin:audit.export.get", "platform")
    bundle = stack.must("GET", "/admin/v1/audit/bundle")
    verify_bundle(bundle, [Verifier.from_vkey(v) for v in bundle["verifiers"]])
    logged = {json.loads(e["body"]).get("request_id") for e in bundle["entries"]}
    missing = answered - logged
    assert not missing, f"{len(missing)} of {len(answered)} answered calls are not in the log"


def test_hsm_lost_is_503_for_key_operations_and_recovers_without_restart(stack: Stack) -> None:
    assert stack.hsm is not None
    body, kind = multipart({"purpose": "assistants"}, "kept.bin", b"k" * 100)
    made = call(
        "POST", stack.url + "/v1/files", stack.key, raw=body, headers={"content-type": kind}
    )
    assert made.status == 200, made.body
    content = f"{stack.url}/v1/files/{made.body['id']}/content"
    stack.hsm.take_away()
    try:
        for replica in stack.replicas:
            refused = _upload(replica.url, stack.key, b"x" * 100)
            assert refused == 503
            read = call("GET", replica.url + content.split(stack.url, 1)[1], stack.key)
            assert read.status == 503 and read.body["error"]["code"] == "kms_unavailable"
        # What needs no key goes on.
        assert call("POST", stack.url + CHAT, stack.key, chat(MODEL)).status == 200
    finally:
        stack.hsm.bring_back()
    for replica in stack.replicas:
        _until(lambda r=replica: _upload(r.url, stack.key, b"y" * 100) == 200, timeout_s=5)
        assert call("GET", replica.url + content.split(stack.url, 1)[1], stack.key).status == 200


def test_redis_restart_fails_limited_tenants_closed_and_recovers_by_itself(stack: Stack) -> None:
    stack.tenant("limited", unlimited=False)
    stack.set_quotas("limited", {"requests_per_minute": 100_000})
    limited = stack.mint_key("limited")
    stack.tenant("open-tenant", unlimited=False)
    stack.set_quotas("open-tenant", {"requests_per_minute": 100_000})
    stack.must("PATCH", "/admin/v1/tenants/open-tenant/config", {"limits_fail_open": True})
    lenient = stack.mint_key("open-tenant")
    for tenant in ("limited", "open-tenant"):
        stack.must("POST", f"/admin/v1/models/{MODEL}/grants", {"tenant": tenant})
    stack.wait_everywhere(limited, MODEL)
    stack.wait_everywhere(lenient, MODEL)
    with Loop(stack.url + CHAT, limited, chat(MODEL), clients=4) as loop:
        time.sleep(0.5)
        stack.redis.stop()  # calls in flight now settle with no limiter
        try:
            for replica in stack.replicas:
                refused = call("POST", replica.url + CHAT, limited, chat(MODEL))
                assert refused.status == 503, refused.body
                assert refused.body["error"]["type"] == "service_unavailable"
                assert call("POST", replica.url + CHAT, lenient, chat(MODEL)).status == 200
        finally:
            stack.redis.start()
        recovered = _until(
            lambda: all(
                call("POST", r.url + CHAT, limited, chat(MODEL)).status == 200
                for r in stack.replicas
            ),
            timeout_s=10,
        )
    assert recovered < 10
    # Through nginx, the outage is 503s and nothing else: a call in flight when Redis
    # went keeps its answer (no dropped connection, no 502).
    assert set(loop.statuses()) == {200, 503}, loop.statuses()


def test_rolling_restart_with_sigterm_fails_no_call(stack: Stack) -> None:
    """SIGTERM each replica in turn, start it again, under calls and streams through nginx.

    0 failures is what a graceful drain must give: stop accepting, finish
    what is in flight, exit.
    """
    streams = Loop(stack.url + CHAT, stack.key, chat(SLOW_MODEL, stream=True), clients=2)
    with Loop(stack.url + CHAT, stack.key, chat(SLOW_MODEL), clients=4) as loop, streams:
        time.sleep(0.5)
        for replica in stack.replicas:
            replica.proc.signal(signal.SIGTERM)
            assert replica.proc.wait(30) is not None, "the replica did not exit on SIGTERM"
            replica.start()
            time.sleep(2.5)  # nginx's fail_timeout: the replica takes calls again
    assert len(loop.outcomes) > 20 and len(streams.outcomes) > 10
    for calls in (loop, streams):
        failed = calls.failures()
        assert failed == [], f"{len(failed)} of {len(calls.outcomes)} calls failed: {failed[:5]}"


def test_stopping_the_stack_leaves_no_process(stack: Stack) -> None:
    stack.stop()
    assert stack.leftovers() == []
