"""The audit log end to end: export, offline verification, proofs, tenant views, tampering."""

from __future__ import annotations

import base64
import copy
import json
import tempfile
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from bulkhead.audit.bundle import verify_bundle
from bulkhead.audit.checkpoint import Signer, Verifier, sign_checkpoint
from bulkhead.audit.export import build_bundle
from bulkhead.audit.hashing import leaf_hash
from bulkhead.audit.proofs import verify_inclusion
from bulkhead.audit.verify import LogVerificationError
from bulkhead.store import Database, upgrade
from bulkhead.store.schema import AuditCheckpointRow, AuditEntryRow, AuditKeyRow
from tests.support.gateway import GatewayThread, UpstreamThread

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def keys(gateway: GatewayThread, upstream: UpstreamThread) -> dict[str, str]:
    gateway.tenant("aud-a")
    gateway.tenant("aud-b")
    # The whole log holds every tenant's events: a platform admin reads it under a grant.
    gateway.grant("admin:audit.export.get", "platform", duration_s=4 * 3600)
    gateway.model("aud-m", upstream.url, grant=("aud-a", "aud-b"), upstream_model="fake")
    found = {
        "a": gateway.key("aud-a"),
        "b": gateway.key("aud-b"),
        "a_auditor": gateway.key("aud-a", role="tenant_auditor"),
    }
    for key in (found["a"], found["b"], found["a"]):
        assert (
            gateway.call("POST", "/v1/chat/completions", key, {"model": "aud-m", **CHAT}).status
            == 200
        )
    return found


def settle(gateway: GatewayThread) -> None:
    gateway.app.audit.flush()
    gateway.app.sequencer.checkpoint()


def verifiers(bundle: dict[str, Any]) -> list[Verifier]:
    return [Verifier.from_vkey(v) for v in bundle["verifiers"]]


def full_bundle(gateway: GatewayThread) -> dict[str, Any]:
    settle(gateway)
    response = gateway.admin("GET", "/admin/v1/audit/bundle")
    assert response.status == 200
    return dict(response.body)


def test_full_export_verifies(gateway: GatewayThread, keys: dict[str, str]) -> None:
    bundle = full_bundle(gateway)
    report = verify_bundle(bundle, verifiers(bundle))
    assert report.size == len(bundle["entries"]) and report.signed_size > 0


def test_tenant_view_shows_only_own_content_and_proves_it(
    gateway: GatewayThread, keys: dict[str, str]
) -> None:
    settle(gateway)
    bundle = gateway.call("GET", "/tenant/v1/audit/bundle", keys["a_auditor"]).body
    a_id = gateway.admin("GET", "/admin/v1/tenants/aud-a").body["id"]
    own = [json.loads(e["body"]) for e in bundle["entries"] if "body" in e]
    # Its own events, and (issue 12, item 12) the platform's actions on it.
    assert own and all(a_id in (e.get("tenant_id"), e.get("target_tenant")) for e in own)
    assert any("hash" in e for e in bundle["entries"])
    b_id = gateway.admin("GET", "/admin/v1/tenants/aud-b").body["id"]
    assert b_id not in json.dumps(bundle)
    assert bundle["proofs"]
    report = verify_bundle(bundle, verifiers(bundle))
    assert report.own_entries == len(own)


def test_tenant_cannot_see_or_prove_another_tenants_event(
    gateway: GatewayThread, keys: dict[str, str]
) -> None:
    settle(gateway)
    everything = gateway.admin("GET", "/admin/v1/audit/events?limit=1000").body["data"]
    b_id = gateway.admin("GET", "/admin/v1/tenants/aud-b").body["id"]
    foreign = next(e for e in everything if e.get("tenant_id") == b_id)
    response = gateway.call(
        "GET", f"/tenant/v1/audit/proofs/{foreign['event_id']}", keys["a_auditor"]
    )
    assert response.status == 404
    listed = gateway.call("GET", "/tenant/v1/audit/events?limit=1000", keys["a_auditor"]).body
    assert all(e.get("tenant_id") != b_id for e in listed["data"])
    assert gateway.call("GET", "/tenant/v1/audit/events", keys["a"]).status == 403


def test_inclusion_proof_of_an_event(gateway: GatewayThread, keys: dict[str, str]) -> None:
    settle(gateway)
    event = gateway.admin("GET", "/admin/v1/audit/events?limit=1").body["data"][0]
    proof = gateway.admin("GET", f"/admin/v1/audit/proofs/{event['event_id']}").body
    root = base64.b64decode(proof["checkpoint"].split("\n")[2])
    verify_inclusion(
        proof["index"],
        proof["size"],
        base64.b64decode(proof["leaf_hash"]),
        [base64.b64decode(p) for p in proof["proof"]],
        root,
    )


# Tampering with the database: the verifier fails at the right place --------------------


def tamper(gateway: GatewayThread, statement: Any) -> dict[str, Any]:
    """Copy the log into a scratch database, apply one change there, and export it.

    The live log stays untouched, so the gateway keeps appending meanwhile.
    """
    settle(gateway)
    scratch = Database(f"sqlite:///{tempfile.mkdtemp()}/scratch.db")
    upgrade(scratch)
    tables = (AuditEntryRow.__table__, AuditCheckpointRow.__table__, AuditKeyRow.__table__)
    with gateway.app.db.platform_transaction() as source, scratch.transaction() as target:
        for table in tables:
            rows = [dict(r._mapping) for r in source.execute(select(*table.c))]
            target.execute(table.insert(), rows)
    with scratch.transaction() as session:
        statement(session)
    bundle = build_bundle(scratch, gateway.settings.audit_origin)
    scratch.dispose()
    return bundle


def fails_at(bundle: dict[str, Any], index: int, trusted: bytes | None = None) -> None:
    with pytest.raises(LogVerificationError) as info:
        verify_bundle(bundle, verifiers(bundle), trusted=trusted)
    assert info.value.index == index, info.value


def body_of(session: Any, idx: int) -> dict[str, Any]:
    row = session.execute(select(AuditEntryRow.body).where(AuditEntryRow.idx == idx)).scalar()
    return dict(json.loads(row))


def test_updated_row_is_found(gateway: GatewayThread, keys: dict[str, str]) -> None:
    def change(session: Any) -> None:
        event = body_of(session, 3)
        event["status"] = 200 if event["status"] != 200 else 201
        session.execute(
            update(AuditEntryRow)
            .where(AuditEntryRow.idx == 3)
            .values(body=json.dumps(event, separators=(",", ":")).encode())
        )

    fails_at(tamper(gateway, change), 3)


def test_deleted_row_is_found(gateway: GatewayThread, keys: dict[str, str]) -> None:
    def drop(session: Any) -> None:
        session.execute(delete(AuditEntryRow).where(AuditEntryRow.idx == 4))

    fails_at(tamper(gateway, drop), 4)


def test_reordered_rows_are_found(gateway: GatewayThread, keys: dict[str, str]) -> None:
    def swap(session: Any) -> None:
        session.execute(update(AuditEntryRow).where(AuditEntryRow.idx == 5).values(idx=-1))
        session.execute(update(AuditEntryRow).where(AuditEntryRow.idx == 6).values(idx=5))
        session.execute(update(AuditEntryRow).where(AuditEntryRow.idx == -1).values(idx=6))

    fails_at(tamper(gateway, swap), 5)


def test_inserted_row_is_found(gateway: GatewayThread, keys: dict[str, str]) -> None:
    def insert_one(session: Any) -> None:
        rows = (
            session.execute(
                select(AuditEntryRow)
                .where(AuditEntryRow.idx >= 2)
                .order_by(AuditEntryRow.idx.desc())
            )
            .scalars()
            .all()
        )
        for row in rows:
            row.idx += 1
            session.flush()
        fake = b'{"action":"forged","idx":2}'
        session.add(
            AuditEntryRow(
                idx=2,
                event_id="f" * 32,
                tenant_id=None,
                time=0.0,
                leaf_hash=leaf_hash(fake),
                body=fake,
            )
        )

    # The forged leaf 2 does not link to leaf 1: the verifier names 1, the earliest
    # index that can be bad (a modified leaf 1 would break the same link).
    fails_at(tamper(gateway, insert_one), 1)


def test_truncation_is_found_with_a_trusted_checkpoint(
    gateway: GatewayThread, keys: dict[str, str]
) -> None:
    bundle = full_bundle(gateway)
    trusted = bundle["checkpoints"][-1].encode()
    size = int(bundle["checkpoints"][-1].split("\n")[1])
    rolled_back = copy.deepcopy(bundle)
    rolled_back["entries"] = rolled_back["entries"][: size - 2]
    rolled_back["checkpoints"] = [
        c for c in bundle["checkpoints"] if int(c.split("\n")[1]) <= size - 2
    ] or bundle["checkpoints"][:1]
    with pytest.raises(LogVerificationError):
        verify_bundle(rolled_back, verifiers(bundle), trusted=trusted)


def test_flipped_byte_in_export_is_found(gateway: GatewayThread, keys: dict[str, str]) -> None:
    bundle = full_bundle(gateway)
    body = bundle["entries"][7]["body"]
    bundle["entries"][7]["body"] = body.replace('"status":', '"statuz":', 1)
    fails_at(bundle, 7)


def test_checkpoint_from_another_key_is_refused(
    gateway: GatewayThread, keys: dict[str, str]
) -> None:
    bundle = full_bundle(gateway)
    size = int(bundle["checkpoints"][-1].split("\n")[1])
    root = base64.b64decode(bundle["checkpoints"][-1].split("\n")[2])
    forged = sign_checkpoint(bundle["origin"], size, root, Signer.generate(bundle["origin"]))
    bundle["checkpoints"][-1] = forged.decode()
    with pytest.raises(LogVerificationError):
        verify_bundle(bundle, verifiers(bundle))


def test_forked_log_is_refused(gateway: GatewayThread, keys: dict[str, str]) -> None:
    bundle = full_bundle(gateway)
    trusted = bundle["checkpoints"][-1].encode()

    def rewrite_history(session: Any) -> None:
        session.execute(delete(AuditCheckpointRow))
        event = body_of(session, 1)
        event["action"] = "rewritten"
        session.execute(
            update(AuditEntryRow)
            .where(AuditEntryRow.idx == 1)
            .values(body=json.dumps(event, separators=(",", ":")).encode())
        )

    forked = tamper(gateway, rewrite_history)
    with pytest.raises(LogVerificationError):
        verify_bundle(forked, verifiers(bundle), trusted=trusted)


def test_key_rotation_keeps_old_checkpoints_verifiable(
    gateway: GatewayThread, keys: dict[str, str]
) -> None:
    before = full_bundle(gateway)
    gateway.grant("admin:audit.keys.rotate")
    rotated = gateway.admin("POST", "/admin/v1/audit/keys/rotate")
    assert rotated.status == 200
    gateway.admin("GET", "/admin/v1/tenants")
    after = full_bundle(gateway)
    assert rotated.body["verifier"] in after["verifiers"]
    assert set(before["verifiers"]) < set(after["verifiers"])
    newest = after["checkpoints"][-1]
    new_name = Verifier.from_vkey(rotated.body["verifier"]).name
    assert newest.count("\u2014 " + new_name) == 1
    verify_bundle(after, verifiers(after))
    with pytest.raises(LogVerificationError):  # the old key alone cannot vouch for new heads
        verify_bundle(after, verifiers(before))


def test_tenant_key_cannot_rotate(gateway: GatewayThread, keys: dict[str, str]) -> None:
    assert gateway.call("POST", "/admin/v1/audit/keys/rotate", keys["a_auditor"]).status == 403
    assert (
        gateway.admin(
            "POST", "/admin/v1/audit/keys/rotate", key=gateway.key("aud-a", role="tenant_admin")
        ).status
        == 403
    )
