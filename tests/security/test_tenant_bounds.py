"""The per-tenant bounds are the operator's settings: at a low setting, one more is a 409
whose message names the setting (so the tenant knows whom to ask), and other tenants are
not affected."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import openai

from bulkhead.app.history import Retention, purge_history
from bulkhead.errors import Conflict
from bulkhead.testing.fake_runner import fake_adapter
from tests.support.gateway import GatewayThread, Response, UpstreamThread

GATEWAY_ENV = {
    "BULKHEAD_TENANT_MAX_KEYS": "3",
    "BULKHEAD_TENANT_MAX_PRINCIPALS": "5",
    "BULKHEAD_MODEL_MAX_LIVE_VERSIONS": "2",
    "BULKHEAD_TENANT_MAX_PENDING_QUOTA_REQUESTS": "2",
    "BULKHEAD_TENANT_MAX_TUNED_MODELS": "2",
    "BULKHEAD_TENANT_MAX_FILES": "3",
    "BULKHEAD_TENANT_MAX_VECTOR_STORES": "2",
    "BULKHEAD_TENANT_MAX_MODEL_VERSIONS": "4",
    "BULKHEAD_VECTOR_STORE_MAX_FILES": "2",
}


def _refused(answer: Response, setting: str) -> None:
    assert answer.status == 409, answer.body
    assert setting in answer.body["error"]["message"], answer.body


def test_keys_and_principals_stop_at_the_operators_setting(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    admin = gateway.key(unique, role="tenant_admin")  # the first key (and principal)
    made = [gateway.call("POST", "/tenant/v1/keys", admin, {"name": f"k{i}"}) for i in range(3)]
    assert [m.status for m in made[:2]] == [201, 201], [m.body for m in made]
    _refused(made[2], "BULKHEAD_TENANT_MAX_KEYS")
    # Three principals are held (the admin and two keys' service principals): two more fit.
    people = [
        gateway.call(
            "POST", "/tenant/v1/principals", admin, {"name": f"p{i}", "roles": ["end_user"]}
        )
        for i in range(3)
    ]
    assert [p.status for p in people[:2]] == [201, 201], [p.body for p in people]
    _refused(people[2], "BULKHEAD_TENANT_MAX_PRINCIPALS")
    # Another tenant has its own count.
    gateway.tenant(f"{unique}b")
    other = gateway.key(f"{unique}b", role="tenant_admin")
    assert gateway.call("POST", "/tenant/v1/keys", other, {}).status == 201


def test_live_versions_and_pending_quota_requests_stop_at_the_operators_setting(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.model(f"{unique}-m", upstream.url, tenant=unique, upstream_model="fake")
    admin = gateway.key(unique, role="tenant_admin")
    gateway.allow_upstreams(unique, ["127.0.0.1/32"])
    path = f"/tenant/v1/models/{unique}-m/versions"
    made = [
        gateway.call("POST", path, admin, {"version": f"v{i}", "upstream": upstream.url})
        for i in range(3)
    ]
    assert [m.status for m in made[:2]] == [201, 201], [m.body for m in made]
    _refused(made[2], "BULKHEAD_MODEL_MAX_LIVE_VERSIONS")
    ask = {"quota": "requests_per_minute", "value": 500, "reason": "a fair request, please"}
    asked = [gateway.call("POST", "/tenant/v1/quota-requests", admin, ask) for _ in range(3)]
    assert [a.status for a in asked[:2]] == [201, 201], [a.body for a in asked]
    _refused(asked[2], "BULKHEAD_TENANT_MAX_PENDING_QUOTA_REQUESTS")


def test_fine_tuned_models_stop_at_the_operators_setting_when_stored_at_once(
    gateway: GatewayThread, unique: str
) -> None:
    """Each succeeded fine-tuning job stores an adapter and registers a model; nothing
    counted them, so a tenant made models without end.  Six stored at once: the tenant's
    lock makes each count alone, so exactly the setting's two are made."""
    tenant_id = gateway.tenant(unique)["id"]
    artifacts = gateway.app.artifacts
    assert artifacts is not None
    made: list[str] = []
    refused: list[str] = []

    def store(i: int) -> None:
        name = f"ft:smollm2-135m:{tenant_id}:race{i}:ftjob-{i:024d}"
        try:
            artifacts.import_adapter(tenant_id, name, "smollm2-135m", fake_adapter())
            made.append(name)
        except Conflict as exc:
            refused.append(exc.message)

    threads = [threading.Thread(target=store, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(made) == 2 and len(refused) == 4, (made, refused)
    assert all("BULKHEAD_TENANT_MAX_TUNED_MODELS" in m for m in refused), refused
    other = gateway.tenant(f"{unique}b")["id"]  # another tenant has its own count
    artifacts.import_adapter(
        other, f"ft:smollm2-135m:{other}:x:ftjob-{0:024d}", "smollm2-135m", fake_adapter()
    )


def _at_once(work: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def _upload(gateway: GatewayThread, key: str) -> Response:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=30)
    try:
        made = client.files.create(file=("f.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    except openai.APIStatusError as exc:
        return Response(exc.status_code, {"error": exc.body})  # the client unwraps "error"
    return Response(200, {"id": made.id})


def test_files_and_vector_stores_stop_at_the_operators_setting_when_made_at_once(
    gateway: GatewayThread, unique: str
) -> None:
    """The storage quota counts bytes: an empty vector store, or a file of a few bytes,
    cost nothing of it, so a tenant's end users made rows and blobs without end.  Made
    at once, the tenant's lock makes each count alone: exactly the setting's number."""
    gateway.tenant(unique)
    user = gateway.key(unique, role="end_user")
    uploads: list[Response] = []
    _at_once(lambda i: uploads.append(_upload(gateway, user)), 6)
    assert sorted(u.status for u in uploads) == [200] * 3 + [409] * 3, uploads
    _refused(next(u for u in uploads if u.status == 409), "BULKHEAD_TENANT_MAX_FILES")
    stores: list[Response] = []
    _at_once(
        lambda i: stores.append(gateway.call("POST", "/v1/vector_stores", user, {"name": f"s{i}"})),
        5,
    )
    assert sorted(s.status for s in stores) == [200] * 2 + [409] * 3, [s.body for s in stores]
    _refused(next(s for s in stores if s.status == 409), "BULKHEAD_TENANT_MAX_VECTOR_STORES")
    # Deleting one makes room; another tenant has its own counts.
    store_id = next(s.body["id"] for s in stores if s.status == 200)
    assert gateway.call("DELETE", f"/v1/vector_stores/{store_id}", user).status == 200
    assert gateway.call("POST", "/v1/vector_stores", user, {"name": "again"}).status == 200
    gateway.tenant(f"{unique}b")
    other = gateway.key(f"{unique}b", role="end_user")
    assert _upload(gateway, other).status == 200


def test_model_versions_retired_ones_included_stop_at_the_setting_until_maintenance(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    """A tenant admin could publish and retire versions without end: retired ones left the
    catalog but stayed rows.  They count until the maintenance loop deletes them, after
    `BULKHEAD_RETIRED_VERSION_RETENTION_DAYS`; six published at once stop at the bound."""
    tenant_id = gateway.tenant(unique)["id"]
    gateway.model(f"{unique}-m", upstream.url, tenant=unique, upstream_model="fake")
    admin = gateway.key(unique, role="tenant_admin")
    gateway.allow_upstreams(unique, ["127.0.0.1/32"])
    path = f"/tenant/v1/models/{unique}-m/versions"
    for i in range(3):
        body = {"version": f"old{i}", "upstream": upstream.url}
        assert gateway.call("POST", path, admin, body).status == 201
        assert gateway.call("POST", f"{path}/old{i}/retire", admin).status == 200
    made: list[Response] = []
    _at_once(
        lambda i: made.append(
            gateway.call("POST", path, admin, {"version": f"v{i}", "upstream": upstream.url})
        ),
        6,
    )
    assert sorted(m.status for m in made) == [201] + [409] * 5, [m.body for m in made]
    _refused(next(m for m in made if m.status == 409), "BULKHEAD_TENANT_MAX_MODEL_VERSIONS")
    later = datetime.now(UTC) + timedelta(days=91)  # past the default 90 days
    done = purge_history(gateway.app.db, gateway.app.audit, Retention(), later)
    assert done["model_versions_purged"] >= 3, done
    listed = gateway.call("GET", path, admin).body["data"]
    assert [v["version"] for v in listed] == [
        next(m.body["version"] for m in made if m.status == 201)
    ]
    assert (
        gateway.call("POST", path, admin, {"version": "new", "upstream": upstream.url}).status
        == 201
    )
    purged = [e for e in gateway.audit_events() if e["action"] == "system:model_versions.purge"]
    assert [e["reason"] for e in purged if e["tenant_id"] == tenant_id] == [
        "3 retired model version(s) older than 90 days deleted"
    ], purged


def test_files_of_one_vector_store_stop_at_the_operators_setting_when_attached_at_once(
    gateway: GatewayThread, unique: str
) -> None:
    """An empty file costs no quota, and each (store, file) pair was a row: 100,000 files in
    each of 1,000 stores.  Six attaches at once (three files, each twice) make exactly the
    setting's two links; a store created with more file ids is refused whole, before the
    store or any link is made; another tenant's store has its own count."""
    gateway.tenant(unique)
    user = gateway.key(unique, role="end_user")
    files = [_upload(gateway, user).body["id"] for _ in range(3)]
    whole = {"name": "all", "file_ids": files}
    _refused(
        gateway.call("POST", "/v1/vector_stores", user, whole), "BULKHEAD_VECTOR_STORE_MAX_FILES"
    )
    assert gateway.call("GET", "/v1/vector_stores", user).body["data"] == []
    store = gateway.call("POST", "/v1/vector_stores", user, {"name": "s"}).body["id"]
    path = f"/v1/vector_stores/{store}/files"
    made: list[Response] = []
    _at_once(lambda i: made.append(gateway.call("POST", path, user, {"file_id": files[i % 3]})), 6)
    assert sorted(m.status for m in made) == [200] * 2 + [409] * 4, [m.body for m in made]
    listed = gateway.call("GET", path, user).body["data"]
    assert len(listed) == 2, listed
    left = next(f for f in files if f not in {x["id"] for x in listed})
    full = gateway.call("POST", path, user, {"file_id": left})
    _refused(full, "BULKHEAD_VECTOR_STORE_MAX_FILES")
    assert full.body["error"]["type"] == "conflict_error", full.body
    assert full.body["error"]["param"] == "file_id", full.body
    # Removing one makes room; another tenant's store has its own count.
    assert gateway.call("DELETE", f"{path}/{listed[0]['id']}", user).status == 200
    assert gateway.call("POST", path, user, {"file_id": left}).status == 200
    gateway.tenant(f"{unique}b")
    other = gateway.key(f"{unique}b", role="end_user")
    theirs = [_upload(gateway, other).body["id"] for _ in range(2)]
    body = {"name": "theirs", "file_ids": theirs}
    assert gateway.call("POST", "/v1/vector_stores", other, body).status == 200
