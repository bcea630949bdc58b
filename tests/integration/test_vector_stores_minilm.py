"""A vector store with its default model: the bundled MiniLM, on this host, found by meaning.

`bulkhead init` grants `minilm-embed` to the demo tenant; a real gateway starts
its worker (sandboxed), and a store created without `embedding_model` embeds
its chunks and queries with it through the tenant's own `/v1/embeddings` path.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import openai
import pytest

from tests.support.gateway import GatewayThread

DOCS = {
    "pets.txt": "Kittens and cats are small domestic felines that purr and chase mice.",
    "space.txt": "The rocket lifted off from the launch pad and reached low Earth orbit.",
    "food.txt": "Knead the dough, let it rise overnight, then bake the bread until golden.",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    data = tmp_path_factory.mktemp("minilm") / "data"
    env = {"BULKHEAD_DEMO_CHAT_MODEL": "demo-chat"}  # a chat worker that starts at once
    gw = GatewayThread(data, None, workers=True, env=env).start()
    try:
        deadline = time.monotonic() + 240
        while not next(w for w in gw.app.workers.status() if w["model"] == "minilm-embed")["ready"]:
            assert time.monotonic() < deadline, gw.app.workers.status()
            time.sleep(0.5)
        yield gw
    finally:
        gw.stop()


def test_the_bundled_minilm_finds_by_meaning(served: GatewayThread) -> None:
    sdk = openai.OpenAI(
        base_url=served.url + "/v1", api_key=served.demo_key, max_retries=0, timeout=120
    )
    store = sdk.vector_stores.create(name="demo")
    for name, text in DOCS.items():
        upload = sdk.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants")
        done = sdk.vector_stores.files.create_and_poll(
            file_id=upload.id, vector_store_id=store.id, poll_interval_ms=100
        )
        assert done.status == "completed", done.last_error
    for query, expected in (
        ("which animal is a pet that meows", "pets.txt"),
        ("spacecraft going to orbit", "space.txt"),
        ("how do I make a loaf", "food.txt"),
    ):
        found = list(sdk.vector_stores.search(store.id, query=query, max_num_results=3))
        assert found[0].filename == expected, [(r.filename, r.score) for r in found]
    shown = sdk.vector_stores.retrieve(store.id).model_dump()
    assert shown["embedding_model"] == "minilm-embed"
