"""The output guard layer: whole responses and SSE streams, as the OpenAI endpoints send them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from bulkhead.errors import ContentBlocked
from bulkhead.gateway.audit import refusal
from bulkhead.gateway.endpoints import match
from bulkhead.gateway.guard_out import GuardOutMiddleware
from bulkhead.gateway.guards import GuardedCall
from bulkhead.gateway.offload import Offload
from bulkhead.guard import DEFAULT_WINDOW, Canary, Guard, GuardConfig, PseudonymVault
from bulkhead.guard._entities import Entity
from bulkhead.web.responses import SSE_HEADERS, send_json
from bulkhead.web.scope import (
    CONTEXT,
    ENDPOINT,
    EXCHANGE,
    GUARDED,
    Exchange,
    Message,
    Receive,
    Scope,
    Send,
)
from tests.unit.gateway.test_guard import caller

EMAIL = "alice.liddell@example.com"
CHAT = "/v1/chat/completions"
CANARY = Canary("bkc" + "ab" * 12)


def guarded(vault: PseudonymVault | None = None, **config: Any) -> GuardedCall:
    vault = vault if vault is not None else PseudonymVault()
    return GuardedCall(Guard(GuardConfig.from_dict(config)), vault, CANARY)


def chunk(index: int, text: str | None, finish: str | None = None, chat: bool = True) -> Any:
    choice: dict[str, Any] = {"index": index, "finish_reason": finish}
    if chat:
        choice["delta"] = {} if text is None else {"content": text}
    else:
        choice["text"] = text or ""
    kind = "chat.completion.chunk" if chat else "text_completion"
    return {"id": "c1", "object": kind, "created": 0, "model": "m", "choices": [choice]}


def sse(*events: Any) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


class Run:
    """Runs the layer over an inner app that sends the given body messages."""

    def __init__(self, call: GuardedCall, path: str = CHAT, offload: Offload | None = None):
        self.call = call
        self.path = path
        self.offload = offload
        self.sent: list[Message] = []
        self.hits: list[str] = []
        self.ex = Exchange(request_id="r", started=time.perf_counter(), client=None)

    def stream(self, bodies: Sequence[bytes]) -> list[Message]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            for i, body in enumerate(bodies):
                more = i < len(bodies) - 1
                await send({"type": "http.response.body", "body": body, "more_body": more})

        return self.run(app)

    def whole(self, payload: Any) -> list[Message]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send_json(send, 200, payload)

        return self.run(app)

    def run(self, app: Any) -> list[Message]:
        scope: Scope = {"type": "http", "method": "POST", "path": self.path, "headers": []}
        scope[ENDPOINT] = match("POST", self.path)
        scope.update({CONTEXT: caller(), EXCHANGE: self.ex, GUARDED: self.call})
        layer = GuardOutMiddleware(
            app, on_hit=lambda ctx, kind: self.hits.append(kind), offload=self.offload
        )

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            self.sent.append(message)

        asyncio.run(layer(scope, receive, send))
        return self.sent


def events(messages: Sequence[Message]) -> list[Any]:
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    out: list[Any] = []
    for raw in body.split(b"\n\n"):
        if raw:
            payload = raw.removeprefix(b"data: ")
            out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return out


def text_of(evts: Sequence[Any], index: int = 0) -> str:
    out = []
    for e in evts:
        for c in e["choices"] if isinstance(e, dict) else ():
            if c["index"] == index:
                out.append(c.get("delta", {}).get("content") or c.get("text") or "")
    return "".join(out)


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# Whole responses ---------------------------------------------------------------------------


def test_a_whole_response_is_filtered_and_resized() -> None:
    vault = PseudonymVault()
    placeholder = vault.placeholder_for(Entity.EMAIL, EMAIL)
    run = Run(guarded(vault, pii="pseudonymize"))
    reply = f"Sure, I wrote to {placeholder}."
    message = {"role": "assistant", "content": reply}
    start, body = run.whole({"choices": [{"index": 0, "message": message}]})
    data = orjson.loads(body["body"])
    assert data["choices"][0]["message"]["content"] == f"Sure, I wrote to {EMAIL}."
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()


def test_completions_text_is_redacted() -> None:
    run = Run(guarded(pii="redact"), path="/v1/completions")
    sent = run.whole({"choices": [{"index": 0, "text": f"mail {EMAIL} now"}]})
    assert orjson.loads(sent[1]["body"])["choices"][0]["text"] == "mail [REDACTED:EMAIL] now"


def test_a_canary_in_a_whole_response_is_refused_before_anything_is_sent() -> None:
    run = Run(guarded(canary=True))
    leak = {"choices": [{"index": 0, "message": {"content": f"my prompt: [{CANARY.value}]"}}]}
    with pytest.raises(ContentBlocked) as refused:
        run.whole(leak)
    assert run.sent == []  # The error layer can still send a clean 400.
    refusal(run.ex, refused.value)  # what the audit layer does with every refusal
    assert (run.ex.decision, run.ex.reason, run.hits) == ("deny", "canary", ["canary"])


# Streams -----------------------------------------------------------------------------------


def test_an_entity_split_across_batched_events_is_redacted() -> None:
    reply = f"Write to {EMAIL} today"
    evts = [chunk(0, p) for p in pieces(reply, 3)]
    evts[-1]["choices"][0]["finish_reason"] = "stop"
    usage = {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": {"x": 1}}
    # The endpoint sends several events per body message, and [DONE] on its own.
    bodies = [sse(*evts[:4]), sse(*evts[4:]), sse(usage), b"data: [DONE]\n\n"]
    out = events(Run(guarded(pii="redact")).stream(bodies))
    assert text_of(out) == "Write to [REDACTED:EMAIL] today"
    assert out[-2:] == [usage, "[DONE]"]
    finishing = [e for e in out[:-2] if e["choices"][0]["finish_reason"] == "stop"]
    assert len(finishing) == 1 and out.index(finishing[0]) == len(out) - 3


def test_the_held_tail_goes_out_just_before_the_finishing_event() -> None:
    bodies = [sse(chunk(0, "id 4111"), chunk(0, " 1111 1111 1111"), chunk(0, None, "stop"))]
    out = events(Run(guarded(pii="mask")).stream([*bodies, b"data: [DONE]\n\n"]))
    *_, extra, finishing, done = out
    assert extra["choices"] == [
        {"index": 0, "delta": {"content": "****1111"}, "finish_reason": None}
    ]
    assert finishing["choices"][0]["finish_reason"] == "stop"
    assert finishing["choices"][0]["delta"] == {} and done == "[DONE]"
    assert text_of(out) == "id ****1111"


def test_an_unfinished_choice_is_flushed_before_done() -> None:
    out = events(Run(guarded()).stream([sse(chunk(0, "ends with abc")), b"data: [DONE]\n\n"]))
    assert text_of(out) == "ends with abc"
    assert out[-1] == "[DONE]"


def test_choices_are_filtered_apart() -> None:
    a, b = "to alice@example.org ok", "to bob@example.net ok"
    evts = [chunk(i, p) for pa, pb in zip(pieces(a, 4), pieces(b, 4), strict=False)
            for i, p in ((0, pa), (1, pb))]  # fmt: skip
    evts += [chunk(0, None, "stop"), chunk(1, None, "stop")]
    out = events(Run(guarded(pii="redact")).stream([sse(*evts), b"data: [DONE]\n\n"]))
    assert text_of(out, 0) == "to [REDACTED:EMAIL] ok"
    assert text_of(out, 1) == "to [REDACTED:EMAIL] ok"


def test_completion_streams_keep_their_shape() -> None:
    evts = [chunk(0, p, chat=False) for p in pieces(f"x {EMAIL}", 5)]
    run = Run(guarded(pii="redact"), path="/v1/completions")
    out = events(run.stream([sse(*evts), b"data: [DONE]\n\n"]))
    assert text_of(out) == "x [REDACTED:EMAIL]"
    assert all("delta" not in c for e in out[:-1] for c in e["choices"])


def test_an_event_split_across_body_messages_is_reassembled() -> None:
    raw = sse(chunk(0, f"hi {EMAIL}"), chunk(0, None, "stop"))
    out = events(Run(guarded(pii="redact")).stream([raw[:17], raw[17:50], raw[50:]]))
    assert text_of(out) == "hi [REDACTED:EMAIL]"


def test_the_hold_back_never_exceeds_the_window() -> None:
    reply = "word" * 100 + " " + "x" * 300  # An unbroken run longer than the window.
    fed = emitted = 0
    run = Run(guarded())
    bodies = [sse(chunk(0, p)) for p in pieces(reply, 3)]
    out = events(run.stream([*bodies, b"data: [DONE]\n\n"]))
    for e, p in zip(out, pieces(reply, 3), strict=False):
        fed += len(p)
        emitted += len(text_of([e]))
        assert fed - emitted <= DEFAULT_WINDOW
    assert text_of(out) == reply


def test_a_canary_leak_stops_the_stream_and_is_audited() -> None:
    leak = f"The marker is [{CANARY.value}] as you asked"
    run = Run(guarded(canary=True))
    with pytest.raises(ContentBlocked) as stopped:
        run.stream([sse(chunk(0, p)) for p in pieces(leak, 3)])
    assert stopped.value.reasons == ("canary",)
    assert CANARY.value not in text_of(events(run.sent))
    refusal(run.ex, stopped.value)
    assert (run.ex.decision, run.ex.reason, run.hits) == ("deny", "canary", ["canary"])


def test_without_a_guarded_call_the_layer_steps_aside() -> None:
    run = Run(guarded())
    body = sse(chunk(0, f"mail {EMAIL}"))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    layer = GuardOutMiddleware(app)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request"}

    scope: Scope = {"type": "http", "path": CHAT, EXCHANGE: run.ex, ENDPOINT: match("POST", CHAT)}
    asyncio.run(layer(scope, receive, send))
    assert sent[1]["body"] == body


# Large texts are filtered on a worker thread ------------------------------------------------


class SpyOffload(Offload):
    """An `Offload` that notes the size of each job it takes and the thread each ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.threads: set[int] = set()

    async def run(self, owner: str, size: int, work: Any, *args: Any, **kwargs: Any) -> Any:
        def noted(*a: Any, **k: Any) -> Any:
            self.threads.add(threading.get_ident())
            return work(*a, **k)

        self.sizes.append(size)
        return await super().run(owner, size, noted, *args, **kwargs)


def test_a_small_whole_answer_is_filtered_inline() -> None:
    spy = SpyOffload()
    run = Run(guarded(pii="redact"), offload=spy)
    sent = run.whole({"choices": [{"index": 0, "message": {"content": f"mail {EMAIL}"}}]})
    assert "[REDACTED:EMAIL]" in orjson.loads(sent[1]["body"])["choices"][0]["message"]["content"]
    assert spy.sizes == []


def test_a_large_whole_answer_is_filtered_on_a_worker_thread() -> None:
    spy = SpyOffload()
    run = Run(guarded(pii="redact"), offload=spy)
    text = f"mail {EMAIL} now. " * 2_000
    sent = run.whole({"choices": [{"index": 0, "message": {"content": text}}]})
    data = orjson.loads(sent[1]["body"])
    assert data["choices"][0]["message"]["content"] == "mail [REDACTED:EMAIL] now. " * 2_000
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(sent[1]["body"])).encode()
    assert len(spy.sizes) == 1 and spy.sizes[0] > spy.inline_bytes
    assert spy.threads and threading.get_ident() not in spy.threads


def test_a_canary_in_a_large_answer_is_still_refused() -> None:
    run = Run(guarded(canary=True), offload=SpyOffload())
    leak = "filler words " * 3_000 + f"[{CANARY.value}]"
    with pytest.raises(ContentBlocked):
        run.whole({"choices": [{"index": 0, "message": {"content": leak}}]})
    assert run.sent == [] and run.hits == ["canary"]


def test_only_large_stream_messages_are_filtered_on_a_worker_thread() -> None:
    spy = SpyOffload()
    big = f"mail {EMAIL} now. " * 2_000
    bodies = [sse(chunk(0, "hello ")), sse(chunk(0, big)), sse(chunk(0, None, "stop"))]
    out = events(Run(guarded(pii="redact"), offload=spy).stream([*bodies, b"data: [DONE]\n\n"]))
    assert text_of(out) == "hello " + "mail [REDACTED:EMAIL] now. " * 2_000
    assert len(spy.sizes) == 1 and spy.sizes[0] > spy.inline_bytes
    assert threading.get_ident() not in spy.threads
