"""The worker's routes: chat and text completions (whole or streamed) and embeddings,
each computed on the one model thread (`ModelRunner`) and answered in OpenAI's shapes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import struct
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Final, ParamSpec, Protocol, TypeVar

import orjson
from aiohttp import web

from .backends import ChatBackend, EmbedBackend, FinishReason, TextGeneration
from .errors import SERVER_ERROR, error_body
from .validation import (
    StreamOptions,
    parse_chat_request,
    parse_completion_request,
    parse_embedding_request,
    parse_json_body,
)

logger = logging.getLogger(__name__)

GENERIC_SERVER_ERROR: Final = "The server had an error while processing your request."

P = ParamSpec("P")
T = TypeVar("T")


class ModelRunner:
    """Runs model calls one at a time on a single dedicated thread.

    The models are not thread-safe. A one-thread executor serialises every call exactly as
    a lock would, keeps calls in arrival order, and lets several streams interleave their
    decoding steps fairly instead of one stream holding the model until it is done.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the model thread and wait for its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def call_soon(self, fn: Callable[[], object]) -> None:
        """Queue ``fn`` on the model thread without waiting, e.g. to free a cache."""
        self._executor.submit(fn)

    def shutdown(self) -> None:
        """Drop queued work; a call that is already running finishes on its own."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def json_response(body: Mapping[str, object], status: int = 200) -> web.Response:
    """Serialise ``body`` with orjson, which is both fast and strict about types."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _now() -> int:
    """Return the Unix timestamp that OpenAI puts into ``created``."""
    return int(time.time())


def _new_id(prefix: str) -> str:
    """Return a random, unguessable response id such as ``chatcmpl-<hex>``."""
    return f"{prefix}{uuid.uuid4().hex}"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """Return the OpenAI ``usage`` object for a completion."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# --------------------------------------------------------------------------------------
# Completions (demo-chat)
# --------------------------------------------------------------------------------------


class _ResponseFormat(Protocol):
    """How chat and text completions differ in their JSON shape."""

    id_prefix: str
    object_name: str
    chunk_object_name: str

    def opening_choices(self) -> list[dict[str, object]]:
        """Return the choices of the chunk sent before any content, or [] for none."""

    def chunk_choice(self, text: str | None, finish: FinishReason | None) -> dict[str, object]:
        """Return the single choice of a streamed chunk."""

    def full_choice(self, text: str, finish: FinishReason | None) -> dict[str, object]:
        """Return the single choice of a non-streamed response."""


class _ChatFormat:
    """``chat.completion`` objects with ``message`` and ``delta``."""

    id_prefix = "chatcmpl-"
    object_name = "chat.completion"
    chunk_object_name = "chat.completion.chunk"

    def opening_choices(self) -> list[dict[str, object]]:
        """OpenAI announces the assistant role in a first chunk with empty content."""
        delta = {"role": "assistant", "content": ""}
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]

    def chunk_choice(self, text: str | None, finish: FinishReason | None) -> dict[str, object]:
        """A content delta; without text it is the empty delta that carries only the end."""
        delta = {} if text is None else {"content": text}
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def full_choice(self, text: str, finish: FinishReason | None) -> dict[str, object]:
        """The assistant message of a non-streamed chat completion."""
        message = {"role": "assistant", "content": text}
        return {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}


class _TextFormat:
    """Legacy ``text_completion`` objects, streamed and non-streamed alike."""

    id_prefix = "cmpl-"
    object_name = "text_completion"
    chunk_object_name = "text_completion"

    def opening_choices(self) -> list[dict[str, object]]:
        """Text completions have no role, so nothing is sent before the content."""
        return []

    def chunk_choice(self, text: str | None, finish: FinishReason | None) -> dict[str, object]:
        """A piece of completion text."""
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}

    def full_choice(self, text: str, finish: FinishReason | None) -> dict[str, object]:
        """The whole completion text."""
        return self.chunk_choice(text, finish)


def _run_to_end(generation: TextGeneration) -> str:
    """Step a generation until it finishes and return the concatenated text."""
    pieces: list[str] = []
    while (piece := generation.step()) is not None:
        pieces.append(piece)
    return "".join(pieces)


class _EventStream:
    """Writes server-sent events for one streamed completion."""

    def __init__(
        self,
        response: web.StreamResponse,
        response_format: _ResponseFormat,
        model_name: str,
        options: StreamOptions,
    ) -> None:
        self._response = response
        self._format = response_format
        self._options = options
        self._header: dict[str, object] = {
            "id": _new_id(response_format.id_prefix),
            "object": response_format.chunk_object_name,
            "created": _now(),
            "model": model_name,
        }

    async def send(self, payload: Mapping[str, object]) -> None:
        """Write one ``data:`` event; aiohttp hands it to the socket immediately."""
        await self._response.write(b"data: " + orjson.dumps(payload) + b"\n\n")

    async def send_choices(self, choices: list[dict[str, object]]) -> None:
        """Send a chunk; OpenAI adds ``usage: null`` to it when usage was requested."""
        chunk: dict[str, object] = {**self._header, "choices": choices}
        if self._options.include_usage:
            chunk["usage"] = None
        await self.send(chunk)

    async def send_usage(self, generation: TextGeneration) -> None:
        """Send the final usage-only chunk that ``include_usage`` asks for."""
        usage = _usage(generation.prompt_tokens, generation.completion_tokens)
        await self.send({**self._header, "choices": [], "usage": usage})

    async def send_done(self) -> None:
        """Send the ``[DONE]`` sentinel that ends every OpenAI stream."""
        await self._response.write(b"data: [DONE]\n\n")


class ChatRoutes:
    """Handlers of ``/v1/chat/completions`` and ``/v1/completions``."""

    def __init__(self, backend: ChatBackend, runner: ModelRunner, model_name: str) -> None:
        self._backend = backend
        self._runner = runner
        self._model_name = model_name

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """Handle ``POST /v1/chat/completions``."""
        parsed = parse_chat_request(parse_json_body(await request.read()))
        start = functools.partial(self._backend.start_chat, parsed.messages, parsed.sampling)
        return await self._complete(request, start, parsed.streaming, _ChatFormat())

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """Handle ``POST /v1/completions``."""
        parsed = parse_completion_request(parse_json_body(await request.read()))
        start = functools.partial(self._backend.start, parsed.prompt, parsed.sampling)
        return await self._complete(request, start, parsed.streaming, _TextFormat())

    async def _complete(
        self,
        request: web.Request,
        start: Callable[[], TextGeneration],
        streaming: StreamOptions,
        response_format: _ResponseFormat,
    ) -> web.StreamResponse:
        """Start the generation on the model thread, then answer in one piece or as a stream."""
        generation = await self._runner.call(start)
        try:
            if streaming.stream:
                return await self._stream(request, generation, streaming, response_format)
            text = await self._runner.call(_run_to_end, generation)
        finally:
            # Frees the key/value cache even if the client vanished mid-stream. It runs on
            # the model thread, after any step of this generation that is still running.
            self._runner.call_soon(generation.close)
        body = {
            "id": _new_id(response_format.id_prefix),
            "object": response_format.object_name,
            "created": _now(),
            "model": self._model_name,
            "choices": [response_format.full_choice(text, generation.finish_reason)],
            "usage": _usage(generation.prompt_tokens, generation.completion_tokens),
        }
        return json_response(body)

    async def _stream(
        self,
        request: web.Request,
        generation: TextGeneration,
        options: StreamOptions,
        response_format: _ResponseFormat,
    ) -> web.StreamResponse:
        """Stream one chunk per decoded piece as server-sent events."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        events = _EventStream(response, response_format, self._model_name, options)
        try:
            await self._send_events(events, generation, options, response_format)
        except ConnectionResetError:
            logger.info("Client disconnected during a stream; generation abandoned.")
        except Exception:
            # Headers are already sent, so the status cannot change any more; tell the
            # client in-band, the way OpenAI reports errors mid-stream.
            logger.exception("Generation failed during a stream.")
            error = error_body(GENERIC_SERVER_ERROR, error_type=SERVER_ERROR)
            with contextlib.suppress(ConnectionResetError):
                await events.send(error)
        return response

    async def _send_events(
        self,
        events: _EventStream,
        generation: TextGeneration,
        options: StreamOptions,
        response_format: _ResponseFormat,
    ) -> None:
        """Forward pieces as they are decoded, holding one back to attach finish_reason."""
        opening = response_format.opening_choices()
        if opening:
            await events.send_choices(opening)
        held: str | None = None
        while (piece := await self._runner.call(generation.step)) is not None:
            if not piece:
                continue
            if held is not None:
                await events.send_choices([response_format.chunk_choice(held, None)])
            held = piece
        finish = generation.finish_reason
        await events.send_choices([response_format.chunk_choice(held, finish)])
        if options.include_usage:
            await events.send_usage(generation)
        await events.send_done()


# --------------------------------------------------------------------------------------
# Embeddings (minilm-embed)
# --------------------------------------------------------------------------------------


class EmbeddingRoutes:
    """Handler of ``/v1/embeddings``."""

    def __init__(self, backend: EmbedBackend, runner: ModelRunner, model_name: str) -> None:
        self._backend = backend
        self._runner = runner
        self._model_name = model_name

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        """Handle ``POST /v1/embeddings``."""
        body = parse_json_body(await request.read())
        parsed = parse_embedding_request(body, self._backend.dimensions)
        result = await self._runner.call(self._backend.embed, parsed.texts)
        encode = _base64_floats if parsed.base64 else _plain_floats
        data = [
            {"object": "embedding", "index": index, "embedding": encode(vector)}
            for index, vector in enumerate(result.vectors)
        ]
        usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
        return json_response(
            {"object": "list", "data": data, "model": self._model_name, "usage": usage}
        )


def _plain_floats(vector: list[float]) -> object:
    """Embeddings as a JSON array of numbers, the OpenAI default."""
    return vector


def _base64_floats(vector: list[float]) -> object:
    """Embeddings as base64 of little-endian float32, exactly as OpenAI encodes them."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
