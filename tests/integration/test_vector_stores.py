"""`/v1/vector_stores` through a real gateway on 127.0.0.1, with the official `openai` SDK.

The embedding model is the fake upstream's `bow-…` (a bag of words: texts
sharing words are near), granted to the tenants like any model; chunks and
queries reach it through the tenant's own `/v1/embeddings` path.
"""

from __future__ import annotations

import io
from typing import Any

import openai
import pytest

from tests.support.gateway import GatewayThread, UpstreamThread

MODEL = "vs-embed"
DOCS = {
    "cats.txt": b"Cats purr and sleep in the sun. A cat chases mice.",
    "rockets.txt": b"Rockets burn fuel to reach orbit. Engines ignite at launch.",
}


@pytest.fixture(scope="module")
def world(gateway: GatewayThread, upstream: UpstreamThread) -> dict[str, Any]:
    gateway.tenant("vsa")
    gateway.tenant("vsb")
    gateway.model(
        MODEL,
        upstream.url,
        upstream_model="bow-embed",
        grant=("vsa", "vsb"),
        endpoints=["embeddings"],
    )
    return {"gw": gateway, "a": gateway.key("vsa"), "b": gateway.key("vsb")}


def client(world: dict[str, Any], who: str) -> openai.OpenAI:
    gw: GatewayThread = world["gw"]
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=world[who], max_retries=0, timeout=20)


def _store(world: dict[str, Any], who: str = "a") -> tuple[openai.OpenAI, str, dict[str, str]]:
    sdk = client(world, who)
    store = sdk.vector_stores.create(name="docs", extra_body={"embedding_model": MODEL})
    ids = {}
    for name, data in DOCS.items():
        upload = sdk.files.create(file=(name, io.BytesIO(data)), purpose="assistants")
        done = sdk.vector_stores.files.create_and_poll(
            file_id=upload.id,
            vector_store_id=store.id,
            attributes={"topic": name.removesuffix(".txt")},
            poll_interval_ms=50,
        )
        assert done.status == "completed", done.last_error
        ids[name] = upload.id
    return sdk, store.id, ids


def test_the_sdk_creates_fills_and_searches_a_store(world: dict[str, Any]) -> None:
    sdk, store_id, ids = _store(world)
    store = sdk.vector_stores.retrieve(store_id)
    assert store.file_counts.completed == 2 and store.usage_bytes > 0
    assert store.id.startswith("vs_") and len(store.id) == 27
    found = list(sdk.vector_stores.search(store_id, query="does a cat purr", max_num_results=2))
    assert found[0].file_id == ids["cats.txt"] and found[0].filename == "cats.txt"
    assert "purr" in found[0].content[0].text and found[0].attributes == {"topic": "cats"}
    filtered = sdk.vector_stores.search(
        store_id,
        query="does a cat purr",
        filters={"type": "eq", "key": "topic", "value": "rockets"},
    )
    assert {r.file_id for r in filtered} == {ids["rockets.txt"]}
    strict = sdk.vector_stores.search(
        store_id, query="does a cat purr", ranking_options={"score_threshold": 0.99}
    )
    assert list(strict) == []


def test_list_modify_page_and_delete(world: dict[str, Any]) -> None:
    sdk, store_id, ids = _store(world)
    renamed = sdk.vector_stores.update(store_id, name="renamed", metadata={"k": "v"})
    assert renamed.name == "renamed" and renamed.metadata == {"k": "v"}
    first = sdk.vector_stores.files.list(store_id, limit=1)
    assert len(first.data) == 1 and first.has_more
    rest = sdk.vector_stores.files.list(store_id, limit=1, after=first.data[0].id)
    assert {first.data[0].id, rest.data[0].id} == set(ids.values())
    assert sdk.vector_stores.files.delete(ids["cats.txt"], vector_store_id=store_id).deleted
    assert [f.id for f in sdk.vector_stores.files.list(store_id)] == [ids["rockets.txt"]]
    found = sdk.vector_stores.search(store_id, query="cat purr sun")
    assert {r.file_id for r in found} <= {ids["rockets.txt"]}
    assert store_id in {s.id for s in sdk.vector_stores.list(limit=100)}
    assert sdk.vector_stores.delete(store_id).deleted
    with pytest.raises(openai.NotFoundError):
        sdk.vector_stores.retrieve(store_id)


def test_another_tenants_ids_are_not_found(world: dict[str, Any]) -> None:
    _, store_id, ids = _store(world, "a")
    other = client(world, "b")
    calls = [
        lambda: other.vector_stores.retrieve(store_id),
        lambda: other.vector_stores.update(store_id, name="x"),
        lambda: other.vector_stores.search(store_id, query="cat"),
        lambda: other.vector_stores.files.list(store_id),
        lambda: other.vector_stores.files.retrieve(ids["cats.txt"], vector_store_id=store_id),
        lambda: other.vector_stores.files.delete(ids["cats.txt"], vector_store_id=store_id),
        lambda: other.vector_stores.delete(store_id),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    mine = other.vector_stores.create(name="b", extra_body={"embedding_model": MODEL})
    with pytest.raises(openai.NotFoundError):  # a's file cannot be attached to b's store
        other.vector_stores.files.create(vector_store_id=mine.id, file_id=ids["cats.txt"])


def test_a_model_not_granted_fails_the_file_with_a_reason(world: dict[str, Any]) -> None:
    sdk = client(world, "a")
    store = sdk.vector_stores.create(name="x", extra_body={"embedding_model": "not-granted"})
    upload = sdk.files.create(file=("a.txt", io.BytesIO(b"some text")), purpose="assistants")
    done = sdk.vector_stores.files.create_and_poll(
        file_id=upload.id, vector_store_id=store.id, poll_interval_ms=50
    )
    assert done.status == "failed" and done.last_error is not None
    assert "not-granted" in done.last_error.message
    binary = sdk.files.create(file=("b.bin", io.BytesIO(b"\xff\xfe\x00")), purpose="assistants")
    bad = sdk.vector_stores.files.create_and_poll(
        file_id=binary.id, vector_store_id=store.id, poll_interval_ms=50
    )
    assert bad.status == "failed" and bad.last_error.code == "unsupported_file"  # type: ignore[union-attr]


def test_bad_bodies_are_400(world: dict[str, Any]) -> None:
    gw: GatewayThread = world["gw"]
    store = client(world, "a").vector_stores.create(extra_body={"embedding_model": MODEL})
    bad = [
        ("/v1/vector_stores", {"name": 5}),
        ("/v1/vector_stores", {"chunking_strategy": {"type": "static"}}),
        (f"/v1/vector_stores/{store.id}/files", {"file_id": "../x"}),
        (
            f"/v1/vector_stores/{store.id}/files",
            {
                "file_id": "file-x",
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0},
                },
            },
        ),
        (f"/v1/vector_stores/{store.id}/search", {"query": ""}),
        (f"/v1/vector_stores/{store.id}/search", {"query": "x", "max_num_results": 51}),
        (f"/v1/vector_stores/{store.id}/search", {"query": "x", "filters": {"type": "zz"}}),
    ]
    for path, body in bad:
        got = gw.call("POST", path, world["a"], body)
        assert got.status == 400, (path, body, got.body)
        assert got.body["error"]["type"] == "invalid_request_error"


def test_embedding_goes_through_the_tenants_own_path(world: dict[str, Any]) -> None:
    """Chunks and queries are `/v1/embeddings` calls of the tenant: metered and audited."""
    gw: GatewayThread = world["gw"]
    sdk, store_id, _ = _store(world, "b")
    sdk.vector_stores.search(store_id, query="rockets")
    gw.app.audit.flush()
    admin = gw.key("vsb", role="tenant_admin")
    usage = gw.call("GET", "/tenant/v1/usage", admin).body["data"]
    embeds = next(u for u in usage if u["model"] == MODEL)
    assert embeds["requests"] >= 3  # two files and one query, at least
    auditor = gw.key("vsb", role="tenant_auditor")
    events = gw.call("GET", "/tenant/v1/audit/events?limit=1000", auditor)
    assert events.status == 200, events.body
    actions = {e["action"] for e in events.body["data"]}
    assert {"v1:embeddings", "v1:vector_stores.search"} <= actions


def test_deleting_the_tenant_drops_its_plaintext_index(world: dict[str, Any]) -> None:
    gw: GatewayThread = world["gw"]
    gw.tenant("vsgone")
    gw.must("POST", f"/admin/v1/models/{MODEL}/grants", {"tenant": "vsgone"})
    world["gone"] = gw.key("vsgone")
    sdk, store_id, _ = _store(world, "gone")
    sdk.vector_stores.search(store_id, query="cat")
    assert [k for k in _cache(gw).loaded() if k[1] == store_id], "the search loaded the store"
    gw.grant("admin:tenants.delete", "vsgone")
    gw.must("DELETE", "/admin/v1/tenants/vsgone")  # its keys are destroyed first
    gw.app.catalog.reload()  # what every replica does within a catalog poll
    assert not [k for k in _cache(gw).loaded() if k[1] == store_id]


def test_a_tenant_at_concurrency_one_can_search(world: dict[str, Any]) -> None:
    """A search holds its slot while its query is embedded: the embedding takes no second."""
    gw: GatewayThread = world["gw"]
    gw.tenant("vsone")
    gw.must("POST", f"/admin/v1/models/{MODEL}/grants", {"tenant": "vsone"})
    world["one"] = gw.key("vsone")
    sdk, store_id, _ = _store(world, "one")
    gw.must("PATCH", "/admin/v1/tenants/vsone/limits", {"concurrency": 1})
    gw.app.catalog.reload()
    assert list(sdk.vector_stores.search(store_id, query="cats"))


def _cache(gw: GatewayThread) -> Any:
    app: Any = gw.app.chain
    while not hasattr(app, "vectors"):
        app = app.app
    return app.vectors.service.stores.cache
