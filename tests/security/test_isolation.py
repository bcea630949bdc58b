"""Cross-tenant isolation through the real gateway: another tenant's things do not exist."""

from __future__ import annotations

import pytest

from tests.support.gateway import GatewayThread, UpstreamThread

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def two_tenants(gateway: GatewayThread, upstream: UpstreamThread) -> dict[str, str]:
    gateway.tenant("iso-a")
    gateway.tenant("iso-b")
    gateway.model("b-private", upstream.url, tenant="iso-b", upstream_model="fake")
    gateway.model("iso-shared", upstream.url, grant=("iso-a", "iso-b"), upstream_model="fake")
    return {
        "a": gateway.key("iso-a"),
        "b": gateway.key("iso-b"),
        "a_admin": gateway.key("iso-a", role="tenant_admin"),
        "b_admin": gateway.key("iso-b", role="tenant_admin"),
    }


def test_private_model_of_b_is_invisible_to_a(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    listed = gateway.call("GET", "/v1/models", two_tenants["a"]).body["data"]
    assert "b-private" not in {m["id"] for m in listed}
    own = gateway.call("GET", "/v1/models", two_tenants["b"]).body["data"]
    assert "b-private" in {m["id"] for m in own}


def test_calling_b_private_model_answers_exactly_like_a_missing_one(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    foreign = gateway.call(
        "POST", "/v1/chat/completions", two_tenants["a"], {"model": "b-private", **CHAT}
    )
    missing = gateway.call(
        "POST", "/v1/chat/completions", two_tenants["a"], {"model": "b-privatf", **CHAT}
    )
    assert foreign.status == missing.status == 404
    assert foreign.body["error"]["code"] == missing.body["error"]["code"] == "model_not_found"
    assert foreign.body["error"]["message"].replace("b-private", "X") == missing.body["error"][
        "message"
    ].replace("b-privatf", "X")


def test_tenant_id_in_body_is_ignored(
    gateway: GatewayThread, upstream: UpstreamThread, two_tenants: dict[str, str]
) -> None:
    b = gateway.admin("GET", "/admin/v1/tenants/iso-b").body
    response = gateway.call(
        "POST",
        "/v1/chat/completions",
        two_tenants["a"],
        {"model": "b-private", "tenant_id": b["id"], **CHAT},
    )
    assert response.status == 404
    ok = gateway.call(
        "POST",
        "/v1/chat/completions",
        two_tenants["a"],
        {"model": "iso-shared", "tenant_id": b["id"], **CHAT},
    )
    assert ok.status == 200
    assert upstream.fake.last_body is not None and "tenant_id" not in upstream.fake.last_body


def test_tenant_header_is_ignored(gateway: GatewayThread, two_tenants: dict[str, str]) -> None:
    b = gateway.admin("GET", "/admin/v1/tenants/iso-b").body
    response = gateway.call(
        "POST",
        "/v1/chat/completions",
        two_tenants["a"],
        {"model": "b-private", **CHAT},
        headers={"x-tenant-id": b["id"], "x-bulkhead-tenant": "iso-b"},
    )
    assert response.status == 404


def test_revoked_key_is_refused_on_the_next_request(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    created = gateway.mint("iso-a")
    secret, key_id = created["secret"], created["key"]["id"]
    assert gateway.call("GET", "/v1/models", secret).status == 200
    gateway.must("POST", f"/admin/v1/keys/{key_id}/revoke")
    refused = gateway.call("GET", "/v1/models", secret)
    assert refused.status == 401
    assert refused.body["error"]["type"] == "authentication_error"


def test_expired_key_is_refused(gateway: GatewayThread, two_tenants: dict[str, str]) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from bulkhead.store.schema import ApiKeyRow

    created = gateway.mint("iso-a", expires_in_s=3600)
    assert gateway.call("GET", "/v1/models", created["secret"]).status == 200
    with gateway.app.db.platform_transaction() as session:
        session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == created["key"]["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    gateway.app.catalog.reload()
    assert gateway.call("GET", "/v1/models", created["secret"]).status == 401


def test_key_with_right_id_but_wrong_secret_is_refused(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    key = two_tenants["a"]
    forged = key[:16] + ("A" if key[16] != "A" else "B") + key[17:]
    assert gateway.call("GET", "/v1/models", forged).status == 401


def test_tenant_key_on_admin_api_is_refused(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    for key in (two_tenants["a"], two_tenants["a_admin"]):
        response = gateway.call("GET", "/admin/v1/tenants", key)
        assert response.status == 403
        assert response.body["error"]["type"] == "permission_error"


def test_platform_key_cannot_call_models(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    response = gateway.call(
        "POST", "/v1/chat/completions", gateway.admin_key, {"model": "iso-shared", **CHAT}
    )
    assert response.status == 403


def test_tenant_admin_cannot_touch_another_tenants_keys(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    b_keys = gateway.call("GET", "/tenant/v1/keys", two_tenants["b_admin"]).body["data"]
    a_keys = gateway.call("GET", "/tenant/v1/keys", two_tenants["a_admin"]).body["data"]
    assert {k["id"] for k in b_keys}.isdisjoint({k["id"] for k in a_keys})
    assert all(k["tenant"] == "iso-a" for k in a_keys)
    victim = b_keys[0]["id"]
    response = gateway.call("POST", f"/tenant/v1/keys/{victim}/revoke", two_tenants["a_admin"])
    assert response.status == 404
    still = gateway.call("GET", "/tenant/v1/keys", two_tenants["b_admin"]).body["data"]
    assert next(k for k in still if k["id"] == victim)["revoked_at"] is None


def test_mass_assignment_of_tenant_id_in_tenant_api_is_rejected(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    b = gateway.admin("GET", "/admin/v1/tenants/iso-b").body
    response = gateway.call(
        "POST", "/tenant/v1/keys", two_tenants["a_admin"], {"tenant_id": b["id"]}
    )
    assert response.status == 400
    assert response.body["error"]["param"] == "tenant_id"


def test_tenant_admin_cannot_grant_platform_roles(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    for role in ("platform_admin", "platform_auditor"):
        response = gateway.call("POST", "/tenant/v1/keys", two_tenants["a_admin"], {"role": role})
        assert response.status == 400


def test_end_user_cannot_use_tenant_api(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    assert gateway.call("POST", "/tenant/v1/keys", two_tenants["a"], {}).status == 403


def test_tenant_admin_cannot_scope_a_key_to_a_foreign_model(
    gateway: GatewayThread, two_tenants: dict[str, str]
) -> None:
    response = gateway.call(
        "POST", "/tenant/v1/keys", two_tenants["a_admin"], {"models": ["b-private"]}
    )
    assert response.status == 404
    assert response.body["error"]["code"] == "model_not_found"


def test_key_scoped_to_one_model_cannot_call_another(
    gateway: GatewayThread, upstream: UpstreamThread, two_tenants: dict[str, str]
) -> None:
    gateway.model("iso-other", upstream.url, grant=("iso-a",), upstream_model="fake")
    scoped = gateway.key("iso-a", models=["iso-shared"])
    assert (
        gateway.call("POST", "/v1/chat/completions", scoped, {"model": "iso-shared", **CHAT}).status
        == 200
    )
    assert (
        gateway.call("POST", "/v1/chat/completions", scoped, {"model": "iso-other", **CHAT}).status
        == 404
    )
    listed = gateway.call("GET", "/v1/models", scoped).body["data"]
    assert [m["id"] for m in listed] == ["iso-shared"]


def test_suspended_tenant_is_refused(gateway: GatewayThread, two_tenants: dict[str, str]) -> None:
    gateway.tenant("iso-c")
    key = gateway.key("iso-c")
    gateway.must("PATCH", "/admin/v1/tenants/iso-c", {"status": "suspended"})
    assert gateway.call("GET", "/v1/models", key).status == 403
    gateway.must("PATCH", "/admin/v1/tenants/iso-c", {"status": "active"})
    assert gateway.call("GET", "/v1/models", key).status == 200
