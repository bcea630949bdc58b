"""Attacks on the audit log: stop the writer, hide or roll back events, crash the verifier.

Issue 12 items 5, 10, 12, 20, 21 and 22 (the verifier half), and the verifier's
origin.  Each test below failed on the code before the fix:

* an IdP token whose `jti` is a lone surrogate killed the writer thread, and
  every later event was lost while the gateway kept answering 200;
* a store that refuses writes left the gateway serving, unaudited, with a
  healthy `/healthz`;
* creations did not name what they created, and a platform action on a
  tenant did not name the tenant (nor did the tenant see it);
* a tenant export answered with one O(n) proof per own entry;
* the verifier said "verified" for a rolled-back tenant bundle once entry 0
  was a bare hash, for a full export with a hashed-out event, for entries no
  checkpoint signs, and for a bundle of another log; crafted bundles ended in
  tracebacks.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, text

from bulkhead.audit.bundle import verify_bundle
from bulkhead.audit.checkpoint import Signer, Verifier
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.export import build_bundle, prove
from bulkhead.audit.keys import register
from bulkhead.audit.log import append_batch
from bulkhead.audit.proofs import VerificationError
from bulkhead.audit.sequencer import Sequencer
from bulkhead.store import Database, upgrade
from tests.cli.test_cli import bulkhead
from tests.integration.test_sign_in import idp_token
from tests.support.gateway import LOOPBACK_IDP, GatewayThread, UpstreamThread
from tests.support.postgres import sqlalchemy_url
from tests.support.webhook import WebhookReceiver
from tests.unit.identity.test_oidc import JwksServer

# Its IdPs serve their JWKS on 127.0.0.1: the operator allows it (`tests/conftest.py`).
GATEWAY_ENV = LOOPBACK_IDP

ORIGIN = "bulkhead.test/audit"
OTHER_ORIGIN = "other.test/audit"


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


# Item 5: a hostile IdP claim must not stop the audit log ------------------------------------


@pytest.fixture(scope="module")
def idp() -> Iterator[tuple[JwksServer, Any]]:
    server = JwksServer()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server.publish("k1", key.public_key())
    yield server, key
    server.close()


def test_lone_surrogate_jti_does_not_stop_the_audit_log(
    gateway: GatewayThread, unique: str, idp: tuple[JwksServer, Any]
) -> None:
    server, key = idp
    gateway.tenant(unique)
    gateway.must(
        "PUT",
        f"/admin/v1/tenants/{unique}/idp",
        {"issuer": f"https://idp.test/{unique}", "audience": unique, "jwks_url": server.url},
    )
    gateway.must(
        "POST", f"/admin/v1/tenants/{unique}/principals", {"name": "erin", "roles": ["end_user"]}
    )
    issuer = f"https://idp.test/{unique}"
    hostile = idp_token(key, issuer, unique, sub="erin", roles=["end_user"], jti="\ud800")
    control = idp_token(key, issuer, unique, sub="erin", roles=["end_user"], jti="a" * 65)
    before = len(gateway.audit_events())
    assert gateway.call("GET", "/v1/models", hostile).status == 200
    api_key = gateway.key(unique)
    for _ in range(3):
        assert gateway.call("GET", "/v1/models", api_key).status == 200
    assert gateway.call("GET", "/v1/models", control).status == 200
    events = gateway.audit_events()
    # Every request after the hostile token was recorded: the writer lives on.
    mine = [e for e in events[before:] if e.get("action") == "v1:models.list"]
    assert len(mine) == 5, [e.get("action") for e in events[before:]]
    idp_events = [e for e in mine if str(e.get("credential_id", "")).startswith("jwt:")]
    assert len(idp_events) == 2
    for event in idp_events:
        # Neither the surrogate nor the over-long jti is used: the token's hash names it.
        tail = event["credential_id"].removeprefix("jwt:")
        assert len(tail) == 24 and all(c in "0123456789abcdef" for c in tail)
    assert gateway.app.audit.state().healthy


def test_unencodable_event_fields_are_cleaned_not_fatal(gateway: GatewayThread) -> None:
    hostile = AuditEvent(
        action="test:\udc80hostile",
        outcome="success",
        status=200,
        resource="r\ud800",
        reason="x" * 100_000,
        prompt_tokens=2**70,
        latency_ms=math.inf,
    )
    after = AuditEvent(action="test:after-hostile", outcome="success", status=200)
    gateway.app.audit.emit(hostile)
    gateway.app.audit.emit(after)
    events = {e["event_id"]: e for e in gateway.audit_events()}
    landed = events[hostile.event_id]
    assert landed["action"] == "test:\ufffdhostile" and landed["resource"] == "r\ufffd"
    assert len(landed["reason"]) < 10_000 and "prompt_tokens" not in landed
    assert after.event_id in events


def test_an_event_that_still_fails_is_replaced_by_a_substitute(
    gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bulkhead.audit.append as writer

    poison = AuditEvent(action="test:poison", outcome="success", status=200)
    real = writer.canonicalize

    def refuse_poison(value: object) -> bytes:
        if isinstance(value, dict) and value.get("action") == "test:poison":
            raise ValueError("cannot encode")
        return real(value)

    monkeypatch.setattr(writer, "canonicalize", refuse_poison)
    after = AuditEvent(action="test:after-poison", outcome="success", status=200)
    gateway.app.audit.emit(poison)
    gateway.app.audit.emit(after)
    events = {e["event_id"]: e for e in gateway.audit_events()}
    substitute = events[poison.event_id]
    assert substitute["action"] == "audit:event.unencodable"
    assert substitute["outcome"] == "failure" and "ValueError" in substitute["reason"]
    assert after.event_id in events


# The class: audit never dies silently, and the gateway fails closed ---------------------------


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def watched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayThread, WebhookReceiver]]:
    from tests.conftest import database_urls

    receiver = WebhookReceiver()
    with receiver.running():
        url, admin = database_urls(request.param, request)
        gw = GatewayThread(
            tmp_path_factory.mktemp("watched") / "data",
            url,
            admin_url=admin,
            env={"BULKHEAD_ALERT_WEBHOOK_URL": receiver.url},
        ).start()
        yield gw, receiver
        gw.stop()


def owner_engine(gateway: GatewayThread) -> Any:
    """A connection that may rename tables: the owner's on PostgreSQL, the file on SQLite."""
    settings = gateway.settings
    url = settings.database_admin_url or settings.database_url
    if url.startswith("postgresql"):
        url = sqlalchemy_url(url)
    return create_engine(url)


def rename(gateway: GatewayThread, old: str, new: str) -> None:
    engine = owner_engine(gateway)
    with engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
    engine.dispose()


def test_unwritable_audit_log_fails_closed_alerts_and_recovers(
    watched: tuple[GatewayThread, WebhookReceiver],
) -> None:
    gateway, receiver = watched
    key = gateway.demo_key
    assert gateway.call("GET", "/healthz", None).status == 200
    rename(gateway, "audit_entries", "audit_entries_away")
    try:
        gateway.call("GET", "/v1/models", key)  # its event cannot be written

        def refused() -> bool:
            return gateway.call("GET", "/v1/models", key).status == 503

        wait_until(refused)
        response = gateway.call("GET", "/v1/models", key)
        assert response.body["error"]["code"] == "audit_unavailable"
        health = gateway.call("GET", "/healthz", None)
        assert health.status == 503 and "audit" in health.body["error"]["message"]
        assert gateway.admin("GET", "/admin/v1/tenants").status == 503
        state = gateway.app.audit.state()
        assert not state.healthy and state.failing_since is not None and state.backlog >= 1
        registry = gateway.app.metrics.registry
        assert registry.get_sample_value("bulkhead_audit_writer_up") == 0
        assert (registry.get_sample_value("bulkhead_audit_backlog_events") or 0) >= 1
        alerts = receiver.wait_for(1)
        assert any(a.get("kind") == "audit.writer_failing" for a in alerts)
    finally:
        rename(gateway, "audit_entries_away", "audit_entries")
    wait_until(lambda: gateway.call("GET", "/healthz", None).status == 200)
    assert gateway.call("GET", "/v1/models", key).status == 200
    assert gateway.app.metrics.registry.get_sample_value("bulkhead_audit_writer_up") == 1
    events = gateway.audit_events()
    assert [e["idx"] for e in events] == list(range(len(events)))
    # The requests refused during the outage are on the record, and so is the outage.
    assert any(e.get("reason") == "audit_unavailable" and e["status"] == 503 for e in events)
    assert any(e["action"] == "system:audit.writer_recovered" for e in events)
    gateway.app.sequencer.checkpoint()
    bundle = build_bundle(gateway.app.db, gateway.settings.audit_origin)
    verify_bundle(bundle, [Verifier.from_vkey(v) for v in bundle["verifiers"]])


# Item 12: creations name what they created; platform actions name their tenant --------------


def test_creations_carry_ids_and_platform_actions_carry_their_tenant(
    gateway: GatewayThread, upstream: UpstreamThread, unique: str
) -> None:
    tenant = gateway.tenant(unique)
    other = gateway.tenant(f"{unique}-other")
    principal = gateway.must(
        "POST", f"/admin/v1/tenants/{unique}/principals", {"name": "pat", "roles": ["end_user"]}
    )
    key = gateway.must("POST", f"/admin/v1/tenants/{unique}/keys", {"role": "tenant_admin"})
    auditor = gateway.key(unique, role="tenant_auditor")
    model = gateway.model(f"{unique}-m", upstream.url, tenant=unique, upstream_model="fake")
    shared = gateway.model(f"{unique}-s", upstream.url, upstream_model="fake")
    gateway.must("POST", f"/admin/v1/models/{shared['name']}/grants", {"tenant": unique})
    admin = key["secret"]
    gateway.allow_upstreams(unique, ["127.0.0.1/32"])
    made_key = gateway.call("POST", "/tenant/v1/keys", admin, {"name": "k"}).body
    made_principal = gateway.call(
        "POST", "/tenant/v1/principals", admin, {"name": "sam", "roles": ["end_user"]}
    ).body
    version = gateway.call(
        "POST",
        f"/tenant/v1/models/{model['name']}/versions",
        admin,
        {"version": "v2", "upstream": upstream.url, "upstream_model": "fake"},
    ).body
    quota = gateway.call(
        "POST",
        "/tenant/v1/quota-requests",
        admin,
        {"quota": "concurrency", "value": 7, "reason": "a load test next week"},
    ).body
    events = gateway.audit_events()

    def event(action: str, object_id: str) -> dict[str, Any]:
        found = [e for e in events if e["action"] == action and e.get("object_id") == object_id]
        assert len(found) == 1, (action, object_id)
        return found[0]

    tid = tenant["id"]
    assert event("admin:tenants.create", tid)["target_tenant"] == tid
    assert event("admin:principals.create", principal["id"])["target_tenant"] == tid
    assert event("admin:keys.create", key["key"]["id"])["target_tenant"] == tid
    assert event("admin:models.create", model["id"])["target_tenant"] == tid
    assert "target_tenant" not in event("admin:models.create", shared["id"])
    grants = [e for e in events if e["action"] == "admin:models.grant"]
    assert grants[-1]["target_tenant"] == tid
    for action, made in (
        ("tenant:keys.create", made_key["key"]["id"]),
        ("tenant:principals.create", made_principal["id"]),
        ("tenant:models.versions.create", version["id"]),
        ("tenant:quota_requests.create", quota["id"]),
    ):
        assert event(action, made)["tenant_id"] == tid

    # The tenant sees the platform's actions on it, with proofs; the other tenant does not.
    gateway.app.sequencer.checkpoint()
    listed = gateway.call("GET", "/tenant/v1/audit/events?limit=1000", auditor).body["data"]
    platform_ids = {e["event_id"] for e in listed if e.get("target_tenant") == tid}
    assert event("admin:keys.create", key["key"]["id"])["event_id"] in platform_ids
    bundle = gateway.call("GET", "/tenant/v1/audit/bundle", auditor).body
    own = [json.loads(e["body"]) for e in bundle["entries"] if "body" in e]
    assert platform_ids <= {e["event_id"] for e in own}
    assert all(str(e["idx"]) in bundle["proofs"] for e in own if e["idx"] < _signed(bundle))
    verify_bundle(bundle, [Verifier.from_vkey(v) for v in bundle["verifiers"]])
    some = next(iter(platform_ids))
    assert gateway.call("GET", f"/tenant/v1/audit/proofs/{some}", auditor).status == 200
    stranger = gateway.key(other["name"], role="tenant_auditor")
    theirs = gateway.call("GET", "/tenant/v1/audit/events?limit=1000", stranger).body["data"]
    assert not platform_ids & {e["event_id"] for e in theirs}
    assert gateway.call("GET", f"/tenant/v1/audit/proofs/{some}", stranger).status == 404


def _signed(bundle: dict[str, Any]) -> int:
    return int(bundle["checkpoints"][-1].split("\n")[1]) if bundle["checkpoints"] else 0


# A log of our own for the verifier and the export -------------------------------------------


class Log:
    """A real log in SQLite: append, checkpoint at chosen sizes, export."""

    def __init__(self, path: Path, origin: str = ORIGIN):
        self.db = Database(f"sqlite:///{path}")
        upgrade(self.db)
        self.origin = origin
        self.signer = Signer.generate(origin)
        register(self.db, self.signer.verifier)
        self.sequencer = Sequencer(self.db, self.signer, origin)
        self.tenant_ids: list[str] = []

    def append(self, tenants: list[str | None]) -> None:
        append_batch(
            self.db,
            [
                AuditEvent(action="test:event", outcome="success", status=200, tenant_id=t)
                for t in tenants
            ],
        )

    def checkpoint(self) -> bytes:
        note = self.sequencer.checkpoint()
        assert note is not None
        return note

    def bundle(self, tenant: str | None = None) -> dict[str, Any]:
        return build_bundle(self.db, self.origin, tenant)

    @property
    def keys(self) -> list[Verifier]:
        return [self.signer.verifier]


TENANT = "a" * 32
OTHER = "b" * 32


@pytest.fixture(scope="module")
def log15(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Log, bytes]]:
    """Entries 0-10 under a checkpoint of 11, entries 11-14 under one of 15."""
    log = Log(tmp_path_factory.mktemp("log15") / "log.db")
    log.append([TENANT, TENANT, OTHER, TENANT, OTHER, None, TENANT, OTHER, TENANT, None, TENANT])
    log.checkpoint()
    log.append([OTHER, TENANT, None, TENANT])
    trusted = log.checkpoint()
    yield log, trusted
    log.db.dispose()


def fails(
    bundle: dict[str, Any],
    keys: list[Verifier],
    trusted: bytes | None = None,
    **options: Any,
) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify_bundle(bundle, keys, trusted=trusted, **options)
    return caught.value


def hashed(entry: dict[str, str]) -> dict[str, str]:
    from bulkhead.audit.hashing import leaf_hash

    return {"hash": base64.b64encode(leaf_hash(entry["body"].encode())).decode()}


def test_rolled_back_tenant_bundle_fails_even_with_entry_0_hashed(
    log15: tuple[Log, bytes],
) -> None:
    log, trusted = log15
    bundle = log.bundle(TENANT)
    verify_bundle(bundle, log.keys, trusted=trusted)
    rolled = copy.deepcopy(bundle)
    rolled["entries"] = rolled["entries"][:11]
    rolled["size"] = 11
    rolled["checkpoints"] = rolled["checkpoints"][:1]
    rolled["proofs"] = {}
    assert "rolled back" in str(fails(rolled, log.keys, trusted))
    rolled["entries"][0] = hashed(rolled["entries"][0])
    assert "rolled back" in str(fails(rolled, log.keys, trusted))


def test_full_export_cannot_hide_an_event_behind_its_hash(log15: tuple[Log, bytes]) -> None:
    log, _ = log15
    bundle = log.bundle()
    verify_bundle(bundle, log.keys)
    bundle["entries"][5] = hashed(bundle["entries"][5])
    assert "entry 5" in str(fails(bundle, log.keys))


def test_unsigned_entries_are_reported_apart_from_the_verdict(
    tmp_path: Path,
) -> None:
    log = Log(tmp_path / "log.db")
    log.append([TENANT] * 4)
    log.checkpoint()
    log.append([TENANT] * 3)
    report = verify_bundle(log.bundle(), log.keys)
    assert report.signed_size == 4 and report.unsigned == 3
    with pytest.raises(VerificationError, match="3 entries"):
        verify_bundle(log.bundle(), log.keys, require_signed=True)
    # A tampered unsigned entry is caught by the next entry's link when there is one...
    bundle = log.bundle()
    body = json.loads(bundle["entries"][5]["body"])
    body["status"] = 500
    bundle["entries"][5]["body"] = json.dumps(body, separators=(",", ":"), sort_keys=True)
    fails(bundle, log.keys)
    # ...and the CLI says plainly what no signature covers.
    path, keys = tmp_path / "b.json", tmp_path / "k.txt"
    path.write_text(json.dumps(log.bundle()))
    keys.write_text(log.signer.verifier.vkey + "\n")
    out = bulkhead("audit", "verify", str(path), "--public-key", str(keys), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "3 entries after the last checkpoint are not signed" in out.stdout + out.stderr
    strict = bulkhead(
        "audit", "verify", str(path), "--public-key", str(keys), "--require-signed", cwd=tmp_path
    )
    assert strict.returncode == 1 and "Traceback" not in strict.stderr


def test_origin_comes_from_the_auditor_not_the_bundle(tmp_path: Path) -> None:
    ours, theirs = Log(tmp_path / "ours.db"), Log(tmp_path / "theirs.db", OTHER_ORIGIN)
    for log in (ours, theirs):
        log.append([TENANT] * 3)
        log.checkpoint()
    both = ours.keys + theirs.keys
    foreign = theirs.bundle()
    verify_bundle(foreign, both, origin=OTHER_ORIGIN)
    assert ORIGIN in str(fails(foreign, both, origin=ORIGIN))
    # Relabelled as ours, its checkpoints still name the other log.
    foreign["origin"] = ORIGIN
    fails(foreign, both, origin=ORIGIN)
    # Without --origin, the key file names the log; keys of two logs need --origin.
    path, keys = tmp_path / "b.json", tmp_path / "k.txt"
    path.write_text(json.dumps(theirs.bundle()))
    keys.write_text("".join(v.vkey + "\n" for v in both))
    ambiguous = bulkhead("audit", "verify", str(path), "--public-key", str(keys), cwd=tmp_path)
    assert ambiguous.returncode == 2 and "--origin" in ambiguous.stderr
    wrong = bulkhead(
        "audit", "verify", str(path), "--public-key", str(keys), "--origin", ORIGIN, cwd=tmp_path
    )
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    right = bulkhead(
        "audit",
        "verify",
        str(path),
        "--public-key",
        str(keys),
        "--origin",
        OTHER_ORIGIN,
        cwd=tmp_path,
    )
    assert right.returncode == 0, right.stderr


def test_a_tenant_view_is_not_taken_for_a_full_export(
    log15: tuple[Log, bytes], tmp_path: Path
) -> None:
    # A full export relabelled as one tenant's view may show others' entries as hashes
    # only; an auditor who needs the whole log says --full.
    log, _ = log15
    path, keys = tmp_path / "b.json", tmp_path / "k.txt"
    path.write_text(json.dumps(log.bundle(TENANT)))
    keys.write_text(log.signer.verifier.vkey + "\n")
    args = ("audit", "verify", str(path), "--public-key", str(keys), "--json")
    view = bulkhead(*args, cwd=tmp_path)
    assert view.returncode == 0 and json.loads(view.stdout)["tenant"] == TENANT
    full = bulkhead(*args, "--full", cwd=tmp_path)
    assert full.returncode == 1 and "not a full export" in full.stderr
    # Whose view it must be comes from the auditor, like the origin.
    assert bulkhead(*args, "--tenant", TENANT, cwd=tmp_path).returncode == 0
    other = bulkhead(*args, "--tenant", "someone-else", cwd=tmp_path)
    assert other.returncode == 1 and "not tenant someone-else's view" in other.stderr


# Item 22 (verifier half) and the systematic bad bundles ---------------------------------------


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


CRAFTED_FILES = {
    "entries-not-a-list": lambda b: {**b, "entries": 5},
    "entry-body-a-number": lambda b: {**b, "entries": [{"body": 5}, *b["entries"][1:]]},
    "entry-a-string": lambda b: {**b, "entries": ["x", *b["entries"][1:]]},
    "checkpoint-a-number": lambda b: {**b, "checkpoints": [5]},
    "proofs-a-list": lambda b: {**b, "proofs": [1, 2]},
    "proof-index-not-a-number": lambda b: {**b, "proofs": {"x": []}},
    "huge-size": lambda b: {**b, "size": 10**30},
    "bundle-a-list": lambda b: [b],
    "origin-an-object": lambda b: {**b, "origin": {"a": 1}},
    "body-deeply-nested": lambda b: {
        **b,
        "entries": [{"body": _deep(5000)}, *b["entries"][1:]],
    },
}


@pytest.mark.parametrize("case", sorted(CRAFTED_FILES))
def test_crafted_bundle_files_get_one_clear_error(
    log15: tuple[Log, bytes], tmp_path: Path, case: str
) -> None:
    log, _ = log15
    path, keys = tmp_path / "b.json", tmp_path / "k.txt"
    path.write_text(json.dumps(CRAFTED_FILES[case](log.bundle())))
    keys.write_text(log.signer.verifier.vkey + "\n")
    out = bulkhead("audit", "verify", str(path), "--public-key", str(keys), cwd=tmp_path)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stderr.count("error:") == 1, out.stderr


def test_deeply_nested_bundle_file_gets_one_clear_error(
    log15: tuple[Log, bytes], tmp_path: Path
) -> None:
    log, _ = log15
    path, keys = tmp_path / "b.json", tmp_path / "k.txt"
    path.write_text('{"format":"bulkhead-audit-bundle/1","entries":' + _deep(100_000) + "}")
    keys.write_text(log.signer.verifier.vkey + "\n")
    out = bulkhead("audit", "verify", str(path), "--public-key", str(keys), cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr


def _flip(text: str, position: int) -> str:
    return text[:position] + chr(ord(text[position]) ^ 1) + text[position + 1 :]


def _swap(items: list[Any], i: int, j: int) -> list[Any]:
    items = list(items)
    items[i], items[j] = items[j], items[i]
    return items


Mutation = Callable[[dict[str, Any]], dict[str, Any]]


def _entries(change: Callable[[list[Any]], list[Any]]) -> Mutation:
    return lambda b: {**b, "entries": change(copy.deepcopy(b["entries"]))}


def _body(index: int, change: Callable[[str], str]) -> Mutation:
    def apply(b: dict[str, Any]) -> dict[str, Any]:
        entries = copy.deepcopy(b["entries"])
        entries[index] = {"body": change(entries[index]["body"])}
        return {**b, "entries": entries}

    return apply


def _checkpoint(index: int, change: Callable[[str], str]) -> Mutation:
    return lambda b: {
        **b,
        "checkpoints": [change(c) if i == index else c for i, c in enumerate(b["checkpoints"])],
    }


def _retype(field: str, value: Any) -> Mutation:
    return lambda b: {**b, field: value}


FULL_MUTATIONS: dict[str, Mutation] = {
    # Bit flips.
    "flip-bit-in-entry-0": _body(0, lambda s: _flip(s, 3)),
    "flip-bit-in-entry-7": _body(7, lambda s: _flip(s, len(s) // 2)),
    "flip-bit-in-last-entry": _body(14, lambda s: _flip(s, len(s) - 3)),
    "flip-bit-in-checkpoint-size": _checkpoint(1, lambda c: c.replace("\n15\n", "\n14\n")),
    "flip-bit-in-checkpoint-root": _checkpoint(1, lambda c: _flip(c, c.index("\n", 22) + 3)),
    "flip-bit-in-signature": _checkpoint(1, lambda c: _flip(c, len(c) - 6)),
    # Truncation.
    "truncate-last-entry": _entries(lambda e: e[:-1]),
    "truncate-to-nothing": _entries(lambda e: []),
    "truncate-entry-body": _body(3, lambda s: s[:-5]),
    "no-checkpoints": _retype("checkpoints", []),
    "truncate-checkpoint-note": _checkpoint(1, lambda c: c[: len(c) // 2]),
    # Reordering.
    "swap-entries-2-3": _entries(lambda e: _swap(e, 2, 3)),
    "swap-first-and-last": _entries(lambda e: _swap(e, 0, 14)),
    "reverse-entries": _entries(lambda e: e[::-1]),
    "swap-checkpoints": lambda b: {**b, "checkpoints": b["checkpoints"][::-1]},
    # Swapped or replaced fields.
    "hash-out-entry-5": _entries(lambda e: [hashed(x) if i == 5 else x for i, x in enumerate(e)]),
    "hash-out-entry-0": _entries(lambda e: [hashed(e[0]), *e[1:]]),
    "duplicate-entry": _entries(lambda e: [*e[:4], e[3], *e[5:]]),
    "other-origin": _retype("origin", OTHER_ORIGIN),
    "other-format": _retype("format", "bulkhead-audit-bundle/0"),
    "size-disagrees": _retype("size", 14),
    "tenant-claimed": _retype("tenant", TENANT),
    "body-and-hash": _entries(lambda e: [{**e[0], **hashed(e[0])}, *e[1:]]),
    "unknown-entry-field": _entries(lambda e: [{**e[0], "note": "x"}, *e[1:]]),
    "unknown-top-field": _retype("extra", 1),
    # Wrong types, huge numbers, deep nesting.
    "entries-an-object": _retype("entries", {"0": "x"}),
    "checkpoints-a-string": _retype("checkpoints", "note"),
    "body-a-list": _body(1, lambda s: [s]),  # type: ignore[arg-type,return-value]
    "body-not-json": _body(1, lambda s: "not json"),
    "body-a-json-list": _body(1, lambda s: "[1,2]"),
    "body-idx-huge": _body(1, lambda s: s.replace('"idx":1', '"idx":100000000000000000000000')),
    "body-idx-a-float": _body(1, lambda s: s.replace('"idx":1', '"idx":1.0')),
    "body-deeply-nested": _body(1, lambda s: s[:-1] + ',"x":' + _deep(3000) + "}"),
    "size-a-string": _retype("size", "15"),
    "size-a-bool": _retype("size", True),
    "origin-a-number": _retype("origin", 7),
    "proofs-a-string": _retype("proofs", "x"),
    "entry-hash-not-base64": _entries(lambda e: [{"hash": "!!"}, *e[1:]]),
    "entry-hash-short": _entries(lambda e: [{"hash": "AAAA"}, *e[1:]]),
    "oversized-body": _body(1, lambda s: s[:-1] + ',"pad":"' + "x" * (2 << 20) + '"}'),
}


def _flip_hash(entry: dict[str, str]) -> dict[str, str]:
    raw = base64.b64decode(entry["hash"])
    return {"hash": base64.b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode()}


TENANT_MUTATIONS: dict[str, Mutation] = {
    "flip-bit-in-other-tenants-hash": _entries(lambda e: [*e[:2], _flip_hash(e[2]), *e[3:]]),
    "flip-bit-in-own-entry": _body(0, lambda s: _flip(s, 5)),
    "swap-own-and-other": _entries(lambda e: _swap(e, 1, 2)),
    "proof-of-wrong-entry": lambda b: {
        **b,
        "proofs": {**b["proofs"], "0": b["proofs"]["1"]},
    },
    "proof-reversed": lambda b: {**b, "proofs": {**b["proofs"], "0": b["proofs"]["0"][::-1]}},
    "proof-index-beyond-log": lambda b: {**b, "proofs": {**b["proofs"], "99": b["proofs"]["0"]}},
    "proof-index-negative": lambda b: {**b, "proofs": {**b["proofs"], "-1": b["proofs"]["0"]}},
    "proof-element-not-base64": lambda b: {**b, "proofs": {**b["proofs"], "0": ["!!"]}},
    "proof-too-long": lambda b: {
        **b,
        "proofs": {**b["proofs"], "0": b["proofs"]["0"] * 40},
    },
    "rolled-back-with-entry-0-hashed": lambda b: {
        **b,
        "entries": [hashed(b["entries"][0]), *b["entries"][1:11]],
        "size": 11,
        "checkpoints": b["checkpoints"][:1],
        "proofs": {},
    },
    "not-the-bundles-tenant": _retype("tenant", OTHER),
    "tenant-not-a-string": _retype("tenant", 5),
}


@pytest.mark.parametrize("case", sorted(FULL_MUTATIONS))
def test_bad_full_bundle_is_refused(log15: tuple[Log, bytes], case: str) -> None:
    log, trusted = log15
    bundle = log.bundle()
    verify_bundle(bundle, log.keys, trusted=trusted)
    fails(FULL_MUTATIONS[case](bundle), log.keys, trusted)


@pytest.mark.parametrize("case", sorted(TENANT_MUTATIONS))
def test_bad_tenant_bundle_is_refused(log15: tuple[Log, bytes], case: str) -> None:
    log, trusted = log15
    bundle = log.bundle(TENANT)
    verify_bundle(bundle, log.keys, trusted=trusted)
    fails(TENANT_MUTATIONS[case](bundle), log.keys, trusted)


# Item 10: one tenant's export costs O(n log n), not one O(n) proof per entry -----------------


def test_tenant_export_hashes_each_node_about_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    import bulkhead.audit.tree as tree

    log = Log(tmp_path / "log.db")
    n = 1024
    log.append([TENANT if i % 2 else OTHER for i in range(n)])
    log.checkpoint()
    calls = 0
    real_node_hash = tree.node_hash

    class CountingHashlib:
        @staticmethod
        def sha256(data: bytes = b"") -> Any:
            nonlocal calls
            calls += 1
            return hashlib.sha256(data)

    def counting_node_hash(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return real_node_hash(left, right)

    monkeypatch.setattr(tree, "hashlib", CountingHashlib)
    monkeypatch.setattr(tree, "node_hash", counting_node_hash)
    bundle = log.bundle(TENANT)
    assert len(bundle["proofs"]) == n // 2
    # Building every level once is 2n hashes; one O(n) proof per entry was n * n / 2.
    assert calls <= 4 * n, calls
    verify_bundle(bundle, log.keys)


def test_prove_reads_one_event_not_every_row(tmp_path: Path) -> None:
    from sqlalchemy import event

    log = Log(tmp_path / "log.db")
    log.append([TENANT] * 40)
    log.checkpoint()
    target = json.loads(log.bundle()["entries"][17]["body"])["event_id"]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(log.db.engine, "before_cursor_execute", record)
    proof = prove(log.db, target, TENANT)
    event.remove(log.db.engine, "before_cursor_execute", record)
    assert proof["index"] == 17
    # Each query of the entries is narrowed (by event id or an index range): no full scan.
    entries = [s for s in statements if "FROM audit_entries" in s]
    assert entries and all("WHERE" in s for s in entries), statements
    assert not any("audit_entries.body" in s for s in entries), statements
    assert prove(log.db, target, TENANT) == proof
    from bulkhead.errors import NotFound

    for bad in ("x" * 5000, "../../etc", target.upper()):
        with pytest.raises(NotFound):
            prove(log.db, bad, TENANT)


def test_exports_are_limited_per_caller() -> None:
    from bulkhead.admin.audit import ExportGate
    from bulkhead.errors import RateLimited

    gate = ExportGate(per_caller=1, total=2)
    with gate.slot("alice"):
        with pytest.raises(RateLimited):
            gate.slot("alice").__enter__()
        with gate.slot("bob"), pytest.raises(RateLimited):
            gate.slot("carol").__enter__()
    with gate.slot("alice"):
        pass


def test_verify_cli_has_no_traceback_on_a_missing_or_huge_file(tmp_path: Path) -> None:
    keys = tmp_path / "k.txt"
    keys.write_text(Signer.generate(ORIGIN).verifier.vkey + "\n")
    missing = bulkhead(
        "audit", "verify", str(tmp_path / "nope.json"), "--public-key", str(keys), cwd=tmp_path
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    big = tmp_path / "big.json"
    big.write_text(" " * 2048 + "{}")
    out = bulkhead(
        "audit",
        "verify",
        str(big),
        "--public-key",
        str(keys),
        "--max-bytes",
        "1024",
        cwd=tmp_path,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr and "1024" in out.stderr
