"""Tenants' own Cedar policies through the gateway: stored, checked, enforced, audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

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


# Attributes (ABAC), set through the platform API -----------------------------------------


def denial(gateway: GatewayThread, tenant_id: str, action: str = "v1:chat") -> str:
    events = [
        e
        for e in gateway.audit_events()
        if e.get("action") == action and e.get("tenant_id") == tenant_id
    ]
    assert events[-1]["decision"] == "deny"
    return str(events[-1]["reason"])


def setup(gateway: GatewayThread, upstream: UpstreamThread, unique: str) -> tuple[str, str]:
    """A tenant, its principal alice (end user) with a key, and a model granted to it."""
    tid = str(gateway.tenant(unique)["id"])
    gateway.must(
        "POST", f"/admin/v1/tenants/{unique}/principals", {"name": "alice", "roles": ["end_user"]}
    )
    gateway.model(f"{unique}-m", upstream.url, grant=(unique,), upstream_model="fake")
    return tid, gateway.key(unique, principal="alice")


def test_a_model_above_the_principals_clearance_is_refused_until_cleared(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    tid, key = setup(gateway, upstream, unique)
    model = f"/admin/v1/models/{unique}-m/attributes"
    clearance = f"/admin/v1/tenants/{unique}/principals/alice/attributes"
    assert gateway.must("PUT", model, {"classification": "confidential"}) == {
        "model": f"{unique}-m",
        "tenant": None,
        "classification": "confidential",
        "sensitivity": None,
        "region": None,
    }
    assert gateway.must("PUT", clearance, {"clearance": "internal"})["clearance"] == "internal"
    assert chat(gateway, key, f"{unique}-m") == 403
    assert denial(gateway, tid) == "permission_denied:platform.clearance"

    gateway.must("PUT", clearance, {"clearance": "confidential"})
    assert gateway.must("GET", clearance)["clearance"] == "confidential"
    assert chat(gateway, key, f"{unique}-m") == 200


def test_a_client_outside_the_tenants_networks_is_refused(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    tid, key = setup(gateway, upstream, unique)
    path = f"/admin/v1/tenants/{unique}/attributes"
    put = gateway.must("PUT", path, {"allowed_networks": ["10.0.0.0/8"]})
    assert put["allowed_networks"] == ["10.0.0.0/8"]
    assert chat(gateway, key, f"{unique}-m") == 403  # The tests call from 127.0.0.1.
    assert denial(gateway, tid) == f"permission_denied:platform.tenant.{tid}.networks"
    # The tenant API is behind the same networks.
    admin = gateway.key(unique, role="tenant_admin")
    assert gateway.call("GET", "/tenant/v1/tenant", admin).status == 403

    gateway.must("PUT", path, {"allowed_networks": ["127.0.0.0/8", "::1/128"]})
    assert chat(gateway, key, f"{unique}-m") == 200
    assert gateway.call("GET", "/tenant/v1/tenant", admin).status == 200


def test_a_call_outside_the_tenants_hours_is_refused(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    tid, key = setup(gateway, upstream, unique)
    path = f"/admin/v1/tenants/{unique}/attributes"
    # Two hours ahead: still closed if the hour turns while the test runs.
    hour = datetime.now(UTC).hour
    hours = {"start": (hour + 2) % 24, "end": (hour + 3) % 24}
    assert gateway.must("PUT", path, {"allowed_hours": hours})["allowed_hours"] == {
        **hours,
        "tz": "UTC",
    }
    assert chat(gateway, key, f"{unique}-m") == 403
    assert denial(gateway, tid) == "permission_denied:platform.hours"

    assert gateway.must("PUT", path, {})["allowed_hours"] is None
    assert chat(gateway, key, f"{unique}-m") == 200


def test_a_model_outside_the_tenants_regions_is_refused(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    tid, key = setup(gateway, upstream, unique)
    gateway.must("PUT", f"/admin/v1/tenants/{unique}/attributes", {"regions": ["eu"]})
    model = f"/admin/v1/models/{unique}-m/attributes"
    gateway.must("PUT", model, {"region": "us", "sensitivity": "low"})
    assert chat(gateway, key, f"{unique}-m") == 403
    assert denial(gateway, tid) == "permission_denied:platform.region"

    gateway.must("PUT", model, {"region": "eu", "sensitivity": "low"})
    assert chat(gateway, key, f"{unique}-m") == 200
    assert gateway.must("GET", model)["region"] == "eu"


def test_a_tenants_default_classification_covers_its_own_models(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    tid, key = setup(gateway, upstream, unique)
    gateway.model(f"{unique}-own", upstream.url, tenant=unique, upstream_model="fake")
    path = f"/admin/v1/tenants/{unique}/attributes"
    gateway.must("PUT", path, {"default_classification": "restricted"})
    assert chat(gateway, key, f"{unique}-own") == 403
    assert denial(gateway, tid) == "permission_denied:platform.clearance"
    assert chat(gateway, key, f"{unique}-m") == 200  # A shared model: not the tenant's data.
    own = f"/admin/v1/models/{unique}-own/attributes?tenant={unique}"
    gateway.must("PUT", own, {"classification": "public"})
    assert chat(gateway, key, f"{unique}-own") == 200


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("tenants/{t}/attributes", {"networks": ["10.0.0.0/8"]}, "networks"),
        ("tenants/{t}/attributes", {"allowed_networks": ["10.0.0.300/8"]}, "allowed_networks"),
        ("tenants/{t}/attributes", {"allowed_networks": "10.0.0.0/8"}, "allowed_networks"),
        ("tenants/{t}/attributes", {"allowed_hours": {"start": 8, "end": 24}}, "end"),
        ("tenants/{t}/attributes", {"allowed_hours": {"start": 8, "end": 8}}, "allowed_hours"),
        ("tenants/{t}/attributes", {"allowed_hours": {"start": 8, "end": 9, "tz": "CET"}}, "tz"),
        ("tenants/{t}/attributes", {"allowed_hours": {"start": 8, "end": 9, "x": 1}}, "x"),
        ("tenants/{t}/attributes", {"regions": ["EU West"]}, "regions"),
        ("tenants/{t}/attributes", {"default_classification": "secret"}, "default"),
        ("models/{t}-m/attributes", {"classification": "secret"}, "classification"),
        ("models/{t}-m/attributes", {"sensitivity": "normal"}, "sensitivity"),
        ("models/{t}-m/attributes", {"owner": "x"}, "owner"),
        ("tenants/{t}/principals/alice/attributes", {"clearance": "top"}, "clearance"),
        ("tenants/{t}/principals/alice/attributes", {"role": "x"}, "role"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_attributes_are_checked_strictly(
    gateway: GatewayThread,
    upstream: UpstreamThread,
    unique: str,
    path: str,
    body: dict[str, object],
    param: str,
) -> None:
    setup(gateway, upstream, unique)
    before = gateway.must("GET", f"/admin/v1/{path.format(t=unique)}")
    refused = gateway.admin("PUT", f"/admin/v1/{path.format(t=unique)}", body)
    assert refused.status == 400, refused.body
    assert param in str(refused.body["error"]["param"])
    assert gateway.must("GET", f"/admin/v1/{path.format(t=unique)}") == before


def test_attributes_are_for_platform_admins(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    setup(gateway, upstream, unique)
    admin = gateway.key(unique, role="tenant_admin")
    path = f"/admin/v1/tenants/{unique}/attributes"
    put = gateway.call("PUT", path, admin, {"allowed_networks": ["0.0.0.0/0"]})
    assert put.status == 403
    assert gateway.must("GET", path)["allowed_networks"] is None


# Which credential may use which surface: Cedar decides it too ----------------------------


def test_the_wrong_credential_for_a_surface_is_refused_by_a_named_policy(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    tid, key = setup(gateway, upstream, unique)
    refused = gateway.call("GET", "/admin/v1/tenants", key)
    assert refused.status == 403
    assert refused.body["error"]["message"] == "The platform API needs a platform credential."
    assert denial(gateway, tid, "admin:surface") == (
        "permission_denied:platform.surface.platform-credential-required"
    )
    platform = gateway.admin("GET", "/tenant/v1/tenant")
    assert platform.status == 403
    assert platform.body["error"]["message"] == "The tenant API needs a tenant credential."
    model = gateway.admin("POST", "/v1/chat/completions", {"model": f"{unique}-m"})
    assert model.status == 403
    assert "Platform credentials cannot call models" in model.body["error"]["message"]
    reasons = [
        e["reason"]
        for e in gateway.audit_events()
        if e.get("action") in ("tenant:surface", "v1:chat") and e.get("tenant_id") is None
    ]
    assert "permission_denied:platform.surface.tenant-credential-required" in reasons
    assert "permission_denied:platform.surface.models-need-a-tenant-key" in reasons
