"""Step 7: the OpenAI-compatible endpoints, which call the routed upstream.

The request body goes to the upstream with the upstream's model name and
without reserved fields; the response comes back with the public model name.
Streams always ask the upstream for a usage chunk (so tokens are counted),
and pass it on only when the client asked for it.  A batch of stream events
larger than the offload's inline bound is metered on a worker thread: the
meter may run the tokenizer over it.  Nothing goes upstream before the
audit log holds a durable entry saying it will (`audit.record_forwarding`).
Under an output guard, an answer and a small batch of events are serialised
by the guard's `Encoder` (`guard_out`), once and filtered, not serialised
here for the guard to parse again.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from bulkhead.audit import AuditSink
from bulkhead.errors import ModelNotFound, NotFound
from bulkhead.gateway import validate
from bulkhead.gateway.audit import record_forwarding
from bulkhead.gateway.endpoints import Relay, endpoint_of
from bulkhead.gateway.guard_out import ENCODER, Encoder, encode_event
from bulkhead.gateway.offload import Offload, job_owner
from bulkhead.limits import StreamMeter
from bulkhead.runtime import Target, UpstreamClient
from bulkhead.store import Catalog
from bulkhead.web.responses import SSE_HEADERS, send_bytes, send_json
from bulkhead.web.scope import (
    TARGET,
    TICKET,
    Exchange,
    Receive,
    Scope,
    Send,
    context,
    exchange,
    outgoing_body,
    resolved_model,
)

_DONE = b"data: [DONE]\n\n"


def upstream_payload(body: dict[str, Any], target: Target, stream: bool) -> dict[str, Any]:
    payload = {k: v for k, v in body.items() if k not in validate.RESERVED}
    payload["model"] = target.upstream_model
    payload.update(target.body_fields)
    if stream:
        options = dict(payload.get("stream_options") or {})
        options["include_usage"] = True
        payload["stream_options"] = options
    return payload


def record_usage(ex: Exchange, usage: object) -> None:
    """The upstream's usage, less the prompt tokens the gateway added (`ex.hidden_prompt`):
    recorded for the budgets and the audit, and corrected in place for the caller."""
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 0)
        if isinstance(prompt, int) and isinstance(completion, int):
            hidden = prompt - ex.caller_prompt(prompt)
            if hidden:
                usage["prompt_tokens"] = prompt = prompt - hidden
                total = usage.get("total_tokens")
                if isinstance(total, int):
                    usage["total_tokens"] = max(total - hidden, 0)
            ex.usage(prompt, completion)


def answer_text(data: dict[str, Any]) -> str:
    """The generated text of a whole answer: each choice's message or text, and tool calls."""
    parts: list[str] = []
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        source = message if isinstance(message, dict) else choice
        for field in ("content", "text", "refusal", "reasoning_content"):
            if isinstance(source.get(field), str):
                parts.append(source[field])
        for call in source.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                parts += [v for v in function.values() if isinstance(v, str)]
    return "".join(parts)


def floor_usage(ex: Exchange, measured: tuple[int, int]) -> None:
    """An untrusted upstream's usage, never below what the gateway measured itself.

    A tenant's own server (a model version) reports the usage its tenant's
    platform-set budgets are charged; reporting zero must not make them free.
    """
    prompt, completion = measured
    ex.usage(max(ex.prompt_tokens or 0, prompt), max(ex.completion_tokens or 0, completion))


def event_text(event: dict[str, Any]) -> str:
    """The generated text in one streamed event (chat deltas or completion text)."""
    parts = []
    for choice in event.get("choices") or ():
        if isinstance(choice, dict):
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def cut_off_event(event: dict[str, Any], name: str) -> dict[str, Any]:
    """The last event of a stream that spent its reserved tokens: finish_reason "length"."""
    chat = event.get("object") == "chat.completion.chunk"
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
    choice["delta" if chat else "text"] = {} if chat else ""
    last: dict[str, Any] = {k: event[k] for k in ("id", "object", "created") if k in event}
    last |= {"model": name, "choices": [choice]}
    return last


def relay_event(ex: Exchange, event: dict[str, Any], name: str, client_wants_usage: bool) -> bytes:
    """One SSE event for the client: public model name, usage only if it asked for it."""
    relayed = relayed_event(ex, event, name, client_wants_usage)
    return b"" if relayed is None else encode_event(relayed)


def relayed_event(
    ex: Exchange, event: dict[str, Any], name: str, client_wants_usage: bool
) -> dict[str, Any] | None:
    """`event` as the client gets it (changed in place), or None where it gets nothing."""
    usage = event.get("usage")
    if usage:
        record_usage(ex, usage)
        if not client_wants_usage:
            if not event.get("choices"):
                return None
            del event["usage"]
    event["model"] = name
    return event


class OpenAIEndpoints:
    """The innermost app for /v1: lists models or proxies one call."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        upstreams: UpstreamClient,
        offload: Offload | None = None,
        audit: AuditSink | None = None,
    ):
        self.catalog = catalog
        self.upstreams = upstreams
        self.offload = offload or Offload()
        self.audit = audit  # a model call is forwarded once an entry saying so is durable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = endpoint_of(scope)
        if endpoint is not None and endpoint.relay is Relay.MODELS:
            await self.list_models(scope, send)
            return
        if endpoint is None or endpoint.upstream is None:  # pragma: no cover - authorize 404s
            raise NotFound(f"Unknown endpoint: {scope['method']} {scope['path']}")
        path = endpoint.upstream
        body = outgoing_body(scope)  # validated (`gateway.validation`), then guarded
        stream = body.get("stream") is True
        target: Target = scope[TARGET]
        payload = upstream_payload(body, target, stream)
        if self.audit is not None:
            await record_forwarding(self.audit, scope)
        if stream:
            options = body.get("stream_options") or {}
            await self.relay_stream(
                scope, send, target, path, payload, bool(options.get("include_usage"))
            )
        else:
            await self.relay(scope, send, target, path, payload)

    async def list_models(self, scope: Scope, send: Send) -> None:
        """`GET /v1/models`, or `GET /v1/models/{model}`: one of the same list, else 404."""
        ctx = context(scope)
        visible = self.catalog.snapshot.models_for(ctx.tenant_id) if ctx.tenant_id else {}
        data = [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "tenant" if r.model.owner_tenant_id else "bulkhead",
            }
            for name, r in sorted(visible.items())
            if ctx.key_models is None or name in ctx.key_models
        ]
        endpoint = endpoint_of(scope)
        if endpoint is not None and "{model}" in endpoint.path:
            name = endpoint.params(scope["path"])["model"]
            found = next((m for m in data if m["id"] == name), None)
            if found is None:
                raise ModelNotFound(name)
            await send_json(send, 200, found)
            return
        await send_json(send, 200, {"object": "list", "data": data})

    async def relay(
        self, scope: Scope, send: Send, target: Target, path: str, payload: dict[str, Any]
    ) -> None:
        data = await self.upstreams.call(target, path, payload)
        ex = exchange(scope)
        record_usage(ex, data.get("usage"))
        ticket = scope.get(TICKET)
        if target.opaque and ticket is not None:
            text = answer_text(data)
            measured = await self.offload.run(job_owner(scope), len(text), ticket.measured, text)
            floor_usage(ex, measured)
        resolved = resolved_model(scope)
        if resolved is None:  # pragma: no cover - authorize always sets it for these paths
            raise NotFound("model not found")
        data["model"] = resolved.model.name
        encoder: Encoder | None = scope.get(ENCODER)
        await send_bytes(send, 200, orjson.dumps(data) if encoder is None else encoder.whole(data))

    async def relay_stream(
        self,
        scope: Scope,
        send: Send,
        target: Target,
        path: str,
        payload: dict[str, Any],
        client_wants_usage: bool,
    ) -> None:
        ex = exchange(scope)
        ex.streamed()
        resolved = resolved_model(scope)
        name = resolved.model.name if resolved else payload["model"]
        ticket = scope.get(TICKET)
        meter = ticket.meter() if ticket is not None else None
        encoder: Encoder | None = scope.get(ENCODER)
        started = False
        async with contextlib.aclosing(self.upstreams.stream(target, path, payload)) as events:
            async for batch in events:
                relayed: list[dict[str, Any]] | None = None
                weight = meter.weight if meter is not None else 1  # the counter's speed
                if self.offload.small(batch.size * weight):  # the common path: no thread hop
                    relayed, spent = relay_batch(ex, batch, name, client_wants_usage, meter)
                else:
                    body, spent = await self.offload.run(
                        job_owner(scope), batch.size, relay_bytes,
                        ex, batch, name, client_wants_usage, meter,
                    )  # fmt: skip
                if not started:
                    start = {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS}
                    await send(start)
                    started = True
                if relayed is not None:  # serialised once, by the guard's encoder if any
                    if encoder is None:
                        body = b"".join(map(encode_event, relayed))
                    else:
                        body = await encoder.events(job_owner(scope), relayed, batch.size)
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                if spent:
                    break  # closing the upstream stream stops the generation
        if target.opaque and ticket is not None:
            prompt, _ = ticket.measured("")
            floor_usage(ex, (prompt, meter.tokens if meter is not None else 0))
        if not started:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send({"type": "http.response.body", "body": _DONE, "more_body": False})


def relay_batch(
    ex: Exchange,
    batch: list[dict[str, Any]],
    name: str,
    client_wants_usage: bool,
    meter: StreamMeter | None,
) -> tuple[list[dict[str, Any]], bool]:
    """The client's events of one batch, and whether the reservation is spent.

    The event that would take the stream past its reserved completion tokens
    is not sent; a last event with finish_reason "length" is, and the call is
    charged what the meter counted (the upstream's usage never arrives).
    """
    out = []
    for event in batch:
        if meter is not None and not meter.add(event_text(event)):
            ex.usage(ex.prompt_tokens, meter.tokens)
            out.append(cut_off_event(event, name))
            return out, True
        relayed = relayed_event(ex, event, name, client_wants_usage)
        if relayed is not None:
            out.append(relayed)
    return out, False


def relay_bytes(
    ex: Exchange,
    batch: list[dict[str, Any]],
    name: str,
    client_wants_usage: bool,
    meter: StreamMeter | None,
) -> tuple[bytes, bool]:
    """`relay_batch`, serialised: for a batch large enough to be relayed on a worker thread."""
    out, spent = relay_batch(ex, batch, name, client_wants_usage, meter)
    return b"".join(map(encode_event, out)), spent
