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


FILLER = (
    "The garden path was lined with lavender and rosemary bushes.",
    "Rain fell steadily over the harbour town through the afternoon.",
    "A committee reviewed the quarterly budget for road maintenance.",
    "The choir rehearsed three hymns before the evening service.",
    "Old maps of the valley show a mill beside the river crossing.",
)


def test_a_fact_at_the_end_of_a_long_file_is_found_with_auto_chunks(
    served: GatewayThread,
) -> None:
    """OpenAI's 800-token `auto` chunks are three times MiniLM's window: its worker refused
    them (the file failed) and, had it truncated, the end of each chunk was never read."""
    sdk = openai.OpenAI(
        base_url=served.url + "/v1", api_key=served.demo_key, max_retries=0, timeout=120
    )
    fact = "The lighthouse keeper Ottoline keeps her spare boat key under the blue flowerpot."
    text = " ".join(FILLER[i % len(FILLER)] for i in range(150)) + " " + fact
    store = sdk.vector_stores.create(name="long")
    upload = sdk.files.create(file=("long.txt", io.BytesIO(text.encode())), purpose="assistants")
    done = sdk.vector_stores.files.create_and_poll(
        file_id=upload.id, vector_store_id=store.id, poll_interval_ms=100
    )
    assert done.status == "completed", done.last_error
    assert done.chunking_strategy.model_dump()["static"] == {  # type: ignore[union-attr]
        "max_chunk_size_tokens": 192,
        "chunk_overlap_tokens": 64,
    }
    found = list(
        sdk.vector_stores.search(
            store.id, query="where does Ottoline hide the boat key", max_num_results=3
        )
    )
    assert "blue flowerpot" in found[0].content[0].text, [r.content[0].text for r in found]
    refused = sdk.files.create(file=("b.txt", io.BytesIO(b"hello")), purpose="assistants")
    with pytest.raises(openai.BadRequestError, match="at most 200"):
        sdk.vector_stores.files.create(
            vector_store_id=store.id,
            file_id=refused.id,
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
            },
        )
