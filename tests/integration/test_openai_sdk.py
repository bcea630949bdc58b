"""The official `openai` SDK, unmodified, against a real gateway on 127.0.0.1."""

from __future__ import annotations

import openai
import pytest

from tests.support.gateway import GatewayThread, UpstreamThread


@pytest.fixture(scope="module")
def setup(gateway: GatewayThread, upstream: UpstreamThread) -> tuple[GatewayThread, str]:
    gateway.tenant("sdk")
    gateway.model(
        "sdk-chat",
        upstream.url,
        upstream_model="fake-chat",
        grant=("sdk",),
        endpoints=["chat", "completions"],
    )
    gateway.model(
        "sdk-embed",
        upstream.url,
        upstream_model="fake-embed",
        grant=("sdk",),
        endpoints=["embeddings"],
    )
    gateway.tenant("sdk-x")
    gateway.model("sdk-other", upstream.url, upstream_model="fake-chat", grant=("sdk-x",))
    return gateway, gateway.key("sdk")


def client(gw: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def test_chat(setup: tuple[GatewayThread, str], upstream: UpstreamThread) -> None:
    gw, key = setup
    reply = client(gw, key).chat.completions.create(
        model="sdk-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert reply.model == "sdk-chat"
    assert reply.choices[0].message.content == "lorem ipsum dolor sit"
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert upstream.fake.last_body is not None
    assert upstream.fake.last_body["model"] == "fake-chat"


def test_streaming_with_usage_chunk(setup: tuple[GatewayThread, str]) -> None:
    gw, key = setup
    stream = client(gw, key).chat.completions.create(
        model="sdk-chat",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("lorem ipsum")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20
    assert all(c.model == "sdk-chat" for c in chunks)


def test_streaming_without_usage_hides_usage_chunk(setup: tuple[GatewayThread, str]) -> None:
    gw, key = setup
    chunks = list(
        client(gw, key).chat.completions.create(
            model="sdk-chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_completions(setup: tuple[GatewayThread, str]) -> None:
    gw, key = setup
    reply = client(gw, key).completions.create(model="sdk-chat", prompt="once", max_tokens=2)
    assert reply.choices[0].text == "lorem ipsum"


def test_embeddings(setup: tuple[GatewayThread, str]) -> None:
    gw, key = setup
    reply = client(gw, key).embeddings.create(model="sdk-embed", input=["a", "b"])
    assert len(reply.data) == 2 and reply.model == "sdk-embed"


def test_models_list_shows_only_what_the_caller_may_use(setup: tuple[GatewayThread, str]) -> None:
    gw, key = setup
    names = {m.id for m in client(gw, key).models.list()}
    assert names == {"sdk-chat", "sdk-embed"}


def test_models_retrieve_answers_only_what_the_caller_may_use(
    setup: tuple[GatewayThread, str],
) -> None:
    gw, key = setup
    model = client(gw, key).models.retrieve("sdk-chat")
    assert (model.id, model.object, model.owned_by) == ("sdk-chat", "model", "bulkhead")
    for name in ("nope", "sdk-other"):  # unknown, and one the tenant is not granted
        with pytest.raises(openai.NotFoundError) as info:
            client(gw, key).models.retrieve(name)
        assert info.value.code == "model_not_found"


def test_bad_key_is_authentication_error(setup: tuple[GatewayThread, str]) -> None:
    gw, _ = setup
    with pytest.raises(openai.AuthenticationError):
        client(gw, "bk_aaaaaaaaaaaa_" + "x" * 43).models.list()


def test_unknown_model_is_not_found_error(setup: tuple[GatewayThread, str]) -> None:
    gw, key = setup
    with pytest.raises(openai.NotFoundError) as info:
        client(gw, key).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == "model_not_found"


def test_usage_is_counted_per_tenant(setup: tuple[GatewayThread, str]) -> None:
    gw, key = setup
    admin_key = gw.key("sdk", role="tenant_admin")
    client(gw, key).chat.completions.create(
        model="sdk-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    gw.app.audit.flush()  # usage is written with the audit log's batch (`store.usage`)
    usage = gw.call("GET", "/tenant/v1/usage", admin_key).body["data"]
    chat = next(u for u in usage if u["model"] == "sdk-chat")
    assert chat["requests"] >= 1 and chat["completion_tokens"] >= 3
