"""`GET /admin/v1/keys/status`: every key the platform holds, with age and next rotation.

Read by platform admins and auditors only, never key material; the key-age
gauge on the metrics listener; the platform's own keys rotated on demand
(the CA only under an approved grant).
"""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bulkhead.crypto import EXPORT_KEY_MATERIAL
from bulkhead.domain import PrincipalKind, Role
from bulkhead.store import repo
from bulkhead.store.platform_keys import PlatformKeyStore
from bulkhead.store.schema import utcnow
from tests.support.gateway import GatewayThread, http
from tests.support.postgres import free_port

KINDS = {"tenant-kek", "platform-kek", "audit-signing", "ca", "cache-salt", "session-key"}


def inventory(gateway: GatewayThread, key: str | None = None) -> list[dict[str, Any]]:
    response = gateway.admin("GET", "/admin/v1/keys/status", key=key)
    assert response.status == 200, response.body
    return list(response.body["data"])


def of(keys: list[dict[str, Any]], kind: str, state: str | None = None) -> list[dict[str, Any]]:
    return [k for k in keys if k["kind"] == kind and (state is None or k["state"] == state)]


def platform_key(gateway: GatewayThread, name: str, role: Role) -> str:
    with gateway.app.db.platform_transaction() as session:
        who = repo.create_principal(session, None, name, PrincipalKind.USER, [role])
        secret = repo.create_key(session, None, role=role, principal=who).secret
    gateway.app.catalog.reload()
    return secret


def test_lists_every_kind_with_age_and_next_rotation(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    # A tenant's KEK is made with its first sealed object, or by its first rotation.
    assert gateway.admin("POST", f"/admin/v1/tenants/{unique}/kms/rotate").status == 200
    keys = inventory(gateway)
    assert {k["kind"] for k in keys} >= KINDS, sorted({k["kind"] for k in keys})
    assert of(keys, "tenant-kek") and any(k["owner"] == unique for k in of(keys, "tenant-kek"))
    for key in keys:
        assert key["age_days"] >= 0 and key["created_at"] and key["protects"], key
        assert key["state"] and key["held_in"] and key["version"] >= 1, key
    for kind in ("platform-kek", "tenant-kek"):
        assert all(k["next_rotation_at"] for k in of(keys, kind, "primary")), kind
    for kind in ("audit-signing", "ca", "cache-salt", "session-key"):
        active = of(keys, kind, "active")
        assert len(active) == 1 and active[0]["next_rotation_at"], (kind, active)
    # A tenant that requires client certificates: the CA versions that check them.
    assert not any(k["owner"] == unique for k in of(keys, "client-cert-ca"))
    config = {"require_client_cert": True}
    assert gateway.admin("PATCH", f"/admin/v1/tenants/{unique}/config", config).status == 200
    [trust] = [k for k in of(inventory(gateway), "client-cert-ca") if k["owner"] == unique]
    ca = of(keys, "ca", "active")[0]
    assert trust["version"] == ca["version"] and trust["next_rotation_at"] == ca["next_rotation_at"]
    # What the platform KEK still wraps is counted by kind: the platform's keys among them.
    primary = of(keys, "platform-kek", "primary")[0]["protects"]
    assert "cache-salt" in primary and "ca" in primary, primary


def test_only_platform_principals_read_it(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    gateway.admin("POST", f"/admin/v1/tenants/{unique}/kms/rotate")
    for role in ("tenant_admin", "tenant_auditor", "end_user"):
        key = gateway.key(unique, role=role)
        for path in ("/admin/v1/keys/status", "/admin/v1/keys/ca/bundle"):
            response = gateway.admin("GET", path, key=key)
            assert response.status == 403, (role, path, response.status)
            assert "data" not in (response.body or {}) and "bundle" not in (response.body or {})
    auditor = platform_key(gateway, f"{unique}-auditor", Role.PLATFORM_AUDITOR)
    assert {k["kind"] for k in inventory(gateway, auditor)} >= KINDS
    for kind in ("platform-kek", "cache-salt", "ca"):
        rotated = gateway.admin("POST", f"/admin/v1/keys/{kind}/rotate", key=auditor)
        assert rotated.status == 403, (kind, rotated.status)


def _secrets(gateway: GatewayThread) -> list[bytes]:
    """The plaintext of every sealed platform secret, and the live CA keys."""
    keyring = gateway.app.maintenance.keyring
    store = PlatformKeyStore(gateway.app.db, keyring.kms, keyring.ensure)
    found = [store.open(row) for row in store.every_row() if row.sealed is not None]
    assert gateway.app.ca is not None
    found.append(gateway.app.ca._key.reveal_der(EXPORT_KEY_MATERIAL))
    return found


def _forms(secret: bytes) -> list[str]:
    """How a secret could appear in JSON: hex, base64 (both alphabets), a 16-byte piece of each."""
    encodings = (
        secret.hex(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    )
    return [text[:24] for text in encodings]


def test_no_key_material_in_the_answer(gateway: GatewayThread) -> None:
    status = gateway.admin("GET", "/admin/v1/keys/status").raw.decode()
    bundle = gateway.admin("GET", "/admin/v1/keys/ca/bundle")
    assert "-----BEGIN" not in status and "PRIVATE" not in status
    assert "PRIVATE KEY" not in bundle.raw.decode()
    assert bundle.body["bundle"].count("-----BEGIN CERTIFICATE-----") >= 1
    secrets = _secrets(gateway)
    assert len(secrets) >= 3  # the audit seed (sealed here), the cache-salt secret, the CA key
    for secret in secrets:
        for form in _forms(secret):
            assert form.lower() not in status.lower() and form not in bundle.raw.decode()
    for key in json.loads(status)["data"]:
        assert set(key) == {
            "kind", "owner", "version", "state", "held_in", "created_at", "age_days",
            "next_rotation_at", "protects",
        }  # fmt: skip


def test_key_age_gauge_per_kind(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    gateway.key(unique)
    gateway.admin("POST", f"/admin/v1/tenants/{unique}/kms/rotate")
    inventory(gateway)  # the gauge shows what the last look (or maintenance run) saw
    port = free_port()
    gateway.app.metrics.serve("127.0.0.1", port)
    text = http("GET", f"http://127.0.0.1:{port}/metrics").raw.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families["bulkhead_key_oldest_age_seconds"]
    assert family.type == "gauge"
    ages = {s.labels["kind"]: s.value for s in family.samples}
    assert set(ages) >= KINDS, ages
    assert all(0 <= age < 3600 for age in ages.values()), ages
    # When each kind's first in-use key is due for rotation: in the future, for fresh keys.
    due = {s.labels["kind"]: s.value for s in families[
        "bulkhead_key_rotation_due_timestamp_seconds"].samples}  # fmt: skip
    assert due and set(due) <= set(ages), due
    assert all(when > time.time() for when in due.values()), due
    # Each tenant's oldest usable API key (no key id in the labels).
    api = {s.labels["tenant"]: s for s in families["bulkhead_api_key_oldest_age_seconds"].samples}
    assert unique in api and set(api[unique].labels) == {"tenant"}
    assert 0 <= api[unique].value < 3600


def test_platform_rotations_on_demand(gateway: GatewayThread) -> None:
    before = inventory(gateway)
    kek = of(before, "platform-kek", "primary")[0]["version"]
    salt = of(before, "cache-salt", "active")[0]["version"]
    assert gateway.admin("POST", "/admin/v1/keys/platform-kek/rotate").status == 200
    assert gateway.admin("POST", "/admin/v1/keys/cache-salt/rotate").status == 200
    # The CA changes what every peer must trust: one admin alone cannot rotate it.
    refused = gateway.admin("POST", "/admin/v1/keys/ca/rotate")
    assert refused.status == 403
    assert refused.body["error"]["code"] == "privileged_access_required"
    gateway.grant("admin:kms.ca.rotate")
    assert gateway.admin("POST", "/admin/v1/keys/ca/rotate").status == 200
    assert gateway.admin("POST", "/admin/v1/keys/ca/rotate").status == 403  # single-use
    after = inventory(gateway)
    assert of(after, "platform-kek", "primary")[0]["version"] == kek + 1
    assert of(after, "cache-salt", "active")[0]["version"] == salt + 1
    assert len(of(after, "ca", "pending")) == 1  # trusted now, issuing after its activation
    assert len(of(after, "ca", "active")) == 1
    assert gateway.admin("POST", "/admin/v1/keys/bogus/rotate").status == 404


def test_the_maintenance_run_rotates_every_platform_key_once_due(gateway: GatewayThread) -> None:
    maintenance = gateway.app.maintenance
    assert maintenance.run_once()["audit_key"] == 0  # nothing is due yet
    before = {(k["kind"], k["version"]) for k in inventory(gateway) if k["state"] == "active"}
    due = utcnow() + timedelta(days=400)  # past every platform key's period
    done = maintenance.run_once(due)
    assert {done[k] for k in ("platform_kek", "audit_key", "ca", "cache_salt")} == {1}, done
    after = inventory(gateway)
    for kind in ("audit-signing", "cache-salt"):
        [active] = of(after, kind, "active")
        assert (kind, active["version"]) not in before, kind
    assert of(after, "ca", "pending")  # the scheduled CA version is trusted, not yet issuing
    # The run refreshed the gauge, as of the time it ran.
    ages = gateway.app.metrics.registry.get_sample_value(
        "bulkhead_key_oldest_age_seconds", {"kind": "platform-kek"}
    )
    assert ages is not None and ages >= 0
