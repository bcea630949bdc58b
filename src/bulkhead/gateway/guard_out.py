"""Step 8: the tenant's output guards over what the model says, before the caller sees it.

Each choice's text - its content, tool-call names and arguments, logprob
tokens (`guard_fields`) - goes through a `StreamFilter` of the request's guard:
redaction, pseudonyms restored, links to other hosts stripped, and the
canary watched for.  A whole response is filtered at once (its start is held
back, since its length changes).  A stream keeps one filter per choice and
sends each event at once, with the text the filter released; the held tail
(never more than the window) goes out in an extra event just before the
choice's finishing event, or before `[DONE]`.  The common event (one
unfinished choice with only content, or a completion's text) goes straight
to its choice's content filter (`StreamGuard._plain`): the same bytes out as
the walk over every field, which the other events take.  A leak or a blocked entity
raises `ContentBlocked`: the error layer ends the stream with an error event
and the audit record names the reason.

The relay holds each answer and stream event parsed already, so it does not
serialise them for this layer to parse again: it asks the request's
`Encoder` (`ENCODER` in the scope) for the bytes, which filters the parsed
objects the way the bytes would be filtered and serialises them once.  Only
bytes the encoder made pass `guarded_send` as they are (told apart by
identity, never by content); any other body a layer below sends is parsed
and filtered as before.

Filtering costs CPU in proportion to the text (about a second per megabyte
of text dense with personal data), so a whole answer, or a stream's body
message, larger than the offload's inline bound for scans (2 KiB:
`offload.SCAN_WEIGHT`) is filtered on a worker thread (`Offload`, the
tenant's queue), never on the event loop; the common small answer, and
every event of a common stream, is filtered right here.  How large an
answer can be at all is bounded by what the call asked for
(`bulkhead.runtime.answers`), and a stream by its reservation
(`limits.StreamMeter`).
"""

from __future__ import annotations

from typing import Any

import orjson

from bulkhead.errors import ContentBlocked
from bulkhead.gateway.endpoints import endpoint_of
from bulkhead.gateway.guard_fields import ChoiceFilter, Key, held_delta
from bulkhead.gateway.guards import GuardedCall, GuardHit, report
from bulkhead.gateway.offload import SCAN_WEIGHT, Offload, job_owner
from bulkhead.guard import StreamFilter
from bulkhead.web.scope import (
    GUARDED,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    context,
    exchange,
    set_once,
)

ENCODER = "bulkhead.encoder"  # the output guard's `Encoder`, for the relay (`openai_api`)
_DONE = b"[DONE]"
_PLAIN_DELTA = frozenset({"content", "role"})


def _choices(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in event.get("choices") or () if isinstance(c, dict)]


def filter_response(data: dict[str, Any], call: GuardedCall) -> None:
    """Filter every choice of a whole (non-streamed) response, in place: its content, tool
    calls and logprob tokens (`guard_fields`)."""

    def make() -> StreamFilter:
        return call.guard.output_filter(call.vault, call.canary)

    for choice in _choices(data):
        ChoiceFilter(make, chat="message" in choice).apply(choice, whole=True)


class StreamGuard:
    """Filters one SSE stream: `events(body)` for each body message, in order."""

    def __init__(self, call: GuardedCall, *, chat: bool) -> None:
        self.call = call
        self.chat = chat
        self.filters: dict[int, ChoiceFilter] = {}
        self.last: dict[str, Any] = {}
        self.partial = b""

    def events(self, body: bytes, *, final: bool) -> bytes:
        """The filtered bytes for one body message (several events, perhaps a partial one)."""
        data = self.partial + body
        end = data.rfind(b"\n\n")
        cut = end + 2 if end >= 0 else 0
        self.partial, complete = data[cut:], data[:cut]
        out = [self._event(raw) for raw in complete.split(b"\n\n") if raw.strip()]
        if final:
            out.append(self._done() + self.partial)
            self.partial = b""
        return b"".join(out)

    def _event(self, raw: bytes) -> bytes:
        payload = raw.removeprefix(b"data:").strip()
        if payload == _DONE:
            return self._done() + raw + b"\n\n"
        if not raw.startswith(b"data:") or not payload.startswith(b"{"):
            return raw + b"\n\n"
        return self.encode(orjson.loads(payload))

    def encode(self, event: dict[str, Any]) -> bytes:
        """One parsed event, filtered, as the SSE bytes the client gets (and any extra event
        for the choices it finishes, before it)."""
        plain = self._plain(event)
        if plain is None:
            flushed = self._filter(event)
            return flushed + encode_event(event)
        self.last = event
        index, holder = plain
        self._choice(index).apply_text(holder, "content" if self.chat else "text")
        return encode_event(event)

    def _plain(self, event: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The choice's index and the object holding its one text, for the common event
        whose `_filter` would filter just that and finish nothing: one choice, not its
        last, no logprobs, and (chat) a delta of `content` and perhaps `role` alone."""
        choices = event.get("choices")
        if type(choices) is not list or len(choices) != 1:
            return None
        choice = choices[0]
        if type(choice) is not dict or choice.get("finish_reason") is not None:
            return None
        if isinstance(choice.get("logprobs"), dict):
            return None
        holder = choice.get("delta") if self.chat else choice
        field = "content" if self.chat else "text"
        if type(holder) is not dict or type(holder.get(field)) is not str:
            return None
        if self.chat and not holder.keys() <= _PLAIN_DELTA:
            return None
        index = choice.get("index", 0)
        return (index if isinstance(index, int) else 0), holder

    def _filter(self, event: dict[str, Any]) -> bytes:
        """Filter the event's choices in place; return the extra event for finishing ones."""
        choices = _choices(event)
        if choices:
            self.last = event
        held: dict[int, dict[Key, Any]] = {}
        for choice in choices:
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            stream = self._choice(index)
            stream.apply(choice)
            if choice.get("finish_reason") is not None:
                rest = stream.close(choice)
                del self.filters[index]
                if rest:
                    held[index] = rest
        return self._extra(held)

    def _choice(self, index: int) -> ChoiceFilter:
        stream = self.filters.get(index)
        if stream is None:
            stream = ChoiceFilter(self._make, chat=self.chat)
            self.filters[index] = stream
        return stream

    def _make(self) -> StreamFilter:
        return self.call.guard.output_filter(self.call.vault, self.call.canary)

    def _done(self) -> bytes:
        """What the choices still held when the stream ends without finishing them."""
        held = {i: s.finish() for i, s in self.filters.items()}
        self.filters.clear()
        return self._extra({i: t for i, t in held.items() if t})

    def _extra(self, held: dict[int, dict[Key, Any]]) -> bytes:
        if not held:
            return b""
        event: dict[str, Any] = {
            k: self.last[k] for k in ("id", "object", "created", "model") if k in self.last
        }
        event["choices"] = [
            {"index": i, **held_delta(t, chat=self.chat), "finish_reason": None}
            for i, t in sorted(held.items())
        ]
        return encode_event(event)


def encode_event(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


class Encoder:
    """The bytes of what the relay holds parsed, filtered by this request's output guard.

    `whole` and `events` filter the parsed objects in place and serialise them
    once (the relay would serialise them, and `guarded_send` parse them
    again); `made` is the last body made so, which `guarded_send` lets through
    unfiltered: filtered already, and told apart by identity.  A whole answer
    too large to scan on the event loop (`Offload`), or events before the
    stream's start, are only serialised and left to `guarded_send` to filter
    as any body; a batch of events too large is filtered so on a worker thread.
    """

    def __init__(self, call: GuardedCall, offload: Offload) -> None:
        self.call = call
        self.offload = offload
        self.stream: StreamGuard | None = None  # set as the stream's start goes out
        self.made: bytes | None = None

    def whole(self, data: dict[str, Any]) -> bytes:
        """A whole answer's body."""
        raw = orjson.dumps(data)
        if not self.offload.small(len(raw) * SCAN_WEIGHT):
            return raw  # `guarded_send` filters it on a worker thread
        filter_response(data, self.call)
        self.made = body = orjson.dumps(data)
        return body

    async def events(self, owner: str, events: list[dict[str, Any]], size: int) -> bytes:
        """A batch of stream events (`size`: about their length in bytes), filtered here,
        or on a worker thread (`owner`'s queue) when too large to scan on the event loop.

        The worker filters the parsed events as the event loop would: serialising
        them for `guarded_send` to parse again on a worker would cost a thread's
        parse and the loop's serialisation for the same bytes.
        """
        stream = self.stream
        if stream is None or stream.partial:
            return b"".join(map(encode_event, events))
        return await self.offload.run(owner, size * SCAN_WEIGHT, self._filtered, stream, events)

    def _filtered(self, stream: StreamGuard, events: list[dict[str, Any]]) -> bytes:
        body = b"".join(map(stream.encode, events))
        if body:
            self.made = body
        return body

    def take(self, body: object) -> bool:
        """Whether `body` is what this encoder made last (it is then let through, once)."""
        if body is None or body is not self.made:
            return False
        self.made = None
        return True


class GuardOutMiddleware:
    def __init__(
        self, app: ASGIApp, *, on_hit: GuardHit | None = None, offload: Offload | None = None
    ):
        self.app = app
        self.on_hit = on_hit
        self.offload = offload or Offload()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call: GuardedCall | None = scope.get(GUARDED) if scope["type"] == "http" else None
        endpoint = endpoint_of(scope) if call is not None else None
        if call is None or endpoint is None or not endpoint.generates:
            await self.app(scope, receive, send)
            return
        stream: StreamGuard | None = None
        start: Message | None = None
        whole = bytearray()
        encoder = Encoder(call, self.offload)
        set_once(scope, ENCODER, encoder)

        async def guarded_send(message: Message) -> None:
            nonlocal stream, start
            if message["type"] == "http.response.start":
                if message["status"] != 200 or not _is_sse(message):
                    start = message  # Held: filtering changes the length.
                    return
                stream = encoder.stream = StreamGuard(call, chat=endpoint.chat)
            elif message["type"] == "http.response.body" and stream is not None:
                chunk, final = message.get("body", b""), not message.get("more_body", False)
                cost = len(chunk) * SCAN_WEIGHT
                if not final and encoder.take(chunk):
                    pass  # the relay's events, filtered as the encoder made them
                elif self.offload.small(cost):  # the common path: no thread hop
                    message["body"] = stream.events(chunk, final=final)
                else:
                    message["body"] = await self.offload.run(
                        job_owner(scope), cost, stream.events, chunk, final=final
                    )
            elif message["type"] == "http.response.body" and start is not None:
                piece, more = message.get("body", b""), message.get("more_body", False)
                if not (whole or more) and start["status"] == 200 and encoder.take(piece):
                    # The relay's answer in one piece, filtered as the encoder made it.
                    await send(_sized(start, len(piece)))
                    await send(message)
                    return
                whole.extend(piece)
                if more:
                    return
                status, raw = start["status"], bytes(whole)
                cost = len(raw) * SCAN_WEIGHT
                if self.offload.small(cost):  # the common path: no thread hop
                    body = self._whole(status, raw, call)
                else:
                    who = job_owner(scope)
                    body = await self.offload.run(who, cost, self._whole, status, raw, call)
                await send(_sized(start, len(body)))
                message = {"type": "http.response.body", "body": body, "more_body": False}
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except ContentBlocked as exc:
            report(self.on_hit, context(scope), exchange(scope), exc.reasons)
            raise

    @staticmethod
    def _whole(status: int, body: bytes, call: GuardedCall) -> bytes:
        if status != 200 or not body.startswith(b"{"):
            return body
        data = orjson.loads(body)
        filter_response(data, call)
        return orjson.dumps(data)


def _is_sse(message: Message) -> bool:
    return any(
        k.lower() == b"content-type" and v.startswith(b"text/event-stream")
        for k, v in message.get("headers", ())
    )


def _sized(start: Message, length: int) -> Message:
    headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(length).encode()))
    return {**start, "headers": headers}
