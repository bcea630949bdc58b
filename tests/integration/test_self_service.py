"""Tenant self-service (/tenant/v1): roles, keys, model versions, quotas; escalation refused."""

from __future__ import annotations

from typing import Any

import pytest

from bulkhead.domain import Role
from bulkhead.errors import Conflict
from bulkhead.store import repo, selfservice
from tests.support.gateway import GatewayThread, Response, UpstreamThread

T = "/tenant/v1"
CHAT = [{"role": "user", "content": "hi"}]
REASON = "launch next week needs more room"


def person(gw: GatewayThread, tenant: str, name: str, roles: list[str]) -> None:
    body = {"name": name, "roles": roles}
    gw.must("POST", f"/admin/v1/tenants/{tenant}/principals", body)


def admin_of(gw: GatewayThread, tenant: str, name: str = "alice") -> str:
    """A tenant admin's key, for a person of that name."""
    person(gw, tenant, name, ["tenant_admin"])
    return gw.key(tenant, role="tenant_admin", principal=name)


def ok(response: Response, status: int = 200) -> Any:
    assert response.status == status, (response.status, response.body)
    return response.body


def chat(gw: GatewayThread, key: str, model: str) -> Response:
    return gw.call("POST", "/v1/chat/completions", key, {"model": model, "messages": CHAT})


def actions_since(gw: GatewayThread, before: int) -> list[str]:
    return [e["action"] for e in gw.audit_events()[before:]]


# Escalation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["platform_admin", "platform_auditor"])
def test_a_tenant_admin_cannot_grant_a_platform_role(
    gateway: GatewayThread, unique: str, role: str
) -> None:
    gateway.tenant(unique)
    ta = admin_of(gateway, unique)
    person(gateway, unique, "bob", ["end_user"])
    created = gateway.call("POST", f"{T}/principals", ta, {"name": "mallory", "roles": [role]})
    assert created.status == 400 and created.body["error"]["param"] == "roles"
    patched = gateway.call("PATCH", f"{T}/principals/bob", ta, {"roles": [role]})
    assert patched.status == 400
    assert gateway.call("POST", f"{T}/keys", ta, {"role": role}).status == 400
    listed = ok(gateway.call("GET", f"{T}/principals", ta))["data"]
    assert {p["name"]: p["roles"] for p in listed}["bob"] == ["end_user"]
    assert "mallory" not in {p["name"] for p in listed}


def test_a_tenant_admin_cannot_change_or_remove_itself(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    ta = admin_of(gateway, unique)
    own = gateway.call("PATCH", f"{T}/principals/alice", ta, {"roles": ["end_user"]})
    assert own.status == 403
    assert gateway.call("DELETE", f"{T}/principals/alice", ta).status == 403
    assert ok(gateway.call("GET", f"{T}/tenant", ta))["name"] == unique  # still an admin


def test_the_last_tenant_admin_cannot_be_removed(gateway: GatewayThread, unique: str) -> None:
    # Through the API the caller is itself a tenant admin, so this guards the store.
    tenant = gateway.tenant(unique)
    person(gateway, unique, "alice", ["tenant_admin"])
    person(gateway, unique, "bob", ["end_user"])
    with gateway.app.db.tenant_transaction(tenant["id"]) as session:
        bob = repo.get_principal(session, tenant["id"], "bob")
        with pytest.raises(Conflict):
            selfservice.set_principal_roles(
                session, tenant["id"], "alice", [Role.END_USER], actor=bob
            )
        with pytest.raises(Conflict):
            selfservice.delete_principal(session, tenant["id"], "alice", actor=bob)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("principals", {"name": "x", "roles": ["end_user"], "tenant_id": "t"}, id="p"),
        pytest.param("keys", {"role": "end_user", "tenant_id": "ten_other"}, id="key-tenant"),
        pytest.param("keys", {"role": "end_user", "roles": ["tenant_admin"]}, id="key-roles"),
        pytest.param(
            "quota-requests",
            {"quota": "storage_bytes", "value": 5, "reason": REASON, "status": "approved"},
            id="quota-status",
        ),
        pytest.param(
            "quota-requests",
            {"quota": "storage_bytes", "value": 5, "reason": REASON, "tenant_id": "t"},
            id="quota-tenant",
        ),
    ],
)
def test_mass_assignment_is_refused(
    gateway: GatewayThread, unique: str, path: str, body: dict[str, Any]
) -> None:
    gateway.tenant(unique)
    ta = admin_of(gateway, unique)
    refused = gateway.call("POST", f"{T}/{path}", ta, body)
    assert refused.status == 400 and "Unknown field" in refused.body["error"]["message"]


def test_mass_assignment_on_a_role_change_is_refused(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    ta = admin_of(gateway, unique)
    person(gateway, unique, "bob", ["end_user"])
    for extra in ({"tenant_id": "ten_other"}, {"role": "tenant_admin"}, {"kind": "service"}):
        body = {"roles": ["model_developer"], **extra}
        assert gateway.call("PATCH", f"{T}/principals/bob", ta, body).status == 400


def test_keys_only_for_visible_models_and_not_by_model_developers(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    other = f"{unique}-o"
    gateway.tenant(unique)
    gateway.tenant(other)
    gateway.model(f"{other}-private", upstream.url, tenant=other)
    gateway.model(f"{unique}-x", upstream.url, grant=(unique,), upstream_model="fake")
    ta = admin_of(gateway, unique)
    person(gateway, unique, "dev", ["model_developer"])
    dev = gateway.key(unique, role="model_developer", principal="dev")
    # A model developer cannot mint keys at all (the role table gives it `v1:` only).
    minted = gateway.call("POST", f"{T}/keys", dev, {"role": "model_developer"})
    assert minted.status == 403
    scoped = {"role": "model_developer", "principal": "dev", "models": [f"{other}-private"]}
    assert gateway.call("POST", f"{T}/keys", dev, scoped).status == 403
    # A tenant admin cannot scope a key to a model its tenant cannot use.
    unseen = gateway.call("POST", f"{T}/keys", ta, scoped)
    assert unseen.status == 404 and unseen.body["error"]["code"] == "model_not_found"
    # Nor give a principal a key in a role it does not hold.
    above = {"role": "tenant_admin", "principal": "dev"}
    assert gateway.call("POST", f"{T}/keys", ta, above).status == 400


def test_a_key_scoped_to_one_model_cannot_call_another(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    x, y = f"{unique}-x", f"{unique}-y"
    for name in (x, y):
        gateway.model(name, upstream.url, grant=(unique,), upstream_model="fake")
    ta = admin_of(gateway, unique)
    key = ok(gateway.call("POST", f"{T}/keys", ta, {"models": [x]}), 201)["secret"]
    assert chat(gateway, key, x).status == 200
    refused = chat(gateway, key, y)
    assert refused.status == 404 and refused.body["error"]["code"] == "model_not_found"


# Users, roles and keys -------------------------------------------------------------------------


def test_role_change_revokes_keys_in_a_dropped_role(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    ta = admin_of(gateway, unique)
    person(gateway, unique, "bob", ["end_user", "model_developer"])
    dev = ok(
        gateway.call("POST", f"{T}/keys", ta, {"role": "model_developer", "principal": "bob"}), 201
    )["secret"]
    user = ok(gateway.call("POST", f"{T}/keys", ta, {"principal": "bob"}), 201)["secret"]
    before = len(gateway.audit_events())
    changed = ok(gateway.call("PATCH", f"{T}/principals/bob", ta, {"roles": ["end_user"]}))
    assert changed["roles"] == ["end_user"]
    assert gateway.call("GET", "/v1/models", dev).status == 401
    assert gateway.call("GET", "/v1/models", user).status == 200
    assert actions_since(gateway, before)[0] == "tenant:principals.update"


def test_deleting_a_principal_revokes_its_keys(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    ta = admin_of(gateway, unique)
    ok(gateway.call("POST", f"{T}/principals", ta, {"name": "bob", "roles": ["end_user"]}), 201)
    created = ok(gateway.call("POST", f"{T}/keys", ta, {"principal": "bob"}), 201)
    assert gateway.call("GET", "/v1/models", created["secret"]).status == 200
    before = len(gateway.audit_events())
    gone = ok(gateway.call("DELETE", f"{T}/principals/bob", ta))
    assert gone["revoked_keys"] == [created["key"]["id"]]
    assert gateway.call("GET", "/v1/models", created["secret"]).status == 401
    names = {p["name"] for p in ok(gateway.call("GET", f"{T}/principals", ta))["data"]}
    assert "bob" not in names
    assert gateway.call("DELETE", f"{T}/principals/bob", ta).status == 404
    assert actions_since(gateway, before)[0] == "tenant:principals.delete"


def test_rotation_revokes_the_old_key_and_shows_the_new_secret_once(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    ta = admin_of(gateway, unique)
    old = ok(gateway.call("POST", f"{T}/keys", ta, {"name": "ci", "expires_in_s": 3600}), 201)
    before = len(gateway.audit_events())
    new = ok(gateway.call("POST", f"{T}/keys/{old['key']['id']}/rotate", ta, {}), 201)
    assert new["key"]["id"] != old["key"]["id"] and new["secret"] != old["secret"]
    for field in ("principal_id", "role", "models", "name", "expires_at"):
        assert new["key"][field] == old["key"][field], field
    assert gateway.call("GET", "/v1/models", old["secret"]).status == 401
    assert gateway.call("GET", "/v1/models", new["secret"]).status == 200
    listed = ok(gateway.call("GET", f"{T}/keys", ta))
    assert new["secret"] not in str(listed)
    again = gateway.call("POST", f"{T}/keys/{old['key']['id']}/rotate", ta, {})
    assert again.status == 409
    assert actions_since(gateway, before)[0] == "tenant:keys.rotate"
    assert new["secret"] not in str(gateway.audit_events())


def test_rotation_with_a_grace_period_and_across_tenants(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.tenant(f"{unique}-o")
    ta = admin_of(gateway, unique)
    theirs = gateway.mint(f"{unique}-o")
    assert gateway.call("POST", f"{T}/keys/{theirs['key']['id']}/rotate", ta, {}).status == 404
    old = ok(gateway.call("POST", f"{T}/keys", ta, {}), 201)
    path = f"{T}/keys/{old['key']['id']}/rotate"
    assert gateway.call("POST", path, ta, {"grace_s": 86401}).status == 400
    new = ok(gateway.call("POST", path, ta, {"grace_s": 600}), 201)
    assert gateway.call("GET", "/v1/models", old["secret"]).status == 200  # in its grace
    assert gateway.call("GET", "/v1/models", new["secret"]).status == 200
    keys = {k["id"]: k for k in ok(gateway.call("GET", f"{T}/keys", ta))["data"]}
    assert keys[old["key"]["id"]]["expires_at"] is not None


# Model versions ---------------------------------------------------------------------------------


def test_model_versions_publish_route_and_retire(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    model = f"{unique}-m"
    gateway.model(model, upstream.url, tenant=unique, upstream_model="base")
    ta = admin_of(gateway, unique)
    path = f"{T}/models/{model}/versions"
    # Versions may only point where the platform allowed this tenant (issue 12).
    gateway.allow_upstreams(unique, ["127.0.0.1/32"])

    def served_by(name: str) -> str:
        ok(chat(gateway, ta, name))
        assert upstream.fake.last_body is not None
        return str(upstream.fake.last_body["model"])

    assert served_by(model) == "base"
    for version in ("1", "2"):
        body = {"version": version, "upstream": upstream.url, "upstream_model": f"v{version}"}
        ok(gateway.call("POST", path, ta, body), 201)
    duplicate = {"version": "2", "upstream": upstream.url}
    assert gateway.call("POST", path, ta, duplicate).status == 409
    assert served_by(model) == "v2"
    assert served_by(f"{model}@1") == "v1"
    ok(gateway.call("POST", f"{path}/2/retire", ta))
    assert served_by(model) == "v1"
    assert chat(gateway, ta, f"{model}@2").status == 404
    listed = ok(gateway.call("GET", path, ta))["data"]
    assert [(v["version"], v["retired_at"] is None) for v in listed] == [("1", True), ("2", False)]
    ok(gateway.call("POST", f"{path}/1/retire", ta))
    assert served_by(model) == "base"


def test_versions_only_of_the_tenants_own_models(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    other = f"{unique}-o"
    gateway.tenant(unique)
    gateway.tenant(other)
    gateway.model(f"{unique}-shared", upstream.url, grant=(unique,))
    gateway.model(f"{other}-m", upstream.url, tenant=other)
    ta = admin_of(gateway, unique)
    body = {"version": "1", "upstream": upstream.url}
    for model in (f"{unique}-shared", f"{other}-m", "nope"):
        assert gateway.call("POST", f"{T}/models/{model}/versions", ta, body).status == 404
    person(gateway, unique, "dev", ["model_developer"])
    dev = gateway.key(unique, role="model_developer", principal="dev")
    gateway.model(f"{unique}-m", upstream.url, tenant=unique)
    assert gateway.call("POST", f"{T}/models/{unique}-m/versions", dev, body).status == 403


# Quota requests ---------------------------------------------------------------------------------


def quota_request(gw: GatewayThread, key: str, quota: str, value: int) -> Any:
    body = {"quota": quota, "value": value, "reason": REASON}
    return ok(gw.call("POST", f"{T}/quota-requests", key, body), 201)


def quotas(gw: GatewayThread, tenant_id: str) -> dict[str, Any]:
    return dict(gw.app.catalog.snapshot.tenants[tenant_id].quotas)


def test_quota_request_above_the_tier_default_needs_a_grant(
    gateway: GatewayThread, unique: str
) -> None:
    tenant = gateway.tenant(unique)
    ta = admin_of(gateway, unique)
    before = len(gateway.audit_events())
    made = quota_request(gateway, ta, "storage_bytes", 5 * 2**30)
    assert (made["status"], made["privileged"], made["tenant"]) == ("pending", True, unique)
    pending = gateway.must("GET", "/admin/v1/quota-requests?status=pending")["data"]
    assert made["id"] in {r["id"] for r in pending}
    # The tenant cannot decide its own request; the platform needs a grant for this value.
    assert (
        gateway.call("POST", f"/admin/v1/quota-requests/{made['id']}/approve", ta, {}).status == 403
    )
    refused = gateway.admin("POST", f"/admin/v1/quota-requests/{made['id']}/approve", {})
    assert refused.status == 403
    assert refused.body["error"]["code"] == "privileged_access_required"
    assert quotas(gateway, tenant["id"]) == {}

    gateway.grant("admin:quota_requests.approve", unique)
    approved = gateway.must("POST", f"/admin/v1/quota-requests/{made['id']}/approve", {})
    assert approved["status"] == "approved" and approved["decided_by"]
    assert quotas(gateway, tenant["id"]) == {"storage_bytes": 5 * 2**30}
    again = gateway.admin("POST", f"/admin/v1/quota-requests/{made['id']}/approve", {})
    assert again.status == 409
    mine = ok(gateway.call("GET", f"{T}/quota-requests", ta))["data"]
    assert [(r["id"], r["status"]) for r in mine] == [(made["id"], "approved")]

    actions = actions_since(gateway, before)
    for step in (
        "tenant:quota_requests.create",
        "admin:quota_requests.approve",
        "pam.grant.use",
    ):
        assert step in actions, step
    approvals = [
        e
        for e in gateway.audit_events()[before:]
        if e["action"] == "admin:quota_requests.approve" and e.get("resource") == made["id"]
    ]
    # The tenant admin is stopped at the platform surface; then no grant, the grant, too late.
    assert [e["status"] for e in approvals] == [403, 200, 409]


def test_quota_request_within_the_default_and_denial(gateway: GatewayThread, unique: str) -> None:
    tenant = gateway.tenant(unique)
    ta = admin_of(gateway, unique)
    small = quota_request(gateway, ta, "requests_per_minute", 100)
    assert small["privileged"] is False
    gateway.must("POST", f"/admin/v1/quota-requests/{small['id']}/approve", {"reason": "ok"})
    big = quota_request(gateway, ta, "tokens_per_minute", 10**9)
    denied = gateway.must(
        "POST", f"/admin/v1/quota-requests/{big['id']}/deny", {"reason": "too much"}
    )
    assert (denied["status"], denied["decision_reason"]) == ("denied", "too much")
    assert quotas(gateway, tenant["id"]) == {"requests_per_minute": 100}
    bad = {"quota": "gpus", "value": 8, "reason": REASON}
    assert gateway.call("POST", f"{T}/quota-requests", ta, bad).status == 400
