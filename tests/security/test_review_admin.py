"""A review of what a tenant admin controls, as an attacker: each finding, attacked.

Every test here failed on the tree the review started from (main at 3e62ae0)
before its fix.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from tests.support.gateway import GatewayThread, UpstreamThread

CHAT = {"messages": [{"role": "user", "content": "call me on 0207 946 0958 or +44 20 7946 0959"}]}


def _tenant_with_model(gateway: GatewayThread, upstream: UpstreamThread, name: str) -> str:
    """A tenant with a private model on the fake upstream; its first admin's key."""
    gateway.tenant(name)
    gateway.model(f"{name}-m", upstream.url, tenant=name, upstream_model="fake")
    return gateway.key(name, role="tenant_admin")


def _chat(gateway: GatewayThread, key: str, model: str) -> Any:
    return gateway.call("POST", "/v1/chat/completions", key, {"model": model, **CHAT})


# Guard settings ------------------------------------------------------------------------------


def test_a_phone_region_libphonenumber_does_not_know_is_refused_not_a_5xx_on_every_call(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    """`phone_regions: ["ZZ"]` passed the shape check, was stored, and then every model call of
    the tenant built a guard that raised: a 500 on each call (a tenant could also hand its
    platform-floored phone guard a region list that crashes it)."""
    admin = _tenant_with_model(gateway, upstream, unique)
    for regions in (["ZZ"], ["US", "QQ"], ["UN"]):
        body = {"pii": "redact", "phone_regions": regions}
        set_ = gateway.call("PATCH", "/tenant/v1/guard", admin, body)
        assert set_.status == 400, set_.body
        assert "phone_regions" in set_.body["error"]["message"], set_.body
        refused = gateway.admin("PATCH", f"/admin/v1/tenants/{unique}/guard", body)
        assert refused.status == 400, refused.body
    answer = _chat(gateway, admin, f"{unique}-m")
    assert answer.status == 200, answer.body


def test_a_repeated_phone_region_does_not_multiply_the_scan(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    """Thousands of copies of one region were kept, and every phone-shaped candidate of every
    call was parsed by libphonenumber once per copy: seconds of the shared worker threads'
    CPU per call, from one settings write."""
    admin = _tenant_with_model(gateway, upstream, unique)
    body = {"pii": "redact", "phone_regions": ["US"] * 5000}
    set_ = gateway.call("PATCH", "/tenant/v1/guard", admin, body)
    assert set_.status == 200, set_.body
    assert set_.body["guard"]["phone_regions"] == ["US"], set_.body["guard"]
    start = time.monotonic()
    answer = _chat(gateway, admin, f"{unique}-m")
    assert answer.status == 200, answer.body
    assert time.monotonic() - start < 5


def test_the_link_host_allowlist_is_bounded(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    """Every link of every answer is tested against each `*.` entry: the list is bounded."""
    admin = _tenant_with_model(gateway, upstream, unique)
    hosts = [f"*.h{i}.example" for i in range(2000)]
    set_ = gateway.call("PATCH", "/tenant/v1/guard", admin, {"allowed_link_hosts": hosts})
    assert set_.status == 400, set_.body
    assert "allowed_link_hosts" in set_.body["error"]["message"], set_.body
    fine = gateway.call("PATCH", "/tenant/v1/guard", admin, {"allowed_link_hosts": hosts[:64]})
    assert fine.status == 200, fine.body


# Quota requests ------------------------------------------------------------------------------


def test_one_tenant_cannot_bury_other_tenants_quota_requests(
    gateway: GatewayThread, unique: str
) -> None:
    """The platform's list shows the newest 1,000 requests of all tenants: a tenant that filed
    a thousand pushed every other tenant's pending request out of the approvers' sight.  A
    tenant now has at most `BULKHEAD_TENANT_MAX_PENDING_QUOTA_REQUESTS` pending at once."""
    bound = gateway.app.db.bounds.pending_quota_requests
    gateway.tenant(f"{unique}v")
    victim = gateway.key(f"{unique}v", role="tenant_admin")
    ask = {"quota": "requests_per_minute", "value": 500, "reason": "a fair request, please"}
    theirs = gateway.call("POST", "/tenant/v1/quota-requests", victim, ask)
    assert theirs.status == 201, theirs.body
    gateway.tenant(unique)
    flood = gateway.key(unique, role="tenant_admin")
    statuses = [
        gateway.call("POST", "/tenant/v1/quota-requests", flood, ask).status
        for _ in range(bound + 3)
    ]
    assert statuses == [201] * bound + [409] * 3, statuses
    pending = gateway.must("GET", "/admin/v1/quota-requests?status=pending")
    assert theirs.body["id"] in {r["id"] for r in pending["data"]}
    # Once the platform decides one, the tenant may ask again.
    first = next(r for r in pending["data"] if r["tenant"] == unique)
    gateway.must("POST", f"/admin/v1/quota-requests/{first['id']}/deny", {"reason": "no"})
    again = gateway.call("POST", "/tenant/v1/quota-requests", flood, ask)
    assert again.status == 201, again.body


# How many credentials a tenant keeps -----------------------------------------------------------


def test_a_tenant_cannot_grow_every_replicas_catalog_without_bound(
    gateway: GatewayThread, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every replica's catalog holds every key and principal of every tenant, and reloads them
    all on each control-plane write of any tenant (before answering it): 25,000 keys of one
    tenant made each write take seconds for everyone.  A tenant admin made them one call each,
    and revoking them did not take them out.  A tenant now holds a bounded number of
    principals and of keys (usable, or ended within `KEPT_AFTER_END`), and the catalog loads
    no key that ended longer ago than that (the same 401 as an unknown key)."""
    from bulkhead.store.repo import keys as key_repo

    low = replace(gateway.app.db.bounds, keys=5, principals=8)
    monkeypatch.setattr(gateway.app.db, "bounds", low)
    gateway.tenant(unique)
    admin = gateway.key(unique, role="tenant_admin")  # the tenant's first key and principal
    made = [gateway.call("POST", "/tenant/v1/keys", admin, {"name": f"k{i}"}) for i in range(6)]
    assert [m.status for m in made] == [201] * 4 + [409] * 2, [m.body for m in made]
    # Revoking makes room only once the revoked key has left the catalog.
    first = made[0].body["key"]["id"]
    revoked = gateway.call("POST", f"/tenant/v1/keys/{first}/revoke", admin, {})
    assert revoked.status == 200, revoked.body
    assert gateway.call("POST", "/tenant/v1/keys", admin, {}).status == 409
    gone = gateway.app.catalog.snapshot.keys
    assert first in gone  # revoked a moment ago: answered as revoked
    with gateway.app.db.platform_transaction() as session:
        from sqlalchemy import update

        from bulkhead.store.schema import ApiKeyRow, utcnow

        long_ago = utcnow() - key_repo.KEPT_AFTER_END - key_repo.KEPT_AFTER_END
        session.execute(update(ApiKeyRow).where(ApiKeyRow.id == first).values(revoked_at=long_ago))
        key_repo.bump_version(session)
    gateway.app.catalog.reload()
    assert first not in gateway.app.catalog.snapshot.keys
    refused = gateway.call("GET", "/v1/models", made[0].body["secret"])
    assert refused.status == 401, refused.body
    assert gateway.call("POST", "/tenant/v1/keys", admin, {}).status == 201
    # Principals: the tenant has its first admin and five service principals (one a key).
    people = [
        gateway.call(
            "POST", "/tenant/v1/principals", admin, {"name": f"p{i}", "roles": ["end_user"]}
        )
        for i in range(3)
    ]
    assert [p.status for p in people] == [201, 201, 409], [p.body for p in people]


def test_a_model_keeps_a_bounded_number_of_live_versions(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each live version is a deployment in every replica's catalog: their number is bounded
    per model; retiring one (which leaves the catalog) makes room."""
    low = replace(gateway.app.db.bounds, live_versions=3)
    monkeypatch.setattr(gateway.app.db, "bounds", low)
    admin = _tenant_with_model(gateway, upstream, unique)
    gateway.allow_upstreams(unique, ["127.0.0.1/32"])
    path = f"/tenant/v1/models/{unique}-m/versions"
    made = [
        gateway.call("POST", path, admin, {"version": f"v{i}", "upstream": upstream.url})
        for i in range(4)
    ]
    assert [m.status for m in made] == [201, 201, 201, 409], [m.body for m in made]
    retired = gateway.call("POST", f"{path}/v0/retire", admin, {})
    assert retired.status == 200, retired.body
    again = gateway.call("POST", path, admin, {"version": "v9", "upstream": upstream.url})
    assert again.status == 201, again.body
