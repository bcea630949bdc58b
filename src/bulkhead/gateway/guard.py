"""Step 5: the tenant's input guards, before the request is routed anywhere.

For chat, completions and embeddings the tenant's `Guard` checks and
rewrites the body (secrets and personal data redacted, masked or
pseudonymised; a blocked entity or injection refused; logprobs refused
unless allowed, on a fine-tuned model (`fine_tuned`) unless allowed for those
too) and, where the tenant turned it on, puts a fresh canary in the system
prompt; the canary's tokens are the gateway's own (`Exchange.hide_prompt`),
so the tenant is neither charged nor shown them.  The
rewritten body goes into the scope as `OUTGOING`, so the call sends it (and
retention keeps it); the vault and canary go to the output layer under
`GUARDED`.  The body was validated before it got here (`gateway.validation`).  Only the
tenant's settings decide: nothing in the body or headers turns a guard off.

The audit record gets the findings' labels (`pii:email`, `injection:…`),
the anomaly detector a hit per kind; matched text goes nowhere.

Every string the upstream receives is scanned (`guard.text_slots`), up to
`MAX_SCAN_CHARS` characters in `MAX_SCAN_TEXTS` texts per request; a body
with more is refused (413), never passed on unscanned.  A body over 2 KiB
(`offload.SCAN_WEIGHT`: a scan costs about a millisecond a KiB) is scanned
on a worker thread (`Offload`), a smaller one right here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from bulkhead.domain import ResolvedModel, TenantContext
from bulkhead.errors import ContentBlocked, InvalidRequest
from bulkhead.gateway.endpoints import endpoint_of
from bulkhead.gateway.guards import GuardBook, GuardedCall, GuardHit, report
from bulkhead.gateway.offload import SCAN_WEIGHT, Offload, job_owner
from bulkhead.guard import (
    MAX_SCAN_CHARS,
    MAX_SCAN_TEXTS,
    Canary,
    Guard,
    RequestVerdict,
    inject_canary,
)
from bulkhead.web.scope import (
    CONTEXT,
    GUARDED,
    OUTGOING,
    TICKET,
    ASGIApp,
    Outgoing,
    Receive,
    Scope,
    Send,
    exchange,
    json_body,
    raw_body,
    resolved_model,
    set_once,
)

_INDEX = re.compile(r"messages\[(\d+)\]")
FINE_TUNED_PREFIX = "ft:"  # `finetune.service.fine_tuned_name`
FINE_TUNED_WORKERS = frozenset({"hf-causal-lora"})  # `store.artifacts.LORA_WORKER`
Counter = Callable[[str, dict[str, Any]], int]
"""`Admission.count`: a prompt's tokens by endpoint (`chat`, `completions`) and body."""


def fine_tuned(model: ResolvedModel | None) -> bool:
    """Whether `model` was trained on a tenant's data: by its name or by its worker."""
    if model is None:
        return False
    worker = model.deployment.worker or ""
    return model.model.name.startswith(FINE_TUNED_PREFIX) or worker in FINE_TUNED_WORKERS


def _added(body: dict[str, Any], sent: dict[str, Any]) -> int:
    """How many messages the canary put before the client's (a system message, if none)."""
    before, after = body.get("messages"), sent.get("messages")
    if isinstance(before, list) and isinstance(after, list):
        return len(after) - len(before)
    return 0


def canary_tokens(count: Counter | None, body: dict[str, Any], sent: dict[str, Any]) -> int:
    """The prompt tokens the canary added to `body` (making `sent`), as the gateway counts them.

    Only the canary's own text is counted: its line before the first system
    message, or the message it put first (with the message's overhead).
    """
    before, after = body.get("messages"), sent.get("messages")
    if count is None or before is after or not isinstance(before, list):
        return 0
    if not isinstance(after, list) or not after:
        return 0
    if len(after) > len(before):
        return count("chat", {"messages": after[:1]}) - count("chat", {"messages": []})
    first = next((a for a, b in zip(after, before, strict=True) if a != b), None)
    content = first.get("content") if isinstance(first, dict) else None
    if isinstance(content, str):  # "<canary line>\n<the client's system prompt>"
        return count("completions", {"prompt": content[: content.index("\n") + 1]})
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return count("completions", {"prompt": str(content[0].get("text", ""))})
    return 0


def own_indices(text: str, shift: int) -> str:
    """An upstream's `messages[i]` as the client counts them (without the canary's)."""
    return _INDEX.sub(lambda m: f"messages[{max(int(m.group(1)) - shift, 0)}]", text)


class GuardInMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        guards: GuardBook | None,
        on_hit: GuardHit | None = None,
        offload: Offload | None = None,
        max_chars: int = MAX_SCAN_CHARS,
        max_texts: int = MAX_SCAN_TEXTS,
        count: Counter | None = None,
    ):
        self.app = app
        self.count = count
        self.guards = guards
        self.on_hit = on_hit
        self.offload = offload or Offload()
        self.max_chars = max_chars
        self.max_texts = max_texts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx: TenantContext | None = scope.get(CONTEXT) if scope["type"] == "http" else None
        endpoint = endpoint_of(scope) if ctx is not None else None
        guarded = endpoint is not None and endpoint.guarded
        tenant = ctx.tenant if ctx is not None else None
        if self.guards is None or not guarded or tenant is None or not resolved_model(scope):
            await self.app(scope, receive, send)
            return
        assert ctx is not None
        guard = self.guards.for_tenant(tenant)
        call = await self._scan(scope, ctx, guard)
        set_once(scope, GUARDED, call)
        try:
            await self.app(scope, receive, send)
        except InvalidRequest as exc:
            if call.shift:  # the upstream counted the canary's message: name the client's own
                exc.message = own_indices(exc.message, call.shift)
                exc.param = own_indices(exc.param, call.shift) if exc.param else exc.param
            raise
        finally:
            # The vault holds this request's personal data: drop it with the response.
            del scope[GUARDED]

    async def _scan(self, scope: Scope, ctx: TenantContext, guard: Guard) -> GuardedCall:
        """Check and rewrite the body into `OUTGOING`; raise to refuse it."""
        ex = exchange(scope)
        body, size = json_body(scope), len(raw_body(scope)) * SCAN_WEIGHT
        try:
            tuned = fine_tuned(resolved_model(scope))
            if self.offload.small(size):
                verdict, kept = self._verdict(guard, body, tuned)
            else:
                who = job_owner(scope)
                run = self.offload.run
                verdict, kept = await run(who, size, self._verdict, guard, body, tuned)
        except ContentBlocked as exc:
            report(self.on_hit, ctx, ex, exc.reasons)
            raise
        report(self.on_hit, ctx, ex, verdict.reasons())
        # A canary only for a tenant that turned it on: none is watched for otherwise
        # (`Guard.output_filter`), so making one would be a random draw for nothing.
        canary = Canary.generate() if guard.config.canary else None
        sent = inject_canary(verdict.body, canary) if canary is not None else verdict.body
        # What is kept of the request (retention) is what the guards let through.
        set_once(scope, OUTGOING, Outgoing(body=sent, kept=kept))
        if sent is not verdict.body:
            ticket = scope.get(TICKET)  # admission counted the caller's own prompt
            own = ticket.measured("")[0] if ticket is not None else 0
            ex.hide_prompt(canary_tokens(self.count, verdict.body, sent), own)
        return GuardedCall(guard, verdict.vault, canary, _added(verdict.body, sent))

    def _verdict(
        self, guard: Guard, body: dict[str, Any], tuned: bool = False
    ) -> tuple[RequestVerdict, bytes | None]:
        """The guard's verdict on a validated body, and its new bytes if it was rewritten."""
        verdict = guard.scan_request(
            body, max_chars=self.max_chars, max_texts=self.max_texts, fine_tuned=tuned
        )
        return verdict, None if verdict.body is body else orjson.dumps(verdict.body)
