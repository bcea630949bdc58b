"""Tenants' own Cedar policies through the gateway: stored, checked, enforced, audited."""

from __future__ import annotations

from tests.support.gateway import GatewayThread, UpstreamThread

NO_CHAT = '@id("no-chat")\nforbid (principal, action == Action::"v1:chat", resource);'


def chat(gateway: GatewayThread, key: str, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    return gateway.call("POST", "/v1/chat/completions", key, body).status


def test_a_tenant_forbid_blocks_a_model_call_and_the_audit_names_it(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-m", upstream.url, grant=(unique,), upstream_model="fake")
    admin, user = gateway.key(unique, role="tenant_admin"), gateway.key(unique)
    assert chat(gateway, user, f"{unique}-m") == 200

    put = gateway.call("PUT", "/tenant/v1/policies", admin, {"policies": NO_CHAT})
    assert put.status == 200, put.body
    assert put.body["ids"] == [f"tenant.{put.body['ids'][0].split('.')[1]}.no-chat"]
    assert chat(gateway, user, f"{unique}-m") == 403

    denials = [
        e for e in gateway.audit_events() if e.get("action") == "v1:chat" and e.get("tenant_id")
    ]
    assert denials[-1]["decision"] == "deny"
    assert denials[-1]["reason"] == f"permission_denied:{put.body['ids'][0]}"

    platform = gateway.must("GET", f"/admin/v1/tenants/{unique}/policies")
    assert platform["policies"] == NO_CHAT and platform["version"] == 1
    assert gateway.call("PUT", "/tenant/v1/policies", admin, {"policies": ""}).status == 200
    assert chat(gateway, user, f"{unique}-m") == 200


def test_tenant_policies_that_would_widen_or_do_not_check_are_refused(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    admin, user = gateway.key(unique, role="tenant_admin"), gateway.key(unique)
    permit = gateway.call(
        "PUT", "/tenant/v1/policies", admin, {"policies": "permit (principal, action, resource);"}
    )
    assert permit.status == 400 and "may only forbid" in permit.body["error"]["message"]
    bad = gateway.call(
        "PUT",
        "/tenant/v1/policies",
        admin,
        {"policies": "forbid (principal, action, resource) when { resource.owner == 1 };"},
    )
    assert bad.status == 400 and "schema" in bad.body["error"]["message"]
    assert gateway.call("PUT", "/tenant/v1/policies", user, {"policies": ""}).status == 403
