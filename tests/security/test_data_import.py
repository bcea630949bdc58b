"""Tenant data at rest and on its way in: sealed secrets, storage quotas, imported models.

Issue 12 items 9 (rotating then retiring a tenant KEK broke TOTP sign-in), 22 and 27
(crafted model files: 500s at import, restart loops in the worker), 23 (concurrent
uploads overshot the storage quota) and 25 (the CLI import followed symlinks out of the
model directory).  Each test attacks the way a tenant (or an operator handed a hostile
model directory) would, on SQLite and PostgreSQL where a database is involved.
"""

from __future__ import annotations

import time
from typing import Any

from bulkhead.identity import totp
from tests.integration.test_sign_in import enroll, login, person
from tests.support.gateway import GatewayThread

# Item 9: every secret sealed under a tenant's KEK moves with rotation ------------------


def kms_path(tenant: str) -> str:
    return f"/admin/v1/tenants/{tenant}/kms"


def objects_by_version(gw: GatewayThread, tenant: str) -> dict[int, int]:
    status = gw.must("GET", kms_path(tenant))
    return {v["version"]: v["objects"] for v in status["versions"]}


def retire(gw: GatewayThread, tenant: str, version: int) -> Any:
    gw.grant("admin:kms.retire", tenant)  # a refused retire gives its grant back
    return gw.admin("POST", f"{kms_path(tenant)}/versions/{version}/retire")


def test_the_readme_procedure_keeps_totp_sign_in_working(
    gateway: GatewayThread, unique: str
) -> None:
    """`kms rotate` then `kms retire --version 1`: an enrolled admin still signs in."""
    gateway.tenant(unique)
    person(gateway, unique, "bob", ["tenant_admin"])
    secret, _ = enroll(gateway, unique, "bob")
    old = gateway.must("GET", kms_path(unique))["primary_version"]
    # No file, no model, no retained exchange: the TOTP secret alone uses the version.
    assert objects_by_version(gateway, unique) == {old: 1}
    busy = retire(gateway, unique, old)
    assert busy.status == 409 and "rotate first" in busy.body["error"]["message"]
    rotated = gateway.must("POST", f"{kms_path(unique)}/rotate")
    assert rotated["rewrapped"] == 1 and rotated["unreadable"] == []
    assert objects_by_version(gateway, unique) == {old: 0, rotated["primary_version"]: 1}
    assert retire(gateway, unique, old).status == 200
    signed = login(gateway, unique, "bob", totp=totp.totp(secret, time.time() + 30))
    assert signed.status == 200, signed.body
    assert signed.body["mfa"] is True


def test_a_pending_enrolment_survives_rotation_and_retirement(
    gateway: GatewayThread, unique: str
) -> None:
    """An enrolment started before the rotation is confirmed after the old version retired."""
    from tests.integration.test_sign_in import PASSWORD, secret_of

    gateway.tenant(unique)
    person(gateway, unique, "eve", ["end_user"])
    who = {"tenant": unique, "principal": "eve", "password": PASSWORD}
    started = gateway.call("POST", "/auth/v1/mfa/enroll", None, who)
    assert started.status == 200, started.body
    secret = secret_of(started.body["otpauth_uri"])
    old = gateway.must("GET", kms_path(unique))["primary_version"]
    assert objects_by_version(gateway, unique) == {old: 1}
    gateway.must("POST", f"{kms_path(unique)}/rotate")
    assert retire(gateway, unique, old).status == 200
    code = totp.totp(secret, time.time())
    confirmed = gateway.call("POST", "/auth/v1/mfa/confirm", None, {**who, "totp": code})
    assert confirmed.status == 200, confirmed.body


# Binary columns that hold no secret: hashes, public keys and the audit log's own bytes.
NOT_SECRET = {
    "api_keys.secret_hash",
    "audit_entries.leaf_hash",
    "audit_entries.body",
    "audit_checkpoints.root",
    "audit_checkpoints.note",
    "sign_in_sessions.secret_hash",
}
# Where the product seals something, and the holder the keyring finds it in.
SEALERS = {
    "bulkhead/store/files.py": "blob",
    "bulkhead/store/retention.py": "blob",
    "bulkhead/store/artifacts.py": "blob",
    "bulkhead/identity/totp_vault.py": "column",
    # Sealed under the `_platform` pseudo-tenant's KEK, which is no tenant's.
    "bulkhead/identity/ca.py": "platform",
}
SEALING_CALLS = {"encrypt", "encrypt_stream", "encrypt_stream_bytes"}


def test_every_binary_column_is_declared_sealed_or_holds_no_secret() -> None:
    """A new column of sealed bytes must be declared, or the keyring never re-wraps it."""
    from sqlalchemy import LargeBinary

    from bulkhead.identity.totp_vault import KIND
    from bulkhead.store.schema import Base
    from bulkhead.store.sealed import declared_columns

    declared = {d.place: d.sealing for d in declared_columns()}
    binary = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    assert binary - NOT_SECRET == set(declared), "declare it with schema.sealed(...)"
    assert {s.kind for s in declared.values()} == {KIND}
    for place, sealing in declared.items():
        table = Base.metadata.tables[place.split(".")[0]]
        assert {sealing.object_id, sealing.owner} <= set(table.columns.keys())


def test_everything_the_product_seals_is_in_a_place_the_keyring_walks() -> None:
    """Every module calling a sealing recipe is known, with the holder that finds its output."""
    import ast
    from pathlib import Path

    import bulkhead

    root = Path(bulkhead.__file__).parent
    callers = set()
    for path in root.rglob("*.py"):
        relative = "bulkhead/" + str(path.relative_to(root))
        if relative.startswith("bulkhead/crypto/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name in SEALING_CALLS:
                    callers.add(relative)
    assert callers == set(SEALERS), "a new sealed object: make its holder known to the keyring"
