"""Every platform action on a tenant lands in that tenant's own audit view (issue 13, point 3).

The route table is walked: every /admin/v1 route is either one that acts on
a tenant (`ON_TENANT`: its path, query or body names the tenant, or the
object it touches belongs to one) or one that does not (`NOT_ON_TENANT`, with
the reason).  A new route that is in neither fails
`test_every_admin_route_is_classified`, so a route that acts on a tenant
cannot be added without its audit event being checked here.

Each route of `ON_TENANT` is called once against one tenant, in an order
that lets each succeed; its audit event (found by the response's request id)
must carry the tenant's id as `target_tenant`, and the tenant's own auditor
must find it in `/tenant/v1/audit/events`, in its bundle with an inclusion
proof, and through `/tenant/v1/audit/proofs/{id}`.  An access request on the
tenant, its refused self-approval, its approval and the grant's use land in
the tenant's view too; a platform principal's events never do, even when it
shares the tenant's name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from bulkhead.audit.bundle import verify_bundle
from bulkhead.audit.checkpoint import Verifier
from bulkhead.domain import Role
from bulkhead.store.schema import AuditEntryRow
from tests.security.test_data_import import model_upload
from tests.security.test_privilege import platform_key, router_of
from tests.support.gateway import GatewayThread, Response, UpstreamThread, http

# Routes that act on no tenant, and why.
NOT_ON_TENANT: dict[tuple[str, str], str] = {
    ("GET", "/admin/v1/tenants"): "lists every tenant",
    ("GET", "/admin/v1/models"): "lists every model",
    ("GET", "/admin/v1/workers"): "the platform's workers",
    ("GET", "/admin/v1/gpus"): "the platform's devices",
    ("POST", "/admin/v1/gpus/plan"): "a layout computed from the body alone",
    ("POST", "/admin/v1/audit/keys/rotate"): "the platform's signing key",
    ("GET", "/admin/v1/audit/keys"): "the platform's public keys",
    ("GET", "/admin/v1/keys/status"): "every key the platform holds, ids and dates only",
    ("GET", "/admin/v1/keys/ca/bundle"): "the internal CA's public certificates",
    ("POST", "/admin/v1/keys/ca/rotate"): "the platform's CA",
    ("POST", "/admin/v1/keys/platform-kek/rotate"): "the platform's own KEK",
    ("POST", "/admin/v1/keys/platform-kek/versions/{version}/retire"): "the platform's own KEK",
    ("POST", "/admin/v1/keys/cache-salt/rotate"): "one secret for every tenant's cache salt",
    ("GET", "/admin/v1/quota-requests"): "lists every tenant's requests",
    ("GET", "/admin/v1/access-requests"): "lists every request",
    ("POST", "/admin/v1/upstream-credentials"): "a platform credential, allowed to none yet",
    ("GET", "/admin/v1/upstream-credentials"): "lists platform credentials",
    ("GET", "/admin/v1/upstream-credentials/{credential}"): "a platform credential",
    ("DELETE", "/admin/v1/upstream-credentials/{credential}"): "a platform credential",
    ("PUT", "/admin/v1/principals/{principal}/password"): "a platform principal's own password",
    **{
        (method, path): "a platform principal: never a tenant, whatever its name"
        for method, path in (
            ("POST", "/admin/v1/principals"),
            ("GET", "/admin/v1/principals"),
            ("GET", "/admin/v1/principals/{principal}"),
            ("PUT", "/admin/v1/principals/{principal}/roles"),
            ("POST", "/admin/v1/principals/{principal}/disable"),
            ("POST", "/admin/v1/principals/{principal}/enable"),
            ("DELETE", "/admin/v1/principals/{principal}"),
            ("POST", "/admin/v1/principals/{principal}/keys"),
            ("GET", "/admin/v1/principals/{principal}/keys"),
        )
    },
}


@dataclass
class World:
    """One tenant acted on, and what the steps made in it."""

    gw: GatewayThread
    upstream: UpstreamThread
    name: str
    ids: dict[str, str] = field(default_factory=dict)
    events: dict[tuple[str, str], str] = field(default_factory=dict)  # route -> request id

    @property
    def tenant(self) -> str:
        return self.ids["tenant"]


Step = Callable[[World], Response]
T = "/admin/v1/tenants/{name}"


def act(w: World, method: str, path: str, body: Any = None, *, grant: str = "") -> Response:
    if grant:
        w.gw.grant(grant, w.name)
    answer = w.gw.admin(method, path.format(name=w.name, **w.ids), body)
    assert answer.status < 300, (method, path, answer.status, answer.body)
    return answer


def _made_tenant(w: World) -> Response:
    answer = act(w, "POST", "/admin/v1/tenants", {"name": w.name})
    w.ids["tenant"] = answer.body["id"]
    return answer


def _first_admin(w: World) -> Response:
    answer = act(w, "POST", f"{T}/keys", {"role": "tenant_admin"})
    w.ids["admin"] = answer.body["secret"]
    w.ids["auditor"] = w.gw.key(w.name, role="tenant_auditor")
    w.ids["key_id"] = w.gw.mint(w.name, role="end_user")["key"]["id"]
    return answer


def _private_model(w: World) -> Response:
    w.ids["model"] = f"{w.name}-m"
    body = {"name": w.ids["model"], "upstream": w.upstream.url, "upstream_model": "fake"}
    return act(w, "POST", "/admin/v1/models", {**body, "tenant": w.name})


def _shared_model(w: World) -> None:
    body = {"name": f"{w.name}-s", "upstream": w.upstream.url, "upstream_model": "fake"}
    w.gw.must("POST", "/admin/v1/models", body)
    w.ids["shared"] = f"{w.name}-s"
    w.gw.must("POST", "/admin/v1/upstream-credentials", {"name": w.name, "env": "NOT_A_SECRET"})


def _quota_request(w: World) -> str:
    body = {"quota": "concurrency", "value": 7, "reason": "a load test next week"}
    made = w.gw.call("POST", "/tenant/v1/quota-requests", w.ids["admin"], body)
    assert made.status == 201, made.body
    return str(made.body["id"])


def _quota(w: World, verdict: str) -> Response:
    w.ids["id"] = _quota_request(w)
    grant = "admin:quota_requests.approve" if verdict == "approve" else ""
    return act(
        w, "POST", f"/admin/v1/quota-requests/{{id}}/{verdict}", {"reason": "ok"}, grant=grant
    )


def _access_request(w: World) -> Response:
    body = {"action": "admin:kms.retire", "target": w.name, "reason": "retire the first KEK"}
    answer = act(w, "POST", "/admin/v1/access-requests", body)
    w.ids["request"] = w.ids["id"] = answer.body["id"]
    return answer


def _own_approval_refused(w: World) -> None:
    own = w.gw.admin("POST", f"/admin/v1/access-requests/{w.ids['request']}/approve")
    assert own.status == 403 and own.body["error"]["code"] == "self_approval", own.body


def _approved(w: World) -> Response:
    path = f"/admin/v1/access-requests/{w.ids['request']}/approve"
    answer = w.gw.admin("POST", path, key=w.gw.approver_key())
    assert answer.status == 200, answer.body
    return answer


def _denied(w: World) -> Response:
    body = {"action": "admin:tenants.delete", "target": w.name, "reason": "not today, thanks"}
    w.ids["id"] = act(w, "POST", "/admin/v1/access-requests", body).body["id"]
    return act(w, "POST", "/admin/v1/access-requests/{id}/deny", {"reason": "no, not today"})


def _event_id(w: World) -> Response:
    theirs = [e for e in w.gw.audit_events() if e.get("target_tenant") == w.tenant]
    w.ids["event_id"] = theirs[-1]["event_id"]
    w.gw.app.sequencer.checkpoint()
    return act(w, "GET", "/admin/v1/audit/proofs/{event_id}?tenant={name}")


def _import(w: World) -> Response:
    path = f"{w.gw.url}/admin/v1/tenants/{w.name}/model-artifacts?model={w.name}-imported"
    answer = http("POST", path, w.gw.admin_key, raw=model_upload())
    assert answer.status == 201, answer.body
    return answer


IDP = {"issuer": "https://i.example", "audience": "a", "jwks_url": "https://i.example/k"}

# In the order they run: each leaves what the next needs.  The tenant's deletion is last.
ON_TENANT: dict[tuple[str, str], Step] = {
    ("POST", "/admin/v1/tenants"): _made_tenant,
    ("GET", T): lambda w: act(w, "GET", T),
    ("GET", f"{T}/usage"): lambda w: act(w, "GET", f"{T}/usage"),
    ("PATCH", T): lambda w: act(w, "PATCH", T, {"tier": "mig"}),
    ("POST", f"{T}/keys"): _first_admin,
    ("GET", f"{T}/keys"): lambda w: act(w, "GET", f"{T}/keys"),
    ("PATCH", f"{T}/keys/{{key_id}}/limits"): lambda w: act(
        w, "PATCH", f"{T}/keys/{{key_id}}/limits", {"requests_per_minute": 10}
    ),
    ("POST", "/admin/v1/keys/{key_id}/revoke"): lambda w: act(
        w, "POST", "/admin/v1/keys/{key_id}/revoke"
    ),
    ("POST", f"{T}/principals"): lambda w: act(
        w, "POST", f"{T}/principals", {"name": "pat", "roles": ["end_user"]}
    ),
    ("GET", f"{T}/principals"): lambda w: act(w, "GET", f"{T}/principals"),
    ("PUT", f"{T}/principals/{{principal}}/password"): lambda w: act(
        w,
        "PUT",
        f"{T}/principals/pat/password",
        {"password": "a long and unguessable phrase"},
        grant="admin:principals.password.set",
    ),
    ("PUT", f"{T}/principals/{{principal}}/attributes"): lambda w: act(
        w, "PUT", f"{T}/principals/pat/attributes", {"clearance": "internal"}
    ),
    ("GET", f"{T}/principals/{{principal}}/attributes"): lambda w: act(
        w, "GET", f"{T}/principals/pat/attributes"
    ),
    ("POST", "/admin/v1/models"): _private_model,
    ("PUT", "/admin/v1/models/{model}/attributes"): lambda w: act(
        w,
        "PUT",
        "/admin/v1/models/{model}/attributes?tenant={name}",
        {"classification": "internal"},
    ),
    ("GET", "/admin/v1/models/{model}/attributes"): lambda w: act(
        w, "GET", "/admin/v1/models/{model}/attributes?tenant={name}"
    ),
    ("POST", "/admin/v1/models/{model}/grants"): lambda w: (
        _shared_model(w),
        act(w, "POST", "/admin/v1/models/{shared}/grants", {"tenant": w.name}),
    )[1],
    ("DELETE", "/admin/v1/models/{model}/grants/{tenant}"): lambda w: act(
        w, "DELETE", "/admin/v1/models/{shared}/grants/{name}"
    ),
    ("POST", f"{T}/model-artifacts"): _import,
    ("PUT", f"{T}/upstream-allowlist"): lambda w: act(
        w, "PUT", f"{T}/upstream-allowlist", {"entries": ["127.0.0.1/32"]}
    ),
    ("GET", f"{T}/upstream-allowlist"): lambda w: act(w, "GET", f"{T}/upstream-allowlist"),
    ("POST", "/admin/v1/upstream-credentials/{credential}/grants"): lambda w: act(
        w, "POST", f"/admin/v1/upstream-credentials/{w.name}/grants", {"tenant": w.name}
    ),
    ("DELETE", "/admin/v1/upstream-credentials/{credential}/grants/{tenant}"): lambda w: act(
        w, "DELETE", f"/admin/v1/upstream-credentials/{w.name}/grants/{w.name}"
    ),
    ("GET", f"{T}/config"): lambda w: act(w, "GET", f"{T}/config"),
    ("PATCH", f"{T}/config"): lambda w: act(w, "PATCH", f"{T}/config", {"retention": "encrypted"}),
    ("GET", f"{T}/limits"): lambda w: act(w, "GET", f"{T}/limits"),
    ("PATCH", f"{T}/limits"): lambda w: act(w, "PATCH", f"{T}/limits", {"concurrency": 4}),
    ("GET", f"{T}/guard"): lambda w: act(w, "GET", f"{T}/guard"),
    ("PATCH", f"{T}/guard"): lambda w: act(w, "PATCH", f"{T}/guard", {"pii": "redact"}),
    ("PUT", f"{T}/attributes"): lambda w: act(w, "PUT", f"{T}/attributes", {"regions": ["eu"]}),
    ("GET", f"{T}/attributes"): lambda w: act(w, "GET", f"{T}/attributes"),
    ("PUT", f"{T}/policies"): lambda w: act(
        w, "PUT", f"{T}/policies", {"policies": ""}, grant="admin:policies.update"
    ),
    ("GET", f"{T}/policies"): lambda w: act(w, "GET", f"{T}/policies"),
    ("DELETE", f"{T}/policies"): lambda w: act(
        w, "DELETE", f"{T}/policies", grant="admin:policies.delete"
    ),
    ("PUT", f"{T}/idp"): lambda w: act(w, "PUT", f"{T}/idp", IDP, grant="admin:tenants.idp.set"),
    ("GET", f"{T}/idp"): lambda w: act(w, "GET", f"{T}/idp"),
    ("DELETE", f"{T}/idp"): lambda w: act(w, "DELETE", f"{T}/idp"),
    ("POST", f"{T}/client-certs"): lambda w: act(w, "POST", f"{T}/client-certs", {}),
    ("POST", "/admin/v1/quota-requests/{id}/approve"): lambda w: _quota(w, "approve"),
    ("POST", "/admin/v1/quota-requests/{id}/deny"): lambda w: _quota(w, "deny"),
    ("GET", f"{T}/kms"): lambda w: act(w, "GET", f"{T}/kms"),
    ("POST", f"{T}/kms/rotate"): lambda w: act(w, "POST", f"{T}/kms/rotate"),
    ("POST", "/admin/v1/access-requests"): _access_request,
    ("GET", "/admin/v1/access-requests/{id}"): lambda w: act(
        w, "GET", "/admin/v1/access-requests/{request}"
    ),
    ("POST", "/admin/v1/access-requests/{id}/approve"): lambda w: (
        _own_approval_refused(w),
        _approved(w),
    )[1],
    ("POST", f"{T}/kms/versions/{{version}}/retire"): lambda w: act(
        w, "POST", f"{T}/kms/versions/1/retire"
    ),
    ("POST", "/admin/v1/access-requests/{id}/deny"): _denied,
    ("GET", "/admin/v1/audit/events"): lambda w: act(
        w, "GET", "/admin/v1/audit/events?tenant={name}", grant="admin:audit.export.get"
    ),
    ("GET", "/admin/v1/audit/bundle"): lambda w: act(
        w, "GET", "/admin/v1/audit/bundle?tenant={name}"
    ),
    ("GET", "/admin/v1/audit/proofs/{event_id}"): _event_id,
    ("DELETE", T): lambda w: act(w, "DELETE", T, grant="admin:tenants.delete"),
}


def request_id(answer: Response) -> str:
    return next(v for k, v in answer.headers.items() if k.lower() == "x-request-id")


def test_every_admin_route_is_classified(gateway: GatewayThread) -> None:
    routes = {(r.method, r.path) for r in router_of(gateway).routes if r.path.startswith("/admin/")}
    unknown = routes - set(ON_TENANT) - set(NOT_ON_TENANT)
    assert not unknown, (
        f"{sorted(unknown)}: say whether each acts on a tenant (ON_TENANT, with a call that "
        "does it) or not (NOT_ON_TENANT, with the reason)"
    )
    assert not set(ON_TENANT) & set(NOT_ON_TENANT)
    assert routes >= set(ON_TENANT), sorted(set(ON_TENANT) - routes)


def test_every_platform_action_on_a_tenant_is_in_its_own_view(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    w = World(gateway, upstream, unique)
    *steps, (last, delete) = ON_TENANT.items()
    assert last == ("DELETE", T)
    for route, step in steps:
        w.events[route] = request_id(step(w))
    everything = gateway.audit_events()
    events = {e["request_id"]: e for e in everything if e.get("request_id")}
    for route, rid in w.events.items():
        assert events[rid].get("target_tenant") == w.tenant, (route, events[rid])
    mine = {events[rid]["event_id"] for rid in w.events.values()}
    pam = {
        e["action"]: e["event_id"]
        for e in everything
        if e.get("resource") == w.ids["request"] and e["action"].startswith("pam.")
    }
    assert set(pam) >= {
        "pam.request.create",
        "pam.request.self_approval",
        "pam.request.approve",
        "pam.grant.use",
    }, sorted(pam)
    _in_the_tenants_view(w, mine | set(pam.values()))
    gone = request_id(delete(w))
    _recorded_for(w, gone)


def _in_the_tenants_view(w: World, wanted: set[str]) -> None:
    """The tenant's auditor lists each event, and finds it in its bundle with its proof."""
    gw, auditor = w.gw, w.ids["auditor"]
    gw.app.audit.flush()
    gw.app.sequencer.checkpoint()
    listed, after = set(), -1
    while True:
        page = gw.call("GET", f"/tenant/v1/audit/events?after={after}&limit=1000", auditor)
        assert page.status == 200, page.body
        if not page.body["data"]:
            break
        listed |= {e["event_id"] for e in page.body["data"]}
        after = page.body["data"][-1]["idx"]
        if len(page.body["data"]) < 1000:  # the last page (each listing is itself recorded,
            break  # durably, before it answers: asking again always finds one more event)
    assert wanted <= listed, sorted(wanted - listed)
    bundle = gw.call("GET", "/tenant/v1/audit/bundle", auditor).body
    verify_bundle(bundle, [Verifier.from_vkey(v) for v in bundle["verifiers"]])
    own = {
        json.loads(e["body"])["event_id"]: idx
        for idx, e in enumerate(bundle["entries"])
        if "body" in e
    }
    assert wanted <= set(own), sorted(wanted - set(own))
    assert all(str(own[event]) in bundle["proofs"] for event in wanted)
    for event in sorted(wanted)[:5]:
        assert gw.call("GET", f"/tenant/v1/audit/proofs/{event}", auditor).status == 200


def _recorded_for(w: World, rid: str) -> None:
    """The deletion: its event names the tenant, and its entry is indexed under it."""
    event = next(e for e in w.gw.audit_events() if e.get("request_id") == rid)
    assert event["target_tenant"] == w.tenant and event["status"] == 200, event
    with w.gw.app.db.platform_transaction() as session:
        row = session.execute(
            select(AuditEntryRow.target_tenant_id).where(
                AuditEntryRow.event_id == event["event_id"]
            )
        ).scalar_one()
    assert row == w.tenant


def test_a_platform_principal_named_like_a_tenant_stays_out_of_its_view(
    gateway: GatewayThread, unique: str
) -> None:
    tenant = gateway.tenant(unique)["id"]
    gateway.grant("admin:platform_principals.create", unique)
    made = gateway.admin(
        "POST", "/admin/v1/principals", {"name": unique, "roles": ["platform_auditor"]}
    )
    assert made.status == 201, made.body
    rids = [request_id(made)]
    for method, path, body in (
        ("GET", f"/admin/v1/principals/{unique}", None),
        ("GET", f"/admin/v1/principals/{unique}/keys", None),
        ("POST", f"/admin/v1/principals/{unique}/disable", None),
        ("PUT", f"/admin/v1/principals/{unique}/roles", {"roles": ["platform_admin"]}),
        ("DELETE", f"/admin/v1/principals/{unique}", None),
    ):
        rids.append(request_id(gateway.admin(method, path, body)))
    events = [e for e in gateway.audit_events() if e.get("request_id") in rids]
    assert len(events) == len(rids)
    for event in events:
        assert tenant not in (event.get("tenant_id"), event.get("target_tenant")), event


def test_a_refused_platform_action_on_a_tenant_is_in_its_view_too(
    gateway: GatewayThread, unique: str
) -> None:
    """An admin without a grant tries the tenant's privileged actions: each try is on its record."""
    tenant = gateway.tenant(unique)["id"]
    admin = gateway.key(unique, role="tenant_admin")
    auditor = gateway.key(unique, role="tenant_auditor")
    body = {"quota": "concurrency", "value": 1000, "reason": "a load test next week"}
    quota = gateway.call("POST", "/tenant/v1/quota-requests", admin, body).body["id"]
    newcomer = platform_key(gateway, f"{unique}-new", Role.PLATFORM_ADMIN)
    t = f"/admin/v1/tenants/{unique}"
    rids = []
    for method, path, sent in (
        ("POST", f"{t}/keys", {"role": "end_user"}),
        ("POST", f"{t}/kms/versions/1/retire", None),
        ("DELETE", t, None),
        ("PUT", f"{t}/policies", {"policies": ""}),
        ("DELETE", f"{t}/policies", None),
        ("PUT", f"{t}/idp", IDP),
        ("PATCH", f"{t}/limits", {"concurrency": 1000}),
        ("POST", f"/admin/v1/quota-requests/{quota}/approve", {"reason": "go"}),
        ("GET", f"/admin/v1/audit/events?tenant={unique}", None),
    ):
        answer = gateway.admin(method, path, sent, key=newcomer)
        assert answer.status == 403, (method, path, answer.body)
        assert answer.body["error"]["code"] == "privileged_access_required", answer.body
        rids.append(request_id(answer))
    events = {e.get("request_id"): e for e in gateway.audit_events()}
    assert all(events[rid].get("target_tenant") == tenant for rid in rids), [
        events[rid] for rid in rids
    ]
    listed = gateway.call("GET", "/tenant/v1/audit/events?limit=1000", auditor).body["data"]
    assert {events[rid]["event_id"] for rid in rids} <= {e["event_id"] for e in listed}
