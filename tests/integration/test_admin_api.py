"""The management APIs: tenants, keys, models, OpenAPI, and one audit event per request."""

from __future__ import annotations

from tests.support.gateway import GatewayThread, UpstreamThread


def test_tenant_lifecycle(gateway: GatewayThread, unique: str) -> None:
    created = gateway.must("POST", "/admin/v1/tenants", {"name": unique, "tier": "mig"})
    assert created["tier"] == "mig" and created["status"] == "active"
    assert gateway.admin("POST", "/admin/v1/tenants", {"name": unique}).status == 409
    names = {t["name"] for t in gateway.must("GET", "/admin/v1/tenants")["data"]}
    assert unique in names


def test_key_secret_is_shown_once_and_stored_hashed(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    created = gateway.mint(unique, name="ci")
    secret, key_id = created["secret"], created["key"]["id"]
    assert secret.startswith(f"bk_{key_id}_")
    listed = gateway.must("GET", f"/admin/v1/tenants/{unique}/keys")
    assert secret not in str(listed)
    from sqlalchemy import select

    from bulkhead.store.schema import ApiKeyRow

    with gateway.app.db.platform_transaction() as session:
        row = session.execute(select(ApiKeyRow).where(ApiKeyRow.id == key_id)).scalar_one()
    assert secret.encode() not in row.secret_hash and len(row.secret_hash) == 32


def test_openapi_document(gateway: GatewayThread) -> None:
    doc = gateway.call("GET", "/openapi.json", gateway.admin_key).body
    assert doc["openapi"].startswith("3.")
    assert "/admin/v1/tenants" in doc["paths"] and "/tenant/v1/keys" in doc["paths"]
    assert gateway.call("GET", "/openapi.json", None).status == 401


def test_a_known_path_with_another_method_is_405(gateway: GatewayThread) -> None:
    wrong = gateway.admin("DELETE", "/admin/v1/tenants")
    assert wrong.status == 405 and wrong.headers["allow"] == "GET, POST"
    assert wrong.body["error"]["code"] == "method_not_allowed"
    assert set(wrong.body["error"]) == {"message", "type", "param", "code"}
    assert gateway.admin("GET", "/admin/v1/no-such-thing").status == 404
    doc = gateway.call("GET", "/openapi.json", gateway.admin_key).body
    for methods in doc["paths"].values():
        for op in methods.values():
            ok = [v for k, v in op["responses"].items() if k != "default"]
            assert ok and all(v.get("content") or v["description"] for v in ok)


def test_every_request_leaves_exactly_one_audit_event(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-m", upstream.url, grant=(unique,), upstream_model="fake")
    key = gateway.key(unique)
    before = len(gateway.audit_events())
    before_all = len(gateway.audit_events(started=True))
    responses = [
        gateway.call(
            "POST",
            "/v1/chat/completions",
            key,
            {"model": f"{unique}-m", "messages": [{"role": "user", "content": "x"}]},
        ),
        gateway.call(
            "POST",
            "/v1/chat/completions",
            key,
            {
                "model": f"{unique}-m",
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
        ),
        gateway.call("GET", "/v1/models", "bk_aaaaaaaaaaaa_" + "y" * 43),
        gateway.admin("GET", "/admin/v1/tenants"),
    ]
    events = gateway.audit_events()[before:]
    assert [e["status"] for e in events] == [r.status for r in responses]
    assert {e["request_id"] for e in events} == {r.headers["x-request-id"] for r in responses}
    chat, stream, denied, admin = events
    assert chat["action"] == "v1:chat" and chat["model"] == f"{unique}-m"
    assert chat["prompt_tokens"] > 0 and chat["completion_tokens"] > 0
    assert stream["completion_tokens"] == 20
    assert denied["decision"] == "deny" and denied["status"] == 401
    assert admin["action"] == "admin:tenants.list"
    assert key not in str(events)
    # Each forwarded model call also has the entry written before it went upstream.
    everything = gateway.audit_events(started=True)[before_all:]
    forwarded = [e for e in everything if e["outcome"] == "started"]
    assert [e["request_id"] for e in forwarded] == [chat["request_id"], stream["request_id"]]
    assert all(e["action"] == "v1:chat" and e["status"] == 0 for e in forwarded)
    for entry in forwarded:
        assert everything.index(entry) < everything.index(
            next(e for e in everything if e is not entry and e["request_id"] == entry["request_id"])
        )


def test_management_changes_are_audited(gateway: GatewayThread, unique: str) -> None:
    before = len(gateway.audit_events())
    gateway.tenant(unique)
    # The tenant's first admin key: the one key a platform admin creates without a grant.
    created = gateway.must("POST", f"/admin/v1/tenants/{unique}/keys", {"role": "tenant_admin"})
    gateway.must("POST", f"/admin/v1/keys/{created['key']['id']}/revoke")
    actions = [e["action"] for e in gateway.audit_events()[before:]]
    assert actions == ["admin:tenants.create", "admin:keys.create", "admin:keys.revoke"]
    assert created["secret"] not in str(gateway.audit_events())
