"""Every route that takes a tenant-scoped id, walked from the route table, attacked by every role
of another tenant.

The cases are generated, not hand-listed: the management router's own table
(`build_admin`) gives every `/tenant/v1` and `/admin/v1` route, and the
data plane's id-taking `/v1` routes are added below.  For each route, each
tenant role of the attacker tenant calls it with the victim tenant's real
ids, and again with a look-alike id that exists nowhere:

- on the tenant surface and `/v1`, the two answers must be the same
  (status, error code and message, the id aside) and a refusal — 404, or a
  403 that does not depend on the id (the role may not call the route at
  all); and on every route at least one role gets the 404 of a lookup, so
  the id really was looked for in the attacker's own tenant;
- on the platform surface every tenant role gets 403, whatever the ids.

Afterwards the victim's objects are all still there and unchanged.  A route
with a path parameter this file does not know fails the test: a new route
cannot go unattacked.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from bulkhead.admin.router import Route, Router
from bulkhead.domain import TENANT_ROLES
from bulkhead.gateway.endpoints import VECTOR_STORES
from bulkhead.testing.fake_runner import FakeRunner
from tests.conftest import BACKENDS, database_urls
from tests.support.artifacts import import_model
from tests.support.gateway import GatewayThread, Response, UpstreamThread

ATTACKER_ROLES = sorted(r.value for r in TENANT_ROLES)
UPSTREAM_MODEL = "fake"

# Bodies that pass validation, so that the answer is the lookup's and not the schema's.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/tenant/v1/principals/{name}"): {"roles": ["end_user"]},
    ("POST", "/tenant/v1/keys/{key_id}/rotate"): {},
    ("PATCH", "/tenant/v1/keys/{key_id}/limits"): {"requests_per_minute": 1},
    ("POST", "/tenant/v1/models/{model}/versions"): {
        "version": "hijack",
        "upstream": "http://127.0.0.1:9/v1",
        "upstream_model": UPSTREAM_MODEL,
    },
}
# The data plane's routes with a tenant-scoped id (the management routes come from the router).
V1_ROUTES = (
    ("GET", "/v1/files/{file_id}"),
    ("GET", "/v1/files/{file_id}/content"),
    ("DELETE", "/v1/files/{file_id}"),
    ("GET", "/v1/fine_tuning/jobs/{job_id}"),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel"),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/events"),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints"),
    *((e.method, e.path) for e in VECTOR_STORES if "{" in e.path),
    ("GET", "/v1/models/{model}"),
    ("DELETE", "/v1/models/{model}"),  # the victim's private model must survive (see below)
)
BODIES[("POST", "/v1/vector_stores/{vector_store_id}")] = {"name": "hijack"}
BODIES[("POST", "/v1/vector_stores/{vector_store_id}/search")] = {"query": "secret"}
BODIES[("POST", "/v1/vector_stores/{vector_store_id}/files")] = {"file_id": "file-0"}
TUNABLE = "route-tunable"  # a bundled base granted to the victim: its job is running
CHAT_LINE = (
    b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
)


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: UpstreamThread,
) -> Iterator[GatewayThread]:
    """The suite's gateway, with fine-tuning on (the fake runner): its routes are attacked too."""
    url, admin = database_urls(request.param, request)
    gw = GatewayThread(
        tmp_path_factory.mktemp("gateway") / "data",
        url,
        admin_url=admin,
        max_body_bytes=64 * 1024,
        env={"BULKHEAD_FINE_TUNING_JOBS": "1"},
        fine_tuning_runner=FakeRunner(),
    ).start()
    yield gw
    gw.stop()


@dataclass
class World:
    """The victim tenant's objects (by path parameter name) and the attacker's keys by role."""

    victim: str
    ids: dict[str, str]
    attacker_keys: dict[str, str]
    victim_admin: str
    victim_user: str


def router_of(gateway: GatewayThread) -> Router:
    """The live management router, found by walking the chain down to it."""
    app: Any = gateway.app.chain
    while not hasattr(app, "management"):
        app = app.app
    router = app.management.made()  # made at the first call (`app.lazy.DeferredApp`)
    assert isinstance(router, Router)
    return router


def look_alike(value: str) -> str:
    """An id of the same shape that names nothing: its last character changed."""
    last = value[-1]
    alphabet = "0123456789abcdef" if re.fullmatch(r"[0-9a-f]", last) else "xyz"
    return value[:-1] + next(c for c in alphabet if c != last)


def _upload(gateway: GatewayThread, key: str, data: bytes = b"{}\n") -> str:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=20)
    made = client.files.create(file=("victim.jsonl", io.BytesIO(data)), purpose="fine-tune")
    return str(made.id)


def _victim_job(gateway: GatewayThread, victim: str) -> str:
    """A fine-tuning job of the victim's, running (the fake runner waits to be told)."""
    gateway.must("POST", "/admin/v1/models", {"name": TUNABLE, "worker": "smollm2-135m"})
    gateway.must("POST", f"/admin/v1/models/{TUNABLE}/grants", {"tenant": victim})
    developer = gateway.key(victim, role="model_developer")
    body = {"model": TUNABLE, "training_file": _upload(gateway, developer, CHAT_LINE)}
    made = gateway.call("POST", "/v1/fine_tuning/jobs", developer, body)
    assert made.status == 200, made.body
    return str(made.body["id"])


def _victim_objects(
    gateway: GatewayThread, upstream: UpstreamThread, victim: str
) -> tuple[dict[str, str], str, str]:
    """Every kind of object a tenant-scoped route names, made in the victim's tenant."""
    admin = gateway.key(victim, role="tenant_admin")
    user = gateway.key(victim, role="end_user")
    auditor = gateway.key(victim, role="tenant_auditor")
    model = f"{victim}-private"
    gateway.model(model, upstream.url, tenant=victim, upstream_model=UPSTREAM_MODEL)
    gateway.allow_upstreams(victim, ["127.0.0.1/32"])
    gateway.must("PATCH", f"/admin/v1/tenants/{victim}/config", {"retention": "encrypted"})
    version = {"version": "v1", "upstream": upstream.url, "upstream_model": UPSTREAM_MODEL}
    made = gateway.call("POST", f"/tenant/v1/models/{model}/versions", admin, version)
    assert made.status == 201, made.body
    principal = {"name": "victim-person", "roles": ["end_user"]}
    assert gateway.call("POST", "/tenant/v1/principals", admin, principal).status == 201
    key = gateway.call("POST", "/tenant/v1/keys", admin, {"name": "victim-key"}).body["key"]
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert gateway.call("POST", "/v1/chat/completions", user, chat).status == 200
    gateway.app.maintenance.retention.flush()
    exchange = gateway.call("GET", "/tenant/v1/exchanges", admin).body["data"][0]["id"]
    file_id = _upload(gateway, user)
    store = gateway.call(
        "POST", "/v1/vector_stores", user, {"name": "victim", "file_ids": [file_id]}
    )
    assert store.status == 200, store.body
    gateway.app.audit.flush()
    events = gateway.call("GET", "/tenant/v1/audit/events?limit=1000", auditor).body["data"]
    event = next(e["event_id"] for e in events if e.get("tenant_id"))
    ids = {
        "key_id": key["id"],
        "name": "victim-person",
        "principal": "victim-person",
        "model": model,
        "version": "v1",
        "id": exchange,
        "event_id": event,
        "file_id": file_id,
        "vector_store_id": store.body["id"],
        "artifact": import_model(gateway, victim, f"{victim}-imported"),
        "job_id": _victim_job(gateway, victim),
    }
    return ids, admin, user


@pytest.fixture(scope="module")
def world(gateway: GatewayThread, upstream: UpstreamThread) -> World:
    victim, attacker = "route-victim", "route-attacker"
    gateway.tenant(victim)
    gateway.tenant(attacker)
    ids, victim_admin, victim_user = _victim_objects(gateway, upstream, victim)
    # The attacker may publish versions too, so a refusal can only be the lookup's.
    gateway.allow_upstreams(attacker, ["127.0.0.1/32"])
    keys = {role: gateway.key(attacker, role=role) for role in ATTACKER_ROLES}
    return World(victim, ids, keys, victim_admin, victim_user)


def _fill(path: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"{path}: no object for '{{{name}}}': make one in _victim_objects"
        return values[name]

    return re.sub(r"\{(\w+)\}", value, path)


def _shape(response: Response, ids: dict[str, str]) -> tuple[int, Any, str]:
    error = (response.body or {}).get("error") or {}
    message = str(error.get("message", ""))
    for value in ids.values():
        message = message.replace(value, "ID").replace(look_alike(value), "ID")
    return response.status, error.get("code"), message


def _tenant_routes(gateway: GatewayThread) -> Iterator[tuple[str, str]]:
    for route in router_of(gateway).routes:
        if route.path.startswith("/tenant/v1/") and "{" in route.path:
            yield route.method, route.path
    yield from V1_ROUTES


def test_another_tenants_ids_answer_like_ids_that_exist_nowhere(
    gateway: GatewayThread, world: World
) -> None:
    fake = {name: look_alike(value) for name, value in world.ids.items()}
    checked = 0
    for method, path in _tenant_routes(gateway):
        body = BODIES.get((method, path))
        lookups = 0
        for role, key in world.attacker_keys.items():
            theirs = gateway.call(method, _fill(path, world.ids), key, body)
            nowhere = gateway.call(method, _fill(path, fake), key, body)
            seen = _shape(theirs, world.ids)
            where = (method, path, role)
            assert seen == _shape(nowhere, world.ids), (*where, theirs.body, nowhere.body)
            assert seen[0] in (403, 404), (*where, theirs.status, theirs.body)
            assert not set(world.ids.values()) & set(re.findall(r"[\w.-]+", seen[2])), where
            lookups += seen[0] == 404
            checked += 1
        assert lookups, f"{method} {path}: no role reached the lookup (all refused by role)"
    print(f"tenant and /v1 routes, each role of another tenant: {checked} cases")
    assert checked >= 12 * len(ATTACKER_ROLES)


def test_the_platform_surface_refuses_every_tenant_role(
    gateway: GatewayThread, world: World
) -> None:
    values = {
        **world.ids,
        "name": world.victim,
        "tenant": world.victim,
        "credential": "any-credential",
    }
    checked = 0
    routes: list[Route] = [r for r in router_of(gateway).routes if r.path.startswith("/admin/v1/")]
    for route in routes:
        for role, key in world.attacker_keys.items():
            response = gateway.call(route.method, _fill(route.path, values), key, None)
            assert response.status == 403, (route.method, route.path, role, response.body)
            checked += 1
    print(f"platform routes, each tenant role: {checked} cases")
    assert checked >= 60 * len(ATTACKER_ROLES)


def test_the_victims_objects_are_untouched(gateway: GatewayThread, world: World) -> None:
    admin, ids = world.victim_admin, world.ids
    keys = gateway.call("GET", "/tenant/v1/keys", admin).body["data"]
    key = next(k for k in keys if k["id"] == ids["key_id"])
    assert key["revoked_at"] is None
    limits = gateway.call("GET", f"/tenant/v1/keys/{ids['key_id']}/limits", admin).body
    assert limits["limits"]["requests_per_minute"] is None  # never set by the attacker
    people = gateway.call("GET", "/tenant/v1/principals", admin).body["data"]
    person = next(p for p in people if p["name"] == ids["name"])
    assert person["roles"] == ["end_user"]
    versions = gateway.call("GET", f"/tenant/v1/models/{ids['model']}/versions", admin).body
    assert [(v["version"], v["retired_at"]) for v in versions["data"]] == [("v1", None)]
    content = gateway.call("GET", f"/v1/files/{ids['file_id']}/content", world.victim_user)
    assert content.status == 200 and content.raw == b"{}\n"
    exchange = gateway.call("GET", f"/tenant/v1/exchanges/{ids['id']}", admin)
    assert exchange.status == 200
    developer = gateway.key(world.victim, role="model_developer")
    job = gateway.call("GET", f"/v1/fine_tuning/jobs/{ids['job_id']}", developer)
    assert job.status == 200 and job.body["status"] in ("queued", "running")  # never cancelled
    store = f"/v1/vector_stores/{ids['vector_store_id']}"
    listed = gateway.call("GET", store + "/files", world.victim_user).body["data"]
    assert [f["id"] for f in listed] == [ids["file_id"]]
    assert gateway.call("GET", store, world.victim_user).body["name"] == "victim"
