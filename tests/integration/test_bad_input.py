"""Bad input and bad upstreams get the right status and an OpenAI error, never a trace."""

from __future__ import annotations

import pytest

from tests.support.gateway import GatewayThread, UpstreamThread

CHAT = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def key(gateway: GatewayThread, upstream: UpstreamThread) -> str:
    gateway.tenant("bad")
    for name in ("ok", "slow-1", "garbage-1", "fail-1", "reject-1", "cut-1"):
        gateway.model(
            f"bad-{name}",
            upstream.url,
            upstream_model=name,
            grant=("bad",),
            timeout_s=0.5,
            endpoints=["chat", "completions", "embeddings"],
        )
    gateway.model("bad-down", "http://127.0.0.1:9/v1", upstream_model="x", grant=("bad",))
    return gateway.key("bad")


def assert_openai_error(response: object, status: int, kind: str | None = None) -> dict:
    assert response.status == status, (response.status, response.raw)  # type: ignore[attr-defined]
    error = response.body["error"]  # type: ignore[attr-defined]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.raw.decode()  # type: ignore[attr-defined]
    if kind:
        assert error["type"] == kind
    return error


def post(
    gw: GatewayThread,
    key: str,
    body: object = None,
    raw: bytes | None = None,
    path: str = "/v1/chat/completions",
):  # type: ignore[no-untyped-def]
    return gw.call("POST", path, key, body, raw=raw)


def test_malformed_json(gateway: GatewayThread, key: str) -> None:
    error = assert_openai_error(post(gateway, key, raw=b'{"model": '), 400, "invalid_request_error")
    assert error["code"] == "invalid_json"


def test_body_that_is_not_an_object(gateway: GatewayThread, key: str) -> None:
    assert_openai_error(post(gateway, key, raw=b"[1, 2]"), 400)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": 5, "messages": CHAT}, "model"),
        ({"model": "bad-ok", "messages": "hi"}, "messages"),
        ({"model": "bad-ok", "messages": []}, "messages"),
        ({"model": "bad-ok", "messages": [{"content": "no role"}]}, "messages[0]"),
        ({"model": "bad-ok", "messages": CHAT, "max_tokens": "10"}, "max_tokens"),
        ({"model": "bad-ok", "messages": CHAT, "max_tokens": 0}, "max_tokens"),
        ({"model": "bad-ok", "messages": CHAT, "stream": "yes"}, "stream"),
        ({"model": "bad-ok", "messages": CHAT, "temperature": 9}, "temperature"),
    ],
)
def test_wrong_types_name_the_parameter(
    gateway: GatewayThread, key: str, body: dict, param: str
) -> None:
    error = assert_openai_error(post(gateway, key, body), 400, "invalid_request_error")
    assert error["param"] == param


def test_embeddings_input_type(gateway: GatewayThread, key: str) -> None:
    response = post(gateway, key, {"model": "bad-ok", "input": 7}, path="/v1/embeddings")
    assert assert_openai_error(response, 400)["param"] == "input"


def test_oversize_body(gateway: GatewayThread, key: str) -> None:
    big = {"model": "bad-ok", "messages": [{"role": "user", "content": "x" * 70_000}]}
    error = assert_openai_error(post(gateway, key, big), 413)
    assert error["code"] == "payload_too_large"


def test_unknown_endpoint(gateway: GatewayThread, key: str) -> None:
    assert_openai_error(gateway.call("POST", "/v1/nothing", key, {}), 404)
    assert_openai_error(gateway.call("GET", "/elsewhere", key), 404)


def test_upstream_down_is_502(gateway: GatewayThread, key: str) -> None:
    error = assert_openai_error(post(gateway, key, {"model": "bad-down", "messages": CHAT}), 502)
    assert "127.0.0.1" not in error["message"]


def test_upstream_slow_is_504(gateway: GatewayThread, key: str) -> None:
    assert_openai_error(post(gateway, key, {"model": "bad-slow-1", "messages": CHAT}), 504)


def test_upstream_garbage_is_502(gateway: GatewayThread, key: str) -> None:
    assert_openai_error(post(gateway, key, {"model": "bad-garbage-1", "messages": CHAT}), 502)


def test_upstream_500_is_502_without_its_body(gateway: GatewayThread, key: str) -> None:
    response = post(gateway, key, {"model": "bad-fail-1", "messages": CHAT})
    assert_openai_error(response, 502)
    assert b"secret" not in response.raw


def test_upstream_rejection_is_400_with_its_message(gateway: GatewayThread, key: str) -> None:
    error = assert_openai_error(
        post(gateway, key, {"model": "bad-reject-1", "messages": CHAT}), 400
    )
    assert error["message"] == "bad temperature"


def test_stream_cut_short_ends_with_an_error_event(gateway: GatewayThread, key: str) -> None:
    response = post(gateway, key, {"model": "bad-cut-1", "messages": CHAT, "stream": True})
    assert response.status == 200
    text = response.raw.decode()
    assert text.count("data: {") >= 3
    assert '"error"' in text.splitlines()[-2] or '"error"' in text
    assert "Traceback" not in text


def test_stream_from_down_upstream_is_a_plain_502(gateway: GatewayThread, key: str) -> None:
    response = post(gateway, key, {"model": "bad-down", "messages": CHAT, "stream": True})
    assert_openai_error(response, 502)


def test_missing_and_malformed_authorization(gateway: GatewayThread) -> None:
    assert_openai_error(gateway.call("GET", "/v1/models", None), 401, "authentication_error")
    assert_openai_error(
        gateway.call("GET", "/v1/models", None, headers={"authorization": "Basic x"}), 401
    )
    assert_openai_error(gateway.call("GET", "/v1/models", "not-a-key"), 401)


def test_admin_unknown_field_and_bad_values(gateway: GatewayThread) -> None:
    error = assert_openai_error(
        gateway.admin("POST", "/admin/v1/tenants", {"name": "x1", "colour": "red"}), 400
    )
    assert error["param"] == "colour"
    assert_openai_error(gateway.admin("POST", "/admin/v1/tenants", {"name": "Bad Name"}), 400)
    assert_openai_error(
        gateway.admin("POST", "/admin/v1/tenants", {"name": "x2", "tier": "gold"}), 400
    )
    assert_openai_error(gateway.admin("GET", "/admin/v1/tenants/missing"), 404)


def test_healthz_needs_no_key(gateway: GatewayThread) -> None:
    response = gateway.call("GET", "/healthz", None)
    assert response.status == 200 and response.body == {"status": "ok"}


def chat_labelled(gateway: GatewayThread, key: str, content_type: str):  # type: ignore[no-untyped-def]
    """A valid chat call whose body is labelled `content_type`."""
    body = {"model": "bad-ok", "messages": CHAT}
    return gateway.call(
        "POST", "/v1/chat/completions", key, body, headers={"content-type": content_type}
    )


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_body_labelled_other_than_json_is_refused_415(
    gateway: GatewayThread, key: str, content_type: str
) -> None:
    error = assert_openai_error(
        chat_labelled(gateway, key, content_type), 415, "invalid_request_error"
    )
    assert error["code"] == "unsupported_media_type"
    admin = gateway.call(
        "POST",
        "/admin/v1/tenants",
        gateway.admin_key,
        {"name": "x"},
        headers={"content-type": content_type},
    )
    assert_openai_error(admin, 415)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.x+json"]
)
def test_json_with_a_charset_or_a_json_suffix_is_taken(
    gateway: GatewayThread, key: str, content_type: str
) -> None:
    response = chat_labelled(gateway, key, content_type)
    assert response.status == 200, response.raw
