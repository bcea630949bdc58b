"""`make run`'s promise: the demo tenant's key reaches both local demo models.

Real worker processes (torch on the CPU) behind a real gateway, called with
the official `openai` SDK.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from bulkhead.runtime.lineage import start_time
from tests.support.gateway import GatewayThread


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    gw = GatewayThread(tmp_path_factory.mktemp("workers") / "data", None, workers=True).start()
    deadline = time.monotonic() + 180
    while not (gw.app.workers.status() and all(w["ready"] for w in gw.app.workers.status())):
        assert time.monotonic() < deadline, gw.app.workers.status()
        time.sleep(0.2)
    yield gw
    gw.stop()


def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.demo_key, max_retries=0, timeout=60)


def test_demo_key_lists_both_models(served: GatewayThread) -> None:
    assert {m.id for m in client(served).models.list()} == {"demo-chat", "minilm-embed"}


def test_demo_chat_answers_and_streams(served: GatewayThread) -> None:
    reply = client(served).chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "Hello"}], max_tokens=8
    )
    assert reply.model == "demo-chat" and reply.usage is not None
    assert 1 <= reply.usage.completion_tokens <= 8
    chunks = list(
        client(served).chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 1


def test_minilm_embeddings_are_real(served: GatewayThread) -> None:
    reply = client(served).embeddings.create(
        model="minilm-embed", input=["a cat sat on the mat", "a kitten on a rug", "tax law"]
    )
    a, b, c = (d.embedding for d in reply.data)
    assert len(a) == 384
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert dot(a, b) > dot(a, c)


def test_worker_crash_gives_503_then_recovers(served: GatewayThread) -> None:
    status = next(w for w in served.app.workers.status() if w["kind"] == "demo-chat")
    os.kill(int(status["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = served.call("POST", "/v1/chat/completions", served.demo_key, body)
        seen.add(response.status)
        if response.status == 200 and 503 in seen:
            break
        assert response.status in (200, 502, 503), response.body
        time.sleep(0.2)
    assert 503 in seen and response.status == 200
    # Embeddings were never affected.
    assert client(served).embeddings.create(model="minilm-embed", input="x").data


def test_worker_writes_nothing_into_the_data_dir(served: GatewayThread) -> None:
    data_dir = Path(served.settings.data_dir)
    # The gateway's own ledger of its running workers (`runtime.lineage`), one file.
    (ledger,) = (data_dir / "workers").iterdir()
    assert ledger.name.endswith(f"-{os.getpid()}-{start_time(os.getpid())}.json")
    files = {p.name for p in data_dir.rglob("*") if p.is_file() and p != ledger}
    assert files <= {
        "bulkhead.db",
        "bulkhead.db-wal",
        "bulkhead.db-shm",
        "profile.json",
        "checkpoints.txt",
        "master.key",  # the embedded KMS's master key (0600), not worker output
        "keks.json",  # tenant KEKs, wrapped under it
    }, files
