"""Privileged effects are gated on every route, keys issue nothing broader than themselves,
the platform's settings are a floor, and tenant routes never switch row-level security off.

Issue 12, items 8, 14, 16, 26 and the platform floor; each test attacks through a real
gateway on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event

from bulkhead.admin.effects import PRIVILEGED_EFFECTS, Effect
from bulkhead.admin.router import Route, Router
from bulkhead.domain import PrincipalKind, Role
from bulkhead.guard import FLOORED, GuardConfig
from bulkhead.limits.policy import KEY_QUOTAS
from bulkhead.store import Database, repo, upgrade
from tests.support.artifacts import import_model
from tests.support.gateway import GatewayThread, Response, UpstreamThread

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
READ_LOG = "admin:audit.export.get"
RAISE = "admin:quota_requests.approve"


def refused(response: Response) -> bool:
    """A refusal for want of a grant (not a 404 or a validation error)."""
    error = (response.body or {}).get("error") or {}
    return response.status == 403 and error.get("code") == "privileged_access_required"


def keys_of(tenant: str) -> str:
    return f"/admin/v1/tenants/{tenant}/keys"


def first_admin(gateway: GatewayThread, tenant: str) -> Any:
    """The tenant's first tenant_admin key: the one a platform admin mints without a grant."""
    made = gateway.admin("POST", keys_of(tenant), {"role": "tenant_admin", "name": "first"})
    assert made.status == 201, made.body
    return made.body


def platform_key(gateway: GatewayThread, name: str, role: Role) -> str:
    """A key of a new platform principal (one that holds no grant)."""
    with gateway.app.db.platform_transaction() as session:
        who = repo.create_principal(session, None, name, PrincipalKind.USER, [role])
        secret = repo.create_key(session, None, role=role, principal=who).secret
    gateway.app.catalog.reload()
    return secret


def router_of(gateway: GatewayThread) -> Router:
    """The management router inside the live gateway's chain (`build_admin`'s)."""
    app: Any = gateway.app.chain
    while not hasattr(app, "management"):
        app = app.app
    router = app.management.made()  # made at the first call (`app.lazy.DeferredApp`)
    assert isinstance(router, Router)
    return router


def settle(gateway: GatewayThread) -> None:
    gateway.app.audit.flush()
    gateway.app.sequencer.checkpoint()


# Item 8: other routes to the effects a grant guards --------------------------------------------


def test_platform_admin_reads_no_tenant_events_without_a_grant(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    tid = gateway.must("GET", f"/admin/v1/tenants/{unique}")["id"]
    admin = first_admin(gateway, unique)["secret"]
    assert gateway.call("GET", "/tenant/v1/keys", admin).status == 200
    settle(gateway)
    theirs = [e for e in gateway.audit_events() if e.get("tenant_id") == tid]
    event_id = theirs[0]["event_id"]
    reads = [
        "/admin/v1/audit/events?limit=1000",
        "/admin/v1/audit/bundle",
        f"/admin/v1/audit/proofs/{event_id}",
        f"/admin/v1/audit/events?tenant={unique}",
        f"/admin/v1/audit/bundle?tenant={unique}",
        f"/admin/v1/audit/proofs/{event_id}?tenant={unique}",
    ]
    for path in reads:
        response = gateway.admin("GET", path)
        assert refused(response), (path, response.status, response.body)
        assert tid not in response.raw.decode()

    auditor = platform_key(gateway, f"{unique}-auditor", Role.PLATFORM_AUDITOR)
    for path in reads:
        assert gateway.call("GET", path, auditor).status == 200, path

    gateway.grant(READ_LOG, "platform")  # one grant for the whole log: events, bundle, proofs
    listed = gateway.admin("GET", "/admin/v1/audit/events?limit=1000")
    assert listed.status == 200 and tid in listed.raw.decode()
    assert gateway.admin("GET", f"/admin/v1/audit/proofs/{event_id}").status == 200
    # A grant on the whole log is not one on the tenant's view, and the reverse.
    assert refused(gateway.admin("GET", f"/admin/v1/audit/events?tenant={unique}"))
    gateway.grant(READ_LOG, unique)
    own = gateway.admin("GET", f"/admin/v1/audit/events?tenant={unique}&limit=1000")
    assert own.status == 200
    # Its own events, and the platform's actions on it (`target_tenant`).
    assert {e.get("tenant_id") or e.get("target_tenant") for e in own.body["data"]} == {tid}


def test_platform_admin_mints_a_tenant_key_only_with_a_grant(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    first = first_admin(gateway, unique)  # Onboarding: the tenant's first admin, once.
    bootstrap = [e for e in gateway.audit_events() if e.get("resource") == unique]
    assert bootstrap[-1]["reason"] == "no_grant_needed:first_admin"
    for role in ("tenant_auditor", "tenant_admin", "model_developer", "end_user"):
        response = gateway.admin("POST", keys_of(unique), {"role": role})
        assert refused(response), (role, response.status, response.body)
    # Revoking the first admin does not open the door again.
    assert gateway.admin("POST", f"/admin/v1/keys/{first['key']['id']}/revoke").status == 200
    assert refused(gateway.admin("POST", keys_of(unique), {"role": "tenant_admin"}))
    gateway.grant("admin:keys.create", unique)
    made = gateway.admin("POST", keys_of(unique), {"role": "tenant_auditor"})
    assert made.status == 201, made.body


def test_two_first_admins_at_once_get_one_key(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    body = {"role": "tenant_admin"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: gateway.admin("POST", keys_of(unique), body), range(4)))
    assert sorted(a.status for a in answers) == [201, 403, 403, 403], [a.body for a in answers]
    assert all(refused(a) for a in answers if a.status == 403)
    assert len(gateway.must("GET", keys_of(unique))["data"]) == 1  # the losers left no key


def test_passwords_and_idp_of_a_tenant_need_a_grant_after_its_first_admin(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    principals = f"/admin/v1/tenants/{unique}/principals"
    for name in ("alice", "bob"):
        body = {"name": name, "roles": ["tenant_admin"]}
        assert gateway.admin("POST", principals, body).status == 201
    secret = {"password": "a long and unguessable passphrase"}
    # The first admin may be a person: the password of a tenant_admin principal, once.
    assert gateway.admin("PUT", f"{principals}/alice/password", secret).status == 200
    response = gateway.admin("PUT", f"{principals}/bob/password", secret)
    assert refused(response), (response.status, response.body)
    idp = {
        "issuer": "https://idp.example",
        "audience": "bulkhead",
        "jwks_url": "https://idp.example/jwks",
    }
    assert refused(gateway.admin("PUT", f"/admin/v1/tenants/{unique}/idp", idp))
    assert refused(gateway.admin("POST", keys_of(unique), {"role": "tenant_admin"}))
    gateway.grant("admin:principals.password.set", unique)
    assert gateway.admin("PUT", f"{principals}/bob/password", secret).status == 200


def test_patching_limits_above_the_tier_needs_the_quota_grant(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)  # shared tier: 600 rpm, 100k tpm, concurrency 16, weight 1
    path = f"/admin/v1/tenants/{unique}/limits"
    for raise_ in (
        {"requests_per_minute": 1_000_000},
        {"tokens_per_minute": None},
        {"concurrency": 17},
        {"max_tokens_per_request": 5_000},
        {"default_max_tokens": 2_000},
        {"share_weight": 2},
        {"requests_per_minute": 10, "concurrency": 100},
        # Kubernetes compute (`bulkhead k8s render`): a shared tenant has no GPU.
        {"gpus": 1},
        {"mig_instances": 1},
        {"cpu_millicores": 100_000},
    ):
        response = gateway.admin("PATCH", path, raise_)
        assert refused(response), (raise_, response.status, response.body)
        assert RAISE in response.body["error"]["message"]
    limits = gateway.must("GET", path)["limits"]
    assert limits["requests_per_minute"]["value"] == 600 and limits["concurrency"]["value"] == 16
    # Within the tier needs no grant.
    assert gateway.admin("PATCH", path, {"requests_per_minute": 10}).status == 200
    assert gateway.admin("PATCH", path, {"requests_per_minute": "default"}).status == 200
    gateway.grant(RAISE, unique)  # the grant quota approval needs, single-use
    assert gateway.admin("PATCH", path, {"requests_per_minute": 1_000_000}).status == 200
    assert refused(gateway.admin("PATCH", path, {"tokens_per_minute": None}))
    # Lowering a value a grant raised needs none.
    assert gateway.admin("PATCH", path, {"requests_per_minute": 900_000}).status == 200


# Items 14 and 16: a key issues nothing broader than itself; rotation keeps limits -----------------


@pytest.fixture
def scoped(gateway: GatewayThread, upstream: UpstreamThread, unique: str) -> dict[str, Any]:
    """A tenant with two private models and a tenant_admin key scoped to one, expiring, limited."""
    gateway.tenant(unique)
    for model in ("a", "b"):
        gateway.model(f"{unique}-{model}", upstream.url, tenant=unique, upstream_model="fake")
    made = gateway.mint(unique, role="tenant_admin", models=[f"{unique}-a"], expires_in_s=3600)
    floor = {"requests_per_minute": 5, "tokens_per_day": 1000}
    path = f"/admin/v1/tenants/{unique}/keys/{made['key']['id']}/limits"
    assert gateway.admin("PATCH", path, floor).status == 200
    return {"secret": made["secret"], "key": made["key"], "floor": floor}


def test_a_scoped_expiring_admin_key_mints_nothing_broader(
    gateway: GatewayThread, unique: str, scoped: dict[str, Any]
) -> None:
    admin, expires = scoped["secret"], datetime.fromisoformat(scoped["key"]["expires_at"])
    made = gateway.call("POST", "/tenant/v1/keys", admin, {"role": "end_user"})
    assert made.status == 201, made.body
    key = made.body["key"]
    assert key["models"] == [f"{unique}-a"]  # inherits the issuer's scope
    assert key["expires_at"] is not None
    assert datetime.fromisoformat(key["expires_at"]) <= expires  # and its expiry
    limits = gateway.call("GET", f"/tenant/v1/keys/{key['id']}/limits", admin).body["limits"]
    assert limits["requests_per_minute"] == 5 and limits["tokens_per_day"] == 1000
    # The new key cannot lift what it inherited.
    lift = gateway.call(
        "PATCH", f"/tenant/v1/keys/{key['id']}/limits", admin, {"requests_per_minute": None}
    )
    assert lift.status == 200
    assert lift.body["limits"]["requests_per_minute"] == 5

    wider = gateway.call("POST", "/tenant/v1/keys", admin, {"models": [f"{unique}-b"]})
    assert wider.status == 404 and wider.body["error"]["code"] == "model_not_found"
    later = gateway.call("POST", "/tenant/v1/keys", admin, {"expires_in_s": 7200})
    assert later.status == 400 and later.body["error"]["param"] == "expires_in_s"
    assert gateway.call("POST", "/tenant/v1/keys", admin, {"expires_in_s": 600}).status == 201


def test_a_scoped_admin_key_cannot_rotate_a_broader_key(
    gateway: GatewayThread, unique: str, scoped: dict[str, Any]
) -> None:
    admin = scoped["secret"]
    for body in ({"role": "tenant_admin"}, {"role": "end_user", "models": [f"{unique}-a"]}):
        wide = gateway.mint(unique, **body)["key"]["id"]
        rotated = gateway.call("POST", f"/tenant/v1/keys/{wide}/rotate", admin, {})
        assert rotated.status == 403, (body, rotated.status, rotated.body)
    narrow = gateway.call("POST", "/tenant/v1/keys", admin, {"expires_in_s": 600}).body
    rotated = gateway.call("POST", f"/tenant/v1/keys/{narrow['key']['id']}/rotate", admin, {})
    assert rotated.status == 201, rotated.body
    own = gateway.call("POST", f"/tenant/v1/keys/{scoped['key']['id']}/rotate", admin, {})
    assert own.status == 201, own.body


def test_rotation_keeps_the_keys_limits(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-m", upstream.url, tenant=unique, upstream_model="fake")
    admin = gateway.key(unique, role="tenant_admin")
    made = gateway.mint(unique)
    key_id = made["key"]["id"]
    platform = f"/admin/v1/tenants/{unique}/keys/{key_id}/limits"
    assert gateway.admin("PATCH", platform, {"tokens_per_day": 5000}).status == 200
    own = {"requests_per_minute": 2}
    assert gateway.call("PATCH", f"/tenant/v1/keys/{key_id}/limits", admin, own).status == 200
    rotated = gateway.call("POST", f"/tenant/v1/keys/{key_id}/rotate", admin, {})
    assert rotated.status == 201, rotated.body
    new_id, secret = rotated.body["key"]["id"], rotated.body["secret"]
    limits = gateway.call("GET", f"/tenant/v1/keys/{new_id}/limits", admin).body
    assert limits["limits"]["requests_per_minute"] == 2
    assert limits["limits"]["tokens_per_day"] == limits["platform"]["tokens_per_day"] == 5000
    chat = {"model": f"{unique}-m", **CHAT}
    statuses = [gateway.call("POST", "/v1/chat/completions", secret, chat).status for _ in range(3)]
    assert statuses == [200, 200, 429]


# The platform floor: tenant admins only tighten what the platform set ----------------------------


def test_tenant_admins_only_tighten_the_key_limits_the_platform_set(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    admin = gateway.key(unique, role="tenant_admin")
    key_id = gateway.mint(unique)["key"]["id"]
    platform = f"/admin/v1/tenants/{unique}/keys/{key_id}/limits"
    own = f"/tenant/v1/keys/{key_id}/limits"
    for name in sorted(KEY_QUOTAS):
        assert gateway.admin("PATCH", platform, {name: 100}).status == 200
        raised = gateway.call("PATCH", own, admin, {name: 101})
        assert raised.status == 400 and raised.body["error"]["param"] == name, raised.body
        dropped = gateway.call("PATCH", own, admin, {name: None})
        assert dropped.status == 200 and dropped.body["limits"][name] == 100, name
        lowered = gateway.call("PATCH", own, admin, {name: 50})
        assert lowered.status == 200 and lowered.body["limits"][name] == 50, name
    # The platform may lift its own floor; the key keeps the tenant's tightening.
    assert gateway.admin("PATCH", platform, {"concurrency": None}).status == 200
    assert gateway.call("GET", own, admin).body["limits"]["concurrency"] == 50


# Per guard setting: (the platform's value, a looser one, a tighter one).
GUARD_FLOOR: dict[str, tuple[Any, Any, Any]] = {
    "pii": ("redact", "mask", "block"),
    "secrets": ("redact", "detect", "block"),
    "entities": ({"email": "redact"}, {"email": "off"}, {"email": "block"}),
    "scan_output": (True, False, True),
    "injection": ("flag", "off", "block"),
    "injection_threshold": (0.5, 0.9, 0.3),
    "injection_learned": (True, False, True),
    "strip_images": (True, False, True),
    "strip_links": (True, False, True),
    "allowed_link_hosts": (["*.example.com"], ["evil.test"], ["docs.example.com"]),
    "canary": (True, False, True),
    "allow_logprobs": (False, True, False),
    "allow_fine_tuned_logprobs": (False, True, False),
    "phone_regions": (["CN", "US"], ["CN"], ["CN", "GB", "US"]),
    "stream_window": (512, 256, 1024),
}


def test_every_guard_setting_has_a_floor_case() -> None:
    fields = {f.name for f in dataclasses.fields(GuardConfig)}
    assert set(GUARD_FLOOR) == fields == set(FLOORED)


def test_tenant_admins_only_tighten_the_guard_settings_the_platform_set(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    admin = gateway.key(unique, role="tenant_admin")
    platform = f"/admin/v1/tenants/{unique}/guard"
    for name, (floor, looser, tighter) in GUARD_FLOOR.items():
        assert gateway.admin("PATCH", platform, {name: floor}).status == 200, name
        loosened = gateway.call("PATCH", "/tenant/v1/guard", admin, {name: looser})
        assert loosened.status == 400, (name, loosened.status, loosened.body)
        assert loosened.body["error"]["param"].split(".")[0] == name
        tightened = gateway.call("PATCH", "/tenant/v1/guard", admin, {name: tighter})
        assert tightened.status == 200, (name, tightened.body)
        shown = tightened.body["guard"][name]
        expected = sorted(tighter) if isinstance(tighter, list) else tighter
        assert shown == expected, (name, shown)
        assert gateway.call("PATCH", "/tenant/v1/guard", admin, {name: None}).status == 200
        assert gateway.admin("PATCH", platform, {name: None}).status == 200
    # A per-entity override cannot undo the platform's group action either.
    assert gateway.admin("PATCH", platform, {"pii": "redact"}).status == 200
    undo = gateway.call("PATCH", "/tenant/v1/guard", admin, {"entities": {"email": "off"}})
    assert undo.status == 400 and undo.body["error"]["param"] == "entities.email"
    # What the tenant chose before the platform set a floor gives way to it.
    assert gateway.call("PATCH", "/tenant/v1/guard", admin, {"allow_logprobs": True}).status == 200
    assert gateway.admin("PATCH", platform, {"allow_logprobs": False}).status == 200
    assert gateway.call("GET", "/tenant/v1/guard", admin).body["guard"]["allow_logprobs"] is False


def test_the_platform_guard_floor_holds_on_the_data_plane(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-echo", upstream.url, tenant=unique, upstream_model="echo-1")
    admin, user = gateway.key(unique, role="tenant_admin"), gateway.key(unique)
    assert (
        gateway.admin("PATCH", f"/admin/v1/tenants/{unique}/guard", {"pii": "redact"}).status == 200
    )
    assert gateway.call("PATCH", "/tenant/v1/guard", admin, {"pii": "off"}).status == 400
    chat = {
        "model": f"{unique}-echo",
        "messages": [{"role": "user", "content": "mail alice@example.com"}],
        "max_tokens": 16,
    }
    r = gateway.call("POST", "/v1/chat/completions", user, chat)
    assert r.status == 200, r.body
    assert "alice@example.com" not in r.raw.decode()


# Item 26: tenant routes run with row-level security on --------------------------------------------


@contextmanager
def platform_transactions(gateway: GatewayThread) -> Iterator[list[str]]:
    """Record every platform transaction (and `app.platform` statement) a tenant route makes."""
    router, db = router_of(gateway), gateway.app.db
    serving: ContextVar[str | None] = ContextVar("serving", default=None)
    found: list[str] = []

    def wrap(route: Route) -> Route:
        async def handler(call: Any) -> Any:
            token = serving.set(f"{route.method} {route.path}")
            try:
                return await route.handler(call)
            finally:
                serving.reset(token)

        return dataclasses.replace(route, handler=handler)

    original = db.platform_transaction

    def platform_transaction() -> Any:
        if serving.get() is not None:
            found.append(f"{serving.get()}: platform_transaction")
        return original()

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if serving.get() is not None and "app.platform" in sql:
            found.append(f"{serving.get()}: {sql}")

    compiled = router._compiled
    router._compiled = [(wrap(r) if r.action.startswith("tenant:") else r, p) for r, p in compiled]
    db.platform_transaction = platform_transaction  # type: ignore[method-assign]
    event.listen(db.engine, "before_cursor_execute", statement)
    try:
        yield found
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
        del db.platform_transaction
        router._compiled = compiled


def test_no_platform_transaction_in_a_tenant_scope(tmp_path: Any) -> None:
    """The database refuses to switch row-level security off for a tenant's request,
    in the threads the request starts too; the platform's own work outside it goes on."""
    db = Database(f"sqlite:///{tmp_path / 'scope.db'}")
    upgrade(db)

    def platform_read() -> int:
        with db.platform_transaction() as session:
            return len(repo.list_tenants(session))

    async def serve() -> None:
        with db.tenant_scope():
            with pytest.raises(RuntimeError):
                platform_read()
            with pytest.raises(RuntimeError):
                await asyncio.to_thread(platform_read)
            with db.tenant_transaction("ten_x") as session:
                assert repo.list_tenants(session) == []
        assert platform_read() == 0

    asyncio.run(serve())
    db.dispose()


def test_tenant_routes_never_switch_row_level_security_off(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-m", upstream.url, tenant=unique, upstream_model="fake")
    admin = gateway.key(unique, role="tenant_admin")
    victim = gateway.mint(unique)["key"]["id"]
    assert gateway.call("GET", "/tenant/v1/tenant", admin).status == 200  # one event of its own
    settle(gateway)
    tid = gateway.must("GET", f"/admin/v1/tenants/{unique}")["id"]
    event_id = next(e for e in gateway.audit_events() if e.get("tenant_id") == tid)["event_id"]
    values = {"key_id": victim, "name": "p1", "model": f"{unique}-m", "version": "v1"}
    values |= {
        "event_id": event_id,
        "id": "nope",
        "artifact": import_model(gateway, unique, f"{unique}-imported"),
    }
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/tenant/v1/keys"): {"role": "end_user"},
        ("POST", "/tenant/v1/keys/{key_id}/rotate"): {"grace_s": 60},
        ("POST", "/tenant/v1/principals"): {"name": "p1", "roles": ["end_user"]},
        ("PATCH", "/tenant/v1/principals/{name}"): {"roles": ["end_user", "model_developer"]},
        ("PATCH", "/tenant/v1/guard"): {"pii": "redact"},
        ("PATCH", "/tenant/v1/keys/{key_id}/limits"): {"requests_per_minute": 5},
        ("PUT", "/tenant/v1/policies"): {"policies": ""},
        ("POST", "/tenant/v1/quota-requests"): {
            "quota": "concurrency",
            "value": 20,
            "reason": "a test of row-level security",
        },
        ("POST", "/tenant/v1/models/{model}/versions"): {"version": "v1", "upstream": upstream.url},
    }
    order = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}
    tenant_routes = sorted(
        (r for r in router_of(gateway).routes if r.action.startswith("tenant:")),
        key=lambda r: (order[r.method], r.path),
    )
    with platform_transactions(gateway) as found:
        for route in tenant_routes:
            path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)
            body = bodies.get((route.method, route.path), {} if route.method != "GET" else None)
            response = gateway.call(route.method, path, admin, body)
            assert response.status < 500, (route.method, path, response.status, response.body)
    assert found == []
    assert len(tenant_routes) >= 25


# The class: every route that reaches a privileged effect needs the grant -------------------------

# Routes known to reach an effect; each must declare it (a new route to the same effect
# must declare it too, or the next test finds it unclassified).
KNOWN: dict[tuple[str, str], Effect] = {
    ("GET", "/admin/v1/audit/events"): Effect.READ_TENANT_DATA,
    ("GET", "/admin/v1/audit/bundle"): Effect.READ_TENANT_DATA,
    ("GET", "/admin/v1/audit/proofs/{event_id}"): Effect.READ_TENANT_DATA,
    ("GET", "/tenant/v1/audit/events"): Effect.READ_TENANT_DATA,
    ("GET", "/tenant/v1/audit/bundle"): Effect.READ_TENANT_DATA,
    ("GET", "/tenant/v1/audit/proofs/{event_id}"): Effect.READ_TENANT_DATA,
    ("GET", "/tenant/v1/exchanges"): Effect.READ_TENANT_DATA,
    ("GET", "/tenant/v1/exchanges/{id}"): Effect.READ_TENANT_DATA,
    ("POST", "/admin/v1/tenants/{name}/keys"): Effect.ACT_IN_TENANT,
    ("PUT", "/admin/v1/tenants/{name}/principals/{principal}/password"): Effect.ACT_IN_TENANT,
    ("PUT", "/admin/v1/tenants/{name}/idp"): Effect.ACT_IN_TENANT,
    ("POST", "/tenant/v1/keys"): Effect.ACT_IN_TENANT,
    ("POST", "/tenant/v1/keys/{key_id}/rotate"): Effect.ACT_IN_TENANT,
    ("PATCH", "/admin/v1/tenants/{name}/limits"): Effect.RAISE_LIMITS,
    ("PATCH", "/admin/v1/tenants/{name}"): Effect.RAISE_LIMITS,
    ("POST", "/admin/v1/quota-requests/{id}/approve"): Effect.RAISE_LIMITS,
    ("PATCH", "/admin/v1/tenants/{name}/keys/{key_id}/limits"): Effect.CHANGE_SAFEGUARDS,
    ("PATCH", "/tenant/v1/keys/{key_id}/limits"): Effect.CHANGE_SAFEGUARDS,
    ("PATCH", "/admin/v1/tenants/{name}/guard"): Effect.CHANGE_SAFEGUARDS,
    ("PATCH", "/tenant/v1/guard"): Effect.CHANGE_SAFEGUARDS,
    ("PUT", "/tenant/v1/policies"): Effect.CHANGE_SAFEGUARDS,
    ("PATCH", "/admin/v1/tenants/{name}/config"): Effect.CHANGE_SAFEGUARDS,
    ("PUT", "/admin/v1/tenants/{name}/attributes"): Effect.CHANGE_SAFEGUARDS,
    ("DELETE", "/admin/v1/tenants/{name}"): Effect.DELETE_TENANT,
    ("POST", "/admin/v1/tenants/{name}/kms/versions/{version}/retire"): Effect.RETIRE_KEY,
    ("POST", "/admin/v1/audit/keys/rotate"): Effect.ROTATE_AUDIT_KEY,
    ("POST", "/admin/v1/keys/ca/rotate"): Effect.ROTATE_CA,
    ("POST", "/admin/v1/keys/platform-kek/versions/{version}/retire"): Effect.RETIRE_KEY,
    ("PUT", "/admin/v1/tenants/{name}/policies"): Effect.ACT_IN_TENANT,
    ("DELETE", "/admin/v1/tenants/{name}/policies"): Effect.ACT_IN_TENANT,
    ("PUT", "/admin/v1/tenants/{name}/upstream-allowlist"): Effect.CHANGE_SAFEGUARDS,
    ("POST", "/admin/v1/upstream-credentials/{credential}/grants"): Effect.CHANGE_SAFEGUARDS,
    ("POST", "/admin/v1/principals"): Effect.PLATFORM_ROLES,
    ("PUT", "/admin/v1/principals/{principal}/roles"): Effect.PLATFORM_ROLES,
    ("POST", "/admin/v1/principals/{principal}/disable"): Effect.PLATFORM_ROLES,
    ("POST", "/admin/v1/principals/{principal}/enable"): Effect.PLATFORM_ROLES,
    ("DELETE", "/admin/v1/principals/{principal}"): Effect.PLATFORM_ROLES,
    ("POST", "/admin/v1/principals/{principal}/keys"): Effect.PLATFORM_ROLES,
}

# Platform routes reviewed as reaching no privileged effect, and why.
REVIEWED: dict[tuple[str, str], str] = {
    ("POST", "/admin/v1/tenants"): "creates an empty tenant",
    ("GET", "/admin/v1/tenants"): "the registry",
    ("GET", "/admin/v1/tenants/{name}"): "the registry",
    ("GET", "/admin/v1/tenants/{name}/usage"): "usage counts (calls, tokens, latency), no content",
    ("POST", "/admin/v1/tenants/{name}/principals"): "a principal without a credential",
    ("GET", "/admin/v1/tenants/{name}/principals"): "names and roles",
    ("GET", "/admin/v1/tenants/{name}/keys"): "key metadata, never secrets",
    ("POST", "/admin/v1/keys/{key_id}/revoke"): "takes access away",
    ("POST", "/admin/v1/models"): "the platform's model registry",
    ("GET", "/admin/v1/models"): "the platform's model registry",
    ("POST", "/admin/v1/models/{model}/grants"): "shares a platform model",
    ("DELETE", "/admin/v1/models/{model}/grants/{tenant}"): "withdraws a platform model",
    ("GET", "/admin/v1/workers"): "the platform's workers",
    ("GET", "/admin/v1/audit/keys"): "public keys",
    ("GET", "/admin/v1/tenants/{name}/kms"): "KEK versions and dates, no key material",
    ("POST", "/admin/v1/tenants/{name}/kms/rotate"): "re-wraps; nothing becomes readable",
    ("GET", "/admin/v1/tenants/{name}/config"): "settings",
    ("GET", "/admin/v1/tenants/{name}/policies"): "the policies the platform enforces",
    ("GET", "/admin/v1/tenants/{name}/limits"): "settings",
    ("PATCH", "/admin/v1/tenants/{name}/keys/{key_id}/limits"): "narrows a key (a floor)",
    ("GET", "/admin/v1/tenants/{name}/guard"): "settings",
    ("PATCH", "/admin/v1/tenants/{name}/guard"): "the platform's floor",
    ("PATCH", "/admin/v1/tenants/{name}/config"): "the platform's settings",
    ("GET", "/admin/v1/quota-requests"): "requests, not data",
    ("POST", "/admin/v1/quota-requests/{id}/deny"): "raises nothing",
    ("GET", "/admin/v1/tenants/{name}/attributes"): "policy attributes",
    ("PUT", "/admin/v1/tenants/{name}/attributes"): "the platform's floor",
    ("GET", "/admin/v1/models/{model}/attributes"): "policy attributes",
    ("PUT", "/admin/v1/models/{model}/attributes"): "the platform's floor",
    ("GET", "/admin/v1/tenants/{name}/principals/{principal}/attributes"): "policy attributes",
    ("PUT", "/admin/v1/tenants/{name}/principals/{principal}/attributes"): "the floor",
    ("POST", "/admin/v1/tenants/{name}/model-artifacts"): "writes the tenant a model, reads none",
    ("POST", "/admin/v1/access-requests"): "asks for a grant",
    ("GET", "/admin/v1/access-requests"): "the record of grants",
    ("GET", "/admin/v1/access-requests/{id}"): "the record of grants",
    ("POST", "/admin/v1/access-requests/{id}/approve"): "another admin's grant",
    ("POST", "/admin/v1/access-requests/{id}/deny"): "refuses a grant",
    ("GET", "/admin/v1/tenants/{name}/idp"): "the IdP's public settings",
    ("DELETE", "/admin/v1/tenants/{name}/idp"): "takes sign-in away",
    ("PUT", "/admin/v1/principals/{principal}/password"): "a platform principal's",
    ("POST", "/admin/v1/tenants/{name}/client-certs"): "a second factor, never a credential alone",
    ("GET", "/admin/v1/gpus"): "the platform's devices",
    ("POST", "/admin/v1/gpus/plan"): "pure computation: reads no device, applies nothing",
    ("POST", "/admin/v1/upstream-credentials"): "the platform's own secret, never shown again",
    ("GET", "/admin/v1/upstream-credentials"): "names and sources, never a secret",
    ("GET", "/admin/v1/upstream-credentials/{credential}"): "names and sources, never a secret",
    ("DELETE", "/admin/v1/upstream-credentials/{credential}"): "refused while in use",
    ("POST", "/admin/v1/upstream-credentials/{credential}/grants"): "the platform's floor",
    ("DELETE", "/admin/v1/upstream-credentials/{credential}/grants/{tenant}"): "takes away",
    ("GET", "/admin/v1/tenants/{name}/upstream-allowlist"): "settings",
    ("GET", "/admin/v1/keys/status"): "ids, versions and dates of keys, never material",
    ("GET", "/admin/v1/keys/ca/bundle"): "public certificates",
    ("POST", "/admin/v1/keys/platform-kek/rotate"): "re-wraps; nothing becomes readable",
    ("POST", "/admin/v1/keys/cache-salt/rotate"): "new salts; nothing becomes readable",
    ("PUT", "/admin/v1/tenants/{name}/upstream-allowlist"): "the platform's floor",
    ("GET", "/admin/v1/principals"): "names, roles and states, never a secret",
    ("GET", "/admin/v1/principals/{principal}"): "names, roles and states, never a secret",
    ("GET", "/admin/v1/principals/{principal}/keys"): "key metadata, never secrets",
}


def test_known_effect_routes_declare_their_effect(gateway: GatewayThread) -> None:
    routes = {(r.method, r.path): r for r in router_of(gateway).routes}
    for where, effect in KNOWN.items():
        assert where in routes, where
        assert effect in routes[where].effects, where
        if effect in PRIVILEGED_EFFECTS and where[1].startswith("/admin/"):
            assert routes[where].privileged, where


def test_every_platform_route_is_classified(gateway: GatewayThread) -> None:
    for route in router_of(gateway).routes:
        if not route.action.startswith("admin:") or route.privileged:
            continue
        assert (route.method, route.path) in REVIEWED, (
            f"{route.method} {route.path} declares no privileged effect: declare what it "
            "reaches (bulkhead.admin.effects), or review it into REVIEWED"
        )


def test_every_privileged_route_refuses_a_platform_admin_without_a_grant(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    admin = first_admin(gateway, unique)["secret"]  # the tenant is onboarded
    # Limits set within a higher tier: moving back down would leave them above its own.
    gateway.must("PATCH", f"/admin/v1/tenants/{unique}", {"tier": "dedicated"})
    gateway.must("PATCH", f"/admin/v1/tenants/{unique}/limits", {"requests_per_minute": 12_000})
    # One name for a tenant principal and a platform admin: the routes of both take it.
    carol = f"{unique}-carol"
    principal = {"name": carol, "roles": ["tenant_admin"]}
    gateway.must("POST", f"/admin/v1/tenants/{unique}/principals", principal)
    platform_key(gateway, carol, Role.PLATFORM_ADMIN)
    quota = {"quota": "concurrency", "value": 1000, "reason": "to raise the tier's limits"}
    request = gateway.call("POST", "/tenant/v1/quota-requests", admin, quota).body
    settle(gateway)
    values = {
        "name": unique,
        "principal": carol,
        "version": "1",
        "id": request["id"],
        "event_id": gateway.audit_events()[-1]["event_id"],
    }
    # Bodies and queries that reach the effect, where that depends on the values.
    reach: dict[tuple[str, str], tuple[str, Any]] = {
        ("POST", "/admin/v1/tenants/{name}/keys"): ("", {"role": "end_user"}),
        ("PATCH", "/admin/v1/tenants/{name}/limits"): ("", {"concurrency": 1000}),
        ("PATCH", "/admin/v1/tenants/{name}"): ("", {"tier": "shared"}),
        ("POST", "/admin/v1/quota-requests/{id}/approve"): ("", {"reason": "go"}),
        ("PUT", "/admin/v1/tenants/{name}/principals/{principal}/password"): (
            "",
            {"password": "a long and unguessable passphrase"},
        ),
        ("PUT", "/admin/v1/tenants/{name}/idp"): (
            "",
            {"issuer": "https://i.example", "audience": "a", "jwks_url": "https://i.example/k"},
        ),
        ("PUT", "/admin/v1/tenants/{name}/policies"): ("", {"policies": ""}),
        ("POST", "/admin/v1/principals"): (
            "",
            {"name": f"{unique}-new", "roles": ["platform_admin"]},
        ),
        ("PUT", "/admin/v1/principals/{principal}/roles"): ("", {"roles": ["platform_auditor"]}),
        ("POST", "/admin/v1/principals/{principal}/keys"): ("", {"role": "platform_auditor"}),
    }
    checked, newcomer = 0, platform_key(gateway, f"{unique}-admin", Role.PLATFORM_ADMIN)
    for route in router_of(gateway).routes:
        if not route.privileged:
            continue
        query, body = reach.get((route.method, route.path), ("", None))
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path) + query
        response = gateway.admin(route.method, path, body, key=newcomer)
        assert refused(response), (route.method, path, response.status, response.body)
        checked += 1
    assert checked >= 10
    assert gateway.must("GET", f"/admin/v1/tenants/{unique}")["status"] == "active"
