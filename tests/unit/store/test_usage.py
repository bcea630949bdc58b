"""Durable usage (`store.usage`): a batch of audit events summed and added in its transaction."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import AuditLog, append_batch
from bulkhead.domain import Tier
from bulkhead.store import Database, repo, usage
from bulkhead.store.direct import DirectConnection
from bulkhead.store.schema import AuditEntryRow, UsageHourRow

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
HOUR = int(T0 // 3600) * 3600


def call(
    tenant: str | None = "ten_a",
    *,
    model: object = "chat",
    status: int = 200,
    decision: str = "allow",
    reason: str | None = None,
    key: object = "key_1",
    prompt: object = 3,
    completion: object = 5,
    latency: object = 120.0,
    at: object = T0,
    action: str = "v1:chat",
) -> AuditEvent:
    event = AuditEvent(
        action=action,
        outcome="success" if status < 400 else "failure",
        status=status,
        tenant_id=tenant,
        decision=decision,
        reason=reason,
    )
    # Values as an event may really hold them, whatever their type.
    event.model, event.credential_id = model, key  # type: ignore[assignment]
    event.prompt_tokens, event.completion_tokens = prompt, completion  # type: ignore[assignment]
    event.latency_ms, event.time = latency, at  # type: ignore[assignment]
    return event


def only(found: dict[Any, usage.Tally]) -> tuple[Any, usage.Tally]:
    assert len(found) == 1, found
    return next(iter(found.items()))


# The aggregation ------------------------------------------------------------------------------


def test_calls_of_one_hour_model_and_key_are_summed_in_one_row() -> None:
    found = usage.tally([call(), call(prompt=7, completion=1, latency=2600.0, at=T0 + 60)])
    key, tally = only(found)
    assert key == ("ten_a", HOUR, "chat", "key_1", "")
    assert (tally.requests, tally.successes, tally.errors, tally.refusals) == (2, 2, 0, 0)
    assert (tally.prompt_tokens, tally.completion_tokens) == (10, 6)
    assert tally.latency_ms_sum == 2720.0 and tally.latency_ms_max == 2600.0
    assert tally.latency == [0, 1, 0, 0, 0, 1, 0, 0]  # <= 250 ms and <= 5000 ms


def test_hours_models_keys_and_tenants_make_rows_of_their_own() -> None:
    found = usage.tally(
        [
            call(),
            call(at=T0 + 3600),
            call(model="embed"),
            call(key="key_2"),
            call("ten_b"),
        ]
    )
    assert len(found) == 5
    assert all(t.requests == 1 for t in found.values())


def test_refusals_and_errors_are_counted_under_their_code() -> None:
    found = usage.tally(
        [
            call(status=429, decision="deny", reason="rate_limited:tenant"),
            call(status=429, decision="deny", reason="rate_limited:key"),
            call(status=400, decision="deny", reason="content_filter,pii.email"),
            call(status=502, reason="upstream_error"),
            call(status=503),
        ]
    )
    by_reason = {key[4]: t for key, t in found.items()}
    assert by_reason["rate_limited"].refusals == 2 and by_reason["rate_limited"].requests == 2
    assert by_reason["content_filter"].refusals == 1
    assert by_reason["upstream_error"].errors == 1 and by_reason["status_503"].errors == 1
    assert sum(t.successes for t in found.values()) == 0


def test_only_model_calls_of_a_tenant_are_usage() -> None:
    assert (
        usage.tally(
            [
                call(None),  # no tenant (a failed sign-in)
                call(model=None),  # refused before a model was resolved
                call(action="tenant:keys.create"),  # management
                call(action="v1:files.list", model=None),
                call("ten/../x"),  # no tenant id
                call(model="m" * 129),
                call(model="a\x00b"),
                replace(call(status=0), outcome="started"),  # written before forwarding
            ]
        )
        == {}
    )


def test_values_no_column_can_hold_are_counted_neutrally() -> None:
    # Whatever an event holds, the batch is counted and never fails.
    found = usage.tally(
        [
            call(key="session:ses_1"),
            call(key="jwt:abc"),
            call(key="what:ever"),
            call(key="k" * 65),
            call(key=None),
            call(
                status=403,
                decision="deny",
                reason="caf\u00e9:x",
                prompt=-1,
                completion=2**60,
                latency=math.nan,
                at=math.inf,
            ),
        ]
    )
    keys = {key[3] for key in found}
    assert keys == {"session", "oidc", "other", "", "key_1"}
    refused = next(t for key, t in found.items() if key[4] == "other")
    assert refused.prompt_tokens == 0 and refused.completion_tokens == 0
    assert refused.latency_ms_sum == 0.0 and refused.latency[0] == 1


# In the database, through the audit writer --------------------------------------------------


def tenant(db: Database, name: str) -> str:
    with db.platform_transaction() as session:
        return repo.create_tenant(session, name, Tier.SHARED).id


def test_a_batch_adds_to_the_rows_it_touches(db: Database) -> None:
    a, b = tenant(db, "a"), tenant(db, "b")
    append_batch(db, [call(a), call(a, status=500, reason="boom")], on_batch=usage.record)
    append_batch(db, [call(a, latency=9000.0), call(b)], on_batch=usage.record)
    with db.tenant_transaction(a) as session:
        (line,) = usage.summary(session, a)
        by_reason = usage.summary(session, a, group_by=("reason",))
    assert line.group == {"model": "chat"}
    assert (line.requests, line.successes, line.errors) == (3, 2, 1)
    assert line.prompt_tokens == 9 and line.completion_tokens == 15
    assert line.latency_ms_max == 9000.0 and line.latency_ms_sum == 9240.0
    assert line.latency["250"] == 2 and line.latency["10000"] == 1
    assert [(x.group["reason"], x.requests) for x in by_reason] == [("", 2), ("boom", 1)]


def test_usage_is_read_by_hour_and_day_within_a_window(db: Database) -> None:
    a = tenant(db, "a")
    calls = [call(a, at=T0 + h * 3600) for h in range(30)]
    append_batch(db, calls, on_batch=usage.record)
    with db.tenant_transaction(a) as session:
        hours = usage.summary(session, a, group_by=("hour",))
        days = usage.summary(session, a, group_by=("day",))
        window = usage.summary(session, a, since=HOUR + 1800, until=HOUR + 3 * 3600, group_by=())
        capped = usage.summary(session, a, group_by=("hour",), limit=5)
    assert [x.group["hour"] for x in hours] == [HOUR + h * 3600 for h in range(30)]
    assert sum(x.requests for x in days) == 30 and all(x.group["day"] % 86400 == 0 for x in days)
    assert [x.requests for x in window] == [3]  # the hour `since` falls in, and the next two
    assert len(capped) == 6  # one more than the limit: the caller can tell


def test_a_deleted_tenants_calls_are_left_out_and_the_events_still_written(db: Database) -> None:
    a = tenant(db, "a")
    append_batch(db, [call(a), call("ten_gone")], on_batch=usage.record)
    with db.platform_transaction() as session:
        assert session.execute(select(UsageHourRow.tenant_id)).scalars().all() == [a]
        assert len(session.execute(select(AuditEntryRow.idx)).all()) == 2


def test_a_failing_hook_never_stops_the_audit_log(db: Database) -> None:
    runs: list[int] = []

    def broken(conn: DirectConnection, events: Any) -> None:
        runs.append(len(events))
        conn.execute("DELETE FROM audit_entries")  # what a failing hook did is undone
        raise RuntimeError("no")

    first = append_batch(db, [call()], on_batch=broken)
    second = append_batch(db, [call()], on_batch=broken)
    assert second == first + 1
    assert runs == [1, 1, 1, 1]  # each batch: once, then once more under a savepoint
    with db.platform_transaction() as session:
        assert len(session.execute(select(AuditEntryRow.idx)).all()) == 2


def test_a_hook_that_fails_once_still_adds_its_usage(db: Database) -> None:
    a = tenant(db, "a")
    runs: list[int] = []

    def flaky(conn: DirectConnection, events: Any) -> None:
        runs.append(1)
        usage.record(conn, events)
        if len(runs) == 1:
            raise RuntimeError("once")  # the first run's usage is rolled back with it

    append_batch(db, [call(a), call(a)], on_batch=flaky)
    with db.tenant_transaction(a) as session:
        (line,) = usage.summary(session, a)
    assert len(runs) == 2 and line.requests == 2


def test_the_writer_counts_what_it_commits(db: Database) -> None:
    a = tenant(db, "a")
    log = AuditLog(db, on_batch=usage.record)
    try:
        for _ in range(20):
            log.emit(call(a))
        log.flush()
    finally:
        log.close()
    with db.tenant_transaction(a) as session:
        (line,) = usage.summary(session, a)
    assert line.requests == 20


def test_a_tenant_reads_only_its_own_usage(db: Database) -> None:
    a, b = tenant(db, "a"), tenant(db, "b")
    append_batch(db, [call(a), call(b), call(b)], on_batch=usage.record)
    with db.tenant_transaction(a) as session:
        assert [x.requests for x in usage.summary(session, a)] == [1]
        assert usage.summary(session, "ten_nobody") == []
        if db.dialect == "postgresql":  # row-level security, whatever the query asks
            assert session.execute(select(UsageHourRow.tenant_id)).scalars().all() == [a]
    with pytest.raises(ValueError), db.tenant_transaction(a) as session:
        usage.summary(session, "")


def test_purge_deletes_only_hours_that_started_before_the_cutoff(db: Database) -> None:
    a, b = tenant(db, "a"), tenant(db, "b")
    calls = [call(t, at=T0 + h * 3600) for t in (a, b) for h in range(5)]
    append_batch(db, calls, on_batch=usage.record)
    with db.platform_transaction() as session:
        # Mid-hour: that hour started before the cutoff's own hour began, so it stays.
        deleted = usage.purge(session, [a], T0 + 2 * 3600 + 60)
    with db.platform_transaction() as session:
        left = session.execute(select(UsageHourRow.tenant_id, UsageHourRow.hour)).all()
    assert deleted == 2
    assert sorted(h for t, h in left if t == a) == [HOUR + h * 3600 for h in (2, 3, 4)]
    assert len([t for t, _ in left if t == b]) == 5  # another tenant's hours are its own
