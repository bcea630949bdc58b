"""A fake OpenAI-compatible model server: fast, deterministic, and able to misbehave.

Behaviour is chosen per request by the model name the gateway sends upstream:
`slow-*` sleeps before answering, `garbage-*` answers non-JSON, `fail-*`
answers HTTP 500, `reject-*` answers 400 with an OpenAI error, `cut-*` ends a
stream early.  `echo-*` answers with the last user message (or the prompt) and
`leak-*` with the system prompt, streamed in pieces of `ECHO_PIECE`
characters, so tests can see what output filtering does to a known text.
`huge-<n>-*` is a hostile server: it answers `n` characters of text dense
with personal data whatever the call asked for (streamed in events of
`HUGE_PIECE` characters).
It records the last request body so tests can see exactly what
the gateway forwarded, and counts the generation calls in flight (`in_flight`,
`peak_in_flight`) so tests can see a capacity limit hold.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import zlib
from typing import Any

import orjson
from aiohttp import web

WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
ECHO_PIECE = 3
HUGE_PIECE = 1_800
_PERSONAL = "call +1 415 555 0100 or mail user@example.com, card 4111 1111 1111 1111. "


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def huge_text(model: str) -> str | None:
    """What a `huge-<n>-*` model answers: `n` characters of personal data; None for others."""
    size = model.split("-")[1] if model.startswith("huge-") else ""
    if not size.isdigit():
        return None
    return (_PERSONAL * (int(size) // len(_PERSONAL) + 1))[: int(size)]


def echo_text(body: dict[str, Any], model: str) -> str | None:
    """What an `echo-*`, `leak-*` or `huge-<n>-*` model answers; None for the other models."""
    huge = huge_text(model)
    if huge is not None:
        return huge
    role = "user" if model.startswith("echo-") else "system" if model.startswith("leak-") else ""
    if not role:
        return None
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    said = [_content_text(m.get("content")) for m in messages if m.get("role") == role]
    if said:
        return said[-1] if role == "user" else said[0]
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else ""


def _pieces(body: dict[str, Any], model: str, n: int) -> list[str]:
    """The completion, as the pieces a stream sends."""
    echoed = echo_text(body, model)
    if echoed is None:
        return [WORDS[i % len(WORDS)] + " " for i in range(n)]
    piece = HUGE_PIECE if model.startswith("huge-") else ECHO_PIECE
    return [echoed[i : i + piece] for i in range(0, len(echoed), piece)] or [""]


def _prompt_tokens(body: dict[str, Any]) -> int:
    text = orjson.dumps(body.get("messages") or body.get("prompt") or body.get("input") or "")
    return max(1, len(text) // 4)


def _bag_of_words(text: object) -> list[float]:
    """A 64-dimension count of the text's words, each word in a bucket by its CRC-32."""
    vector = [0.0] * 64
    for word in str(text).lower().split():
        vector[zlib.crc32(word.strip(".,;:!?").encode()) % 64] += 1.0
    return vector


class FakeUpstream:
    def __init__(self, *, chunks: int = 20, slow_s: float = 2.0):
        self.chunks = chunks
        self.slow_s = slow_s
        self.last_body: dict[str, Any] | None = None
        self.last_headers: dict[str, str] = {}
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    async def _body(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(await request.read())
        self.requests += 1
        self.last_body = body
        self.last_headers = dict(request.headers)
        return body

    async def _misbehave(self, model: str) -> web.Response | None:
        if model.startswith("slow-"):
            await asyncio.sleep(self.slow_s)
        if model.startswith("garbage-"):
            return web.Response(body=b"<html>oops</html>", content_type="text/html")
        if model.startswith("fail-"):
            return web.Response(status=500, body=b"Traceback (most recent call last): secret")
        if model.startswith("reject-"):
            return web.json_response(
                {"error": {"message": "bad temperature", "type": "invalid_request_error"}},
                status=400,
            )
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat.completion")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "text_completion")

    async def _generate(self, request: web.Request, kind: str) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request, kind)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, kind: str) -> web.StreamResponse:
        body = await self._body(request)
        model = str(body.get("model", ""))
        bad = await self._misbehave(model)
        if bad is not None:
            return bad
        prompt = _prompt_tokens(body)
        if body.get("stream"):
            return await self._stream(request, body, kind, prompt)
        n = int(body.get("max_tokens") or 8)
        echoed = echo_text(body, model)
        text = " ".join(WORDS[i % len(WORDS)] for i in range(n)) if echoed is None else echoed
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        if kind == "chat.completion":
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return web.Response(
            body=orjson.dumps(
                {
                    "id": "cmpl-fake",
                    "object": kind,
                    "created": int(time.time()),
                    "model": model,
                    "choices": [choice],
                    "usage": _usage(prompt, n if echoed is None else max(1, len(text) // 4)),
                }
            ),
            content_type="application/json",
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], kind: str, prompt: int
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        model = str(body["model"])
        chat = kind == "chat.completion"
        pieces = _pieces(body, model, self.chunks)
        for i, piece in enumerate(pieces):
            choice: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                choice["delta"] = (
                    {"content": piece} if i else {"role": "assistant", "content": piece}
                )
            else:
                choice["text"] = piece
            if i == len(pieces) - 1:
                choice["finish_reason"] = "length"
            chunk = {
                "id": "chunk-fake",
                "object": "chat.completion.chunk" if chat else kind,
                "created": 0,
                "model": model,
                "choices": [choice],
            }
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            if model.startswith("cut-") and i == 2:
                return response
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "id": "chunk-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": _usage(prompt, len(pieces)),
            }
            await response.write(b"data: " + orjson.dumps(usage) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        bad = await self._misbehave(str(body.get("model", "")))
        if bad is not None:
            return bad
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        words = str(body["model"]).startswith("bow-")  # a bag of words: similar texts are near
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _bag_of_words(text) if words else [0.1 * (i + 1)] * 8,
            }
            for i, text in enumerate(inputs)
        ]
        return web.Response(
            body=orjson.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {
                        "prompt_tokens": _prompt_tokens(body),
                        "total_tokens": _prompt_tokens(body),
                    },
                }
            ),
            content_type="application/json",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9901)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--slow-s", type=float, default=2.0, help="how long `slow-*` sleeps")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        FakeUpstream(chunks=args.chunks, slow_s=args.slow_s).app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
