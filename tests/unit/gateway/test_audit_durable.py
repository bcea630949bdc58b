"""The audit layer holds an answer's end until its record is durable (`AuditSink.durable`).

A one-piece answer is held whole (so a record that cannot be made durable
becomes a 503); a stream goes out as it comes, all but its last message; an
error's answer waits for its record too; and `record_forwarding` writes a
model call's `started` entry and waits for it.
"""

from __future__ import annotations

import asyncio

import pytest

from bulkhead.audit import WriterState
from bulkhead.errors import AuditUnavailable, PermissionDenied
from bulkhead.gateway.audit import STARTED, AuditMiddleware, record_forwarding
from bulkhead.gateway.errors import ErrorMiddleware
from bulkhead.observe import Metrics
from bulkhead.testing.asgi import FakeApp, Sent, drive, run
from tests.support.audit_sink import SlowSink
from tests.support.chain import scope_at


def audited(inner: FakeApp, sink: SlowSink) -> AuditMiddleware:
    return AuditMiddleware(inner, sink=sink, metrics=Metrics(), skip=frozenset())


def test_a_one_piece_answer_goes_out_only_once_its_record_is_durable() -> None:
    async def main() -> None:
        sink, sent = SlowSink(), Sent()
        task = asyncio.create_task(drive(audited(FakeApp(), sink), scope_at(), into=sent))
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(sink.events) == 1 and sent.messages == []  # not even the start
        sink.commit()
        await task
        assert sent.status == 200 and sent.complete

    asyncio.run(main())


def test_a_stream_goes_out_as_it_comes_but_its_end_waits_for_the_record() -> None:
    async def main() -> None:
        sink, sent = SlowSink(), Sent()
        inner = FakeApp(stream=[b"data: 1\n\n", b"data: 2\n\n"])
        task = asyncio.create_task(drive(audited(inner, sink), scope_at(), into=sent))
        for _ in range(5):
            await asyncio.sleep(0)
        assert sent.status == 200 and sent.bodies and not sent.complete
        sink.commit()
        await task
        assert sent.complete

    asyncio.run(main())


def test_a_record_that_cannot_be_made_durable_turns_the_answer_into_a_503() -> None:
    sink = SlowSink(fails=True)
    sent = run(ErrorMiddleware(audited(FakeApp(), sink)), scope_at())
    assert sent.status == 503 and sent.json()["error"]["code"] == "audit_unavailable"
    assert len(sent.messages) == 2  # the held 200 never went out
    assert sink.events[0].status == 200  # written later, if the writer recovers


def test_an_error_answer_waits_for_its_record_too() -> None:
    sink = SlowSink(fails=True)
    app = ErrorMiddleware(audited(FakeApp(raises=PermissionDenied("no")), sink))
    sent = run(app, scope_at())
    # The 403 could not be recorded durably: the client is told 503, not 403.
    assert sent.status == 503
    (event,) = sink.events
    assert event.status == 403 and event.decision == "deny"


def test_record_forwarding_writes_a_started_entry_and_waits_for_it() -> None:
    async def main() -> None:
        sink = SlowSink()
        scope = scope_at("POST", "/v1/chat/completions")
        task = asyncio.create_task(record_forwarding(sink, scope))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()  # nothing goes upstream yet
        sink.commit()
        await task
        (event,) = sink.events
        assert event.outcome == STARTED and event.status == 0 and event.request_id == "req_t"

    asyncio.run(main())


def test_record_forwarding_raises_when_the_entry_cannot_be_made_durable() -> None:
    with pytest.raises(AuditUnavailable):
        asyncio.run(record_forwarding(SlowSink(fails=True), scope_at("POST", "/v1/embeddings")))


def test_a_call_already_on_record_is_answered_without_waiting_for_its_closing_entry() -> None:
    """A forwarded model call's `started` entry is durable: the answer does not wait again."""

    async def main() -> None:
        sink, sent = SlowSink(), Sent()
        scope = scope_at("POST", "/v1/chat/completions")
        forwarding = asyncio.create_task(record_forwarding(sink, scope))
        for _ in range(3):
            await asyncio.sleep(0)
        sink.commit()  # the started entry is durable
        await forwarding
        await drive(audited(FakeApp(), sink), scope, into=sent)
        assert sent.status == 200 and sent.complete  # no second commit was needed
        assert [e.outcome for e in sink.events] == [STARTED, "success"]

    asyncio.run(main())


def audit_unavailable_count(metrics: Metrics) -> float | None:
    labels = {"tenant": "-", "surface": "other", "code": "audit_unavailable"}
    return metrics.registry.get_sample_value("bulkhead_errors_total", labels)


@pytest.mark.parametrize("inner", [FakeApp(), FakeApp(raises=PermissionDenied("no"))])
def test_an_answer_turned_into_audit_unavailable_is_counted_once(inner: FakeApp) -> None:
    """On record as a 200 (or 403), answered 503: `bulkhead_errors_total` still sees it."""
    metrics = Metrics()
    app = AuditMiddleware(inner, sink=SlowSink(fails=True), metrics=metrics, skip=frozenset())
    sent = run(ErrorMiddleware(app), scope_at())
    assert sent.status == 503
    assert audit_unavailable_count(metrics) == 1


class DownSink(SlowSink):
    def state(self) -> WriterState:
        return WriterState(healthy=False, backlog=3)


def test_a_call_refused_while_the_writer_is_down_is_counted_once() -> None:
    metrics, inner = Metrics(), FakeApp()
    app = AuditMiddleware(inner, sink=DownSink(), metrics=metrics, skip=frozenset())
    sent = run(ErrorMiddleware(app), scope_at())
    assert sent.status == 503 and not inner.calls
    assert audit_unavailable_count(metrics) == 1
