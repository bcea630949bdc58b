"""The whole gateway called in process: ASGI messages, no socket; the upstream answered in process.

`InProcessGateway` is `GatewayThread`'s gateway (`bulkhead init`, `build`, SQLite
in a temporary directory) without uvicorn: `request` hands one ASGI request to
the full chain on the gateway's own event loop, so a fuzzer can send tens of
thousands of requests a minute.  The upstream client's `call` and `stream` are
replaced by `in_process_upstream`, which answers the way the fake upstream
(`bulkhead.testing.fake_upstream`) does, without a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from bulkhead.app import Application, build, initialize
from bulkhead.identity.passwords import Passwords
from bulkhead.runtime import Target, UpstreamClient
from bulkhead.runtime.upstream import Batch
from bulkhead.settings import load
from tests.support.gateway import GatewayThread, Response

HOST = "testserver"


@dataclass
class Answer:
    """One ASGI response: status, headers (lower-case names) and the whole body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""

    def json(self) -> Any:
        return json.loads(self.raw)


async def asgi_request(
    app: Any,
    method: str,
    path: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    query: bytes = b"",
) -> Answer:
    """Send one request to an ASGI app and collect its whole answer."""
    done = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    answer = Answer(0)
    chunks: list[bytes] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {
                bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
                for k, v in message.get("headers", ())
            }
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", HOST.encode()), *(headers or [])],
        "client": ("127.0.0.1", 40000),
        "server": (HOST, 80),
        "state": {},
    }
    try:
        await app(scope, receive, send)
    finally:
        done.set()
    answer.raw = b"".join(chunks)
    return answer


# The upstream, answered in process ---------------------------------------------------------

WORDS = ("lorem", "ipsum", "dolor", "sit", "amet")


def _usage(payload: dict[str, Any], completion: int) -> dict[str, int]:
    prompt = max(1, len(json.dumps(payload, default=str)) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + 1}


def upstream_answer(path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What the fake upstream answers to a whole (not streamed) call."""
    model = payload.get("model")
    if path == "/embeddings":
        value = payload.get("input")
        inputs = value if isinstance(value, list) else [value]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1] * 4} for i in range(len(inputs))
        ]
        return {"object": "list", "data": data, "model": model, "usage": _usage(payload, 0)}
    text = " ".join(WORDS)
    chat = path == "/chat/completions"
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "id": "cmpl-fake",
        "object": "chat.completion" if chat else "text_completion",
        "created": 0,
        "model": model,
        "choices": [choice],
        "usage": _usage(payload, len(WORDS)),
    }


def _batch(events: list[dict[str, Any]]) -> Batch:
    batch = Batch(events)
    batch.size = len(json.dumps(events))
    return batch


async def upstream_events(path: str, payload: dict[str, Any]) -> AsyncGenerator[Batch]:
    """What the fake upstream streams: a few pieces, then the usage chunk."""
    chat = path == "/chat/completions"
    kind = "chat.completion.chunk" if chat else "text_completion"
    for i, word in enumerate(WORDS):
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop" if i == 4 else None}
        if chat:
            choice["delta"] = {"content": word + " "}
        else:
            choice["text"] = word + " "
        event = {"id": "c", "object": kind, "created": 0, "model": "m", "choices": [choice]}
        yield _batch([event])
    usage = {"id": "c", "object": kind, "created": 0, "model": "m", "choices": []}
    yield _batch([usage | {"usage": _usage(payload, len(WORDS))}])


def in_process_upstream(client: UpstreamClient) -> None:
    """Make `client` answer every call itself, as the fake upstream would, with no connection."""

    async def call(target: Target, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return upstream_answer(path, payload)

    async def stream(target: Target, path: str, payload: dict[str, Any]) -> AsyncGenerator[Batch]:
        async for batch in upstream_events(path, payload):
            yield batch

    client.call = call  # type: ignore[method-assign]
    client.stream = stream  # type: ignore[method-assign]


# The gateway --------------------------------------------------------------------------------


class InProcessGateway(GatewayThread):
    """`GatewayThread`'s gateway and conveniences, called through ASGI on its own event loop."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        *,
        cheap_passwords: bool = False,
        fine_tuning_runner: Any = None,
    ):
        """`cheap_passwords`: Argon2id at its least cost, for tests that sign in thousands of
        times (what they test is the handling of the input, not the hash)."""
        env = {
            "BULKHEAD_START_WORKERS": "0",
            "BULKHEAD_DEMO_CHAT_MODEL": "demo-chat",
            "BULKHEAD_SIGNIN_CLIENT_RPM": "1000000",
            "BULKHEAD_SIGNIN_RPM": "1000000",
            **(env or {}),
        }
        self.settings = load(data_dir=data_dir, port=8080, metrics_port=0, env=env)
        self.url = f"http://{HOST}"
        init = initialize(self.settings, self.url)
        self.admin_key, self.demo_key = init.admin_key, init.demo_key or ""
        with contextlib.ExitStack() as stack:
            if cheap_passwords:
                cheap = functools.partial(Passwords, time_cost=1, memory_kib=8, parallelism=1)
                stack.enter_context(mock.patch("bulkhead.app.build.Passwords", cheap))
            self.app: Application = build(self.settings, fine_tuning_runner=fine_tuning_runner)
        in_process_upstream(self.app.upstreams)
        self.loop = asyncio.new_event_loop()
        self._approver_key: str | None = None
        self._held: set[tuple[str, str]] = set()

    def start(self) -> InProcessGateway:
        return self

    def stop(self) -> None:
        self.loop.run_until_complete(self.app.shutdown())
        self.loop.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        query: bytes = b"",
    ) -> Answer:
        coroutine = asgi_request(self.app, method, path, headers=headers, body=body, query=query)
        return self.loop.run_until_complete(coroutine)

    def call(
        self,
        method: str,
        path: str,
        key: str | None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        **ignored: Any,
    ) -> Response:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        sent: list[tuple[bytes, bytes]] = []
        if key:
            sent.append((b"authorization", f"Bearer {key}".encode()))
        if data:
            sent.append((b"content-type", b"application/json"))
        sent += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        path, _, query = path.partition("?")
        answer = self.request(method, path, headers=sent, body=data, query=query.encode())
        try:
            parsed = json.loads(answer.raw) if answer.raw else None
        except ValueError:
            parsed = None
        return Response(answer.status, parsed, answer.headers, answer.raw)

    def admin(self, method: str, path: str, body: Any = None, key: str | None = None) -> Response:
        return self.call(method, path, key or self.admin_key, body)
