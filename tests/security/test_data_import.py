"""Tenant data at rest and on its way in: sealed secrets, storage quotas, imported models.

Issue 12 items 9 (rotating then retiring a tenant KEK broke TOTP sign-in), 22 and 27
(crafted model files: 500s at import, restart loops in the worker), 23 (concurrent
uploads overshot the storage quota) and 25 (the CLI import followed symlinks out of the
model directory).  Each test attacks the way a tenant (or an operator handed a hostile
model directory) would, on SQLite and PostgreSQL where a database is involved.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
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


# Item 23: the storage quota holds under concurrent uploads, across processes -----------

QUOTA = 1_000_000
PIECE = 100_000


def file_service(root: Path, db_url: str) -> tuple[Any, Any]:
    """A `FileService` on the shared database, blob store and KMS under `root`."""
    from bulkhead.crypto import LocalKms, load_or_create_master_key
    from bulkhead.store import Database
    from bulkhead.store.blobs import BlobStore
    from bulkhead.store.files import FileService
    from bulkhead.store.keyring import TenantKeyring

    db = Database(db_url)
    (root / "kms").mkdir(mode=0o700, exist_ok=True)
    kms = LocalKms(root / "kms", load_or_create_master_key(root / "master.key"))
    keyring = TenantKeyring(kms, BlobStore(root / "blobs"))
    return db, FileService(db, keyring, max_file_bytes=10 * PIECE)


def upload_all(root: Path, db_url: str, tenant: Any, count: int, start: Any) -> int:
    """`count` uploads at once from this process's threads; how many were accepted."""
    from bulkhead.errors import PayloadTooLarge

    db, files = file_service(root, db_url)
    accepted = []

    def one(i: int) -> None:
        start.wait()
        try:
            files.upload(tenant, f"f{i}.jsonl", "batch", bytes([i % 251]) * PIECE)
            accepted.append(i)
        except PayloadTooLarge as exc:
            assert exc.code == "storage_quota_exceeded"

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    db.dispose()
    return len(accepted)


def _process(root: Path, db_url: str, count: int, start: Any, out: Any) -> None:
    from bulkhead.store import Database, repo

    db = Database(db_url)
    with db.platform_transaction() as session:
        tenant = repo.get_tenant(session, "quota")
    db.dispose()
    out.put(upload_all(root, db_url, tenant, count, start))


def quota_tenant(root: Path, db_url: str, db_admin_url: str | None) -> Any:
    from bulkhead.domain import Tier
    from bulkhead.store import Database, repo, upgrade

    db = Database(db_url)
    upgrade(db, db_admin_url)
    with db.platform_transaction() as session:
        repo.create_tenant(session, "quota", Tier.SHARED)
        tenant = repo.set_tenant_limits(session, "quota", {"storage_bytes": QUOTA})
    file_service(root, db_url)[1].keyring.ensure(tenant.id)
    db.dispose()
    return tenant


def stored(db_url: str, tenant_id: str) -> int:
    from sqlalchemy import func, select

    from bulkhead.store import Database
    from bulkhead.store.schema import FileRow

    db = Database(db_url)
    with db.platform_transaction() as session:
        total = session.execute(
            select(func.coalesce(func.sum(FileRow.bytes), 0)).where(FileRow.tenant_id == tenant_id)
        ).scalar_one()
    db.dispose()
    return int(total)


def test_concurrent_uploads_never_overshoot_the_storage_quota(
    tmp_path: Path, db_url: str, db_admin_url: str | None
) -> None:
    tenant = quota_tenant(tmp_path, db_url, db_admin_url)
    accepted = upload_all(tmp_path, db_url, tenant, 24, threading.Barrier(24))
    assert stored(db_url, tenant.id) == accepted * PIECE == QUOTA  # overshoot: 0 bytes


def test_uploads_from_several_processes_never_overshoot_the_storage_quota(
    tmp_path: Path, db_url: str, db_admin_url: str | None
) -> None:
    """Gateway replicas on one database: each process checks the quota on its own."""
    tenant = quota_tenant(tmp_path, db_url, db_admin_url)
    spawn = multiprocessing.get_context("spawn")
    start, out = spawn.Barrier(3 * 8), spawn.Queue()
    processes = [
        spawn.Process(target=_process, args=(tmp_path, db_url, 8, start, out)) for _ in range(3)
    ]
    for process in processes:
        process.start()
    accepted = sum(out.get(timeout=180) for _ in processes)
    for process in processes:
        process.join(30)
    assert stored(db_url, tenant.id) == accepted * PIECE == QUOTA  # overshoot: 0 bytes
