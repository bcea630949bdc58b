"""Step 10: one audit event per request; no call answered before it is on record.

This layer wraps everything after it, so a request refused by any later step
(failed authentication included) is recorded too.  A model call gets an entry
before it is forwarded (`record_forwarding`, outcome "started"), durable
before the upstream sees the call: from then on the call is on record, and
its closing entry (status, tokens) is group-committed without holding the
answer back.  Any other call's response has its last body message held until
its event has committed (`AuditSink.durable`), so no call is answered whose
record a crash could lose; a response sent in one piece has its start held
too, so a record that cannot be made durable turns it into a 503
`audit_unavailable` instead of a cut-off answer.  While the audit
writer cannot write events it refuses every request with 503 (the refusals
are queued and written once it recovers).  It also feeds the per-tenant
metrics, which read the same `Exchange` record.

Every refusal, wherever it is raised (authentication, a suspended tenant, a
client certificate, a policy, a limit, a guard, a self-service rule, a
missing grant), takes one path into the record: `refusal`.  The response's
status is recorded by the outermost layer (`RequestIdMiddleware`) as it goes
out; a request that ends in an error is recorded here, before the error
layer answers it, with the status that answer will have.
"""

from __future__ import annotations

import time

from bulkhead.audit import AuditEvent, AuditSink
from bulkhead.errors import (
    AuditUnavailable,
    ContentBlocked,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RuleRefused,
    Unauthenticated,
    status_of,
)
from bulkhead.observe import Metrics
from bulkhead.web.scope import ASGIApp, Exchange, Message, Receive, Scope, Send, exchange

STARTED = "started"
"""The outcome of a model call's entry written before it is forwarded (then another ends it)."""

_DENIALS = (
    Unauthenticated,
    PermissionDenied,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    PayloadTooLarge,
)


def refusal(ex: Exchange, exc: BaseException) -> None:
    """The one path by which an error becomes the audit record's decision and reason."""
    if isinstance(exc, ContentBlocked):
        # A guard's block: the reason already names its findings (`guards.report`).
        ex.deny(ex.reason or exc.code or "content_filter")
    elif isinstance(exc, RuleRefused):  # a self-service rule: a 400, and a denial
        ex.deny("rule_refused", policy_id=exc.rule)
    elif isinstance(exc, _DENIALS):
        policy = exc.policy if isinstance(exc, PermissionDenied) else None
        ex.deny(exc.code or "denied", policy_id=policy, detail=exc.detail)
    else:
        ex.failed(getattr(exc, "code", None) or type(exc).__name__)


def event_of(ex: Exchange, method: str, path: str, status: int | None = None) -> AuditEvent:
    status = ex.status if status is None else status
    return AuditEvent(
        action=ex.action or f"http:{method} {path}",
        outcome="success" if status < 400 else "failure",
        status=status,
        request_id=ex.request_id,
        tenant_id=ex.tenant_id,
        principal_id=ex.principal_id,
        credential_id=ex.credential_id,
        resource=ex.resource,
        decision=ex.decision,
        reason=ex.reason,
        model=ex.model,
        prompt_tokens=ex.prompt_tokens,
        completion_tokens=ex.completion_tokens,
        latency_ms=round((time.perf_counter() - ex.started) * 1000, 3),
        client=ex.client,
        object_id=ex.object_id,
        target_tenant=ex.target_tenant,
    )


async def record_forwarding(sink: AuditSink, scope: Scope) -> None:
    """A model call's entry before it goes upstream: it is forwarded once this is durable."""
    ex = exchange(scope)
    event = event_of(ex, scope["method"], scope["path"], 0)
    event.outcome, event.reason, event.latency_ms = STARTED, "forwarded to the upstream", None
    await sink.durable(sink.emit(event))
    ex.put_on_record()


def require_writer(sink: AuditSink) -> None:
    """Fail closed: while events cannot be written, nothing is served unrecorded."""
    if not sink.state().healthy:
        raise AuditUnavailable(
            "The audit writer cannot write events right now, so requests are refused; retry later."
        )


# How long a healthy answer from the writer stands before it is asked again: its state takes
# a lock and a clock; a writer that fails is noticed within this (plus its own `fail_after_s`).
WRITER_CHECK_S = 0.02


class AuditMiddleware:
    def __init__(self, app: ASGIApp, *, sink: AuditSink, metrics: Metrics, skip: frozenset[str]):
        self.app = app
        self.sink = sink
        self.metrics = metrics
        self.skip = skip
        self._healthy_until = 0.0  # monotonic time until which the writer's health stands

    def _require_writer(self) -> None:
        now = time.monotonic()
        if now >= self._healthy_until:
            require_writer(self.sink)  # raises while it cannot write: asked again next time
            self._healthy_until = now + WRITER_CHECK_S

    def _record(self, scope: Scope, ex: Exchange, status: int) -> int:
        ticket = self.sink.emit(event_of(ex, scope["method"], scope["path"], status))
        tenant = ex.tenant_name or "-"
        # A policy deny's reason names the policy ("permission_denied:<id>"); metrics get the code.
        denial = (ex.reason or "denied").partition(":")[0] if ex.decision == "deny" else None
        seconds = time.perf_counter() - ex.started
        self.metrics.record(tenant, ex.surface, status, seconds, denial, ex.reason)
        if ex.model and ex.prompt_tokens is not None:
            self.metrics.record_tokens(
                tenant, ex.model, ex.prompt_tokens, ex.completion_tokens or 0
            )
        return ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        ex = exchange(scope)
        recorded = False
        status = 0
        start: Message | None = None  # held until the first body message

        async def audited_send(message: Message) -> None:
            nonlocal recorded, status, start
            if message["type"] == "http.response.start":
                status, start = message["status"], message
                return
            if not message.get("more_body", False) and not recorded:
                recorded = True
                # The answer completes only once the call is on record: its `started`
                # entry for a forwarded model call, else this one, which it waits for
                # (if that cannot be durable, AuditUnavailable: a 503 if nothing was sent).
                ticket = self._record(scope, ex, status)
                if not ex.on_record:
                    await self.sink.durable(ticket)
            if start is not None:
                held, start = start, None
                await send(held)
            await send(message)

        try:
            self._require_writer()
            await self.app(scope, receive, audited_send)
            return
        except Exception as exc:
            if recorded:
                if isinstance(exc, AuditUnavailable):  # on record as answered, yet refused
                    self._unavailable(ex)
                raise
            recorded = True
            refusal(ex, exc)
            # A start still held never goes out: the error's own answer does.
            sent = status if status and start is None else status_of(exc)[0]
            ticket = self._record(scope, ex, sent)
            if isinstance(exc, AuditUnavailable) or ex.on_record:
                # The writer cannot write (waiting is in vain), or the call is on record.
                raise
            error = exc
        # An error's answer is an answer too: it goes out once its record is durable (or
        # as a 503 if that cannot be).  Outside the handler, so one error never chains
        # the other (and the frames they hold).
        try:
            await self.sink.durable(ticket)
        except AuditUnavailable:
            self._unavailable(ex)
            raise
        raise error

    def _unavailable(self, ex: Exchange) -> None:
        """A call on record with another status, answered 503 `audit_unavailable` after all."""
        self.metrics.error(ex.tenant_name or "-", ex.surface, AuditUnavailable.code)
