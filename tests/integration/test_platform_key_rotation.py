"""The platform's own keys rotate under steady traffic without one failed request.

One gateway with real local workers over mTLS (SVIDs of 4 s), an upstream
that asks for a client certificate of the internal CA, and a plain upstream
behind a sealed platform credential.  Traffic runs from several threads while

- the internal CA rotates: the new version is trusted at once, issues from
  its activation (5 s later), and the old one leaves the trust bundle once
  every SVID it issued has expired; workers, the gateway's client identity
  and the upstream move over, and only the new CA's SVIDs are in use after;
- the audit signing key rotates, on demand and on schedule: every old
  checkpoint verifies, and a bundle exported before verifies after, with
  `bulkhead audit verify`;
- the ``_platform`` KEK rotates and its old version is retired (through
  `POST /admin/v1/keys/platform-kek/versions/{version}/retire`): upstream
  credentials, TOTP secrets, session keys, the CA key, the audit seed and
  the cache-salt secret all still open, in a fresh process's view too.

Each test counts the requests it sent and asserts that none failed.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bulkhead.app.keys import PlatformKeys
from bulkhead.audit.checkpoint import Verifier, open_checkpoint
from bulkhead.identity import totp
from bulkhead.identity.ca import PLATFORM_KEY_OWNER, InternalCA
from bulkhead.identity.tls import peer_certificate
from bulkhead.store.blobs import BlobStore
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.schema import utcnow
from bulkhead.store.session_keys import SessionKeyring
from tests.cli.test_cli import bulkhead
from tests.integration.test_worker_mtls import TlsUpstream
from tests.support.gateway import GatewayThread, Response, UpstreamThread

pytestmark = pytest.mark.serial

TD = "rotation.test"
LIFETIME_S = 4
ACTIVATION_S = 5
PASSWORD = "correct horse battery staple"
CHAT = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
Call = Callable[[], Response]


class Traffic:
    """Threads that send requests until stopped; every answer other than 200 is a failure."""

    def __init__(self, calls: dict[str, Call], threads: int = 4):
        self.calls = calls
        self.sent: dict[str, int] = dict.fromkeys(calls, 0)
        self.failures: list[tuple[str, int, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, offset: int) -> None:
        names = list(self.calls)
        turn = offset
        while not self._stop.is_set():
            name = names[turn % len(names)]
            turn += 1
            try:
                response = self.calls[name]()
                status, body = response.status, response.body
            except Exception as exc:  # a dropped connection is a failed request too
                status, body = 0, repr(exc)
            with self._lock:
                self.sent[name] += 1
                if status != 200:
                    self.failures.append((name, status, body))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    @property
    def total(self) -> int:
        return sum(self.sent.values())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    env = {
        "BULKHEAD_SVID_LIFETIME_S": str(LIFETIME_S),
        "BULKHEAD_TRUST_DOMAIN": TD,
        "BULKHEAD_CA_ACTIVATION_S": str(ACTIVATION_S),
        "BULKHEAD_MAINTENANCE_INTERVAL_S": "0",  # the tests run what the schedule would
    }
    data = tmp_path_factory.mktemp("rotation") / "data"
    gw = GatewayThread(data, None, workers=True, env=env).start()
    deadline = time.monotonic() + 180
    while not (gw.app.workers.status() and all(w["ready"] for w in gw.app.workers.status())):
        assert time.monotonic() < deadline, gw.app.workers.status()
        time.sleep(0.2)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def plain() -> Iterator[UpstreamThread]:
    upstream = UpstreamThread().start()
    yield upstream
    upstream.stop()


def keys_of(gw: GatewayThread) -> PlatformKeys:
    assert gw.app.platform_keys is not None
    return gw.app.platform_keys


def chat(gw: GatewayThread, model: str) -> Call:
    return lambda: gw.call("POST", "/v1/chat/completions", gw.demo_key, {"model": model, **CHAT})


def wait_for_model(gw: GatewayThread, model: str) -> None:
    deadline = time.monotonic() + 10
    while model not in {m["id"] for m in gw.call("GET", "/v1/models", gw.demo_key).body["data"]}:
        assert time.monotonic() < deadline, model
        time.sleep(0.1)


def worker_certificate_issuer(gw: GatewayThread) -> Any:
    """The issuer of the certificate the chat worker presents to a fresh handshake now."""
    import asyncio

    worker = next(w for w in gw.app.workers.status() if w["kind"] == "demo-chat")
    target = gw.app.workers.target(str(worker["deployment"]), 30)
    identity = gw.app.upstreams.identity
    assert target.unix_socket is not None and identity is not None

    async def probe() -> Any:
        _, writer = await asyncio.open_unix_connection(
            target.unix_socket, ssl=identity.context(), server_hostname=""
        )
        cert = peer_certificate(writer.get_extra_info("ssl_object"))
        writer.close()
        assert cert is not None
        return cert.issuer

    return asyncio.run(probe())


# The internal CA ---------------------------------------------------------------------------


def test_ca_rotation_under_load_moves_workers_and_upstream_mtls_over(
    served: GatewayThread,
) -> None:
    ca = served.app.ca
    assert isinstance(ca, InternalCA)
    upstream_id = f"spiffe://{TD}/tenant/_shared/upstream/fake"
    with TlsUpstream(ca, upstream_id) as upstream:
        # The upstream's operator follows the bundle (`GET /admin/v1/keys/ca/bundle`);
        # here it holds the CA object itself, so it sees each change at once.
        upstream.identity.lifetime = timedelta(seconds=LIFETIME_S)
        served.model("ca-up", upstream.url, grant=("demo",), upstream_peer_id=upstream_id)
        wait_for_model(served, "ca-up")
        old_issuer, identity = ca.cert.subject, served.app.upstreams.identity
        assert identity is not None
        calls = {"worker": chat(served, "demo-chat"), "upstream": chat(served, "ca-up")}
        started = time.monotonic()
        with Traffic(calls) as traffic:
            time.sleep(1)
            served.grant("admin:kms.ca.rotate")
            rotated = served.admin("POST", "/admin/v1/keys/ca/rotate")
            assert rotated.status == 200, rotated.body
            assert len(ca.certs) == 2 and ca.cert.subject == old_issuer  # trusted, not issuing
            # Past the activation and a whole SVID lifetime: every live SVID is the new CA's.
            time.sleep(ACTIVATION_S + 2 * LIFETIME_S)
            assert ca.cert.subject != old_issuer
            assert identity.svid.cert.issuer == ca.cert.subject
            assert worker_certificate_issuer(served) == ca.cert.subject
            # The old version leaves the bundle once what it issued has expired: its bound
            # (`trusted_until`) is the longest leaf lifetime, so the maintenance run is
            # asked at that time.
            cas = keys_of(served).cas
            bound = cas.rows()[0].trusted_until
            assert bound is not None
            cas.prune(now=bound + timedelta(seconds=1))
            assert len(ca.certs) == 1 and ca.certs[0].subject != old_issuer
            time.sleep(2 * LIFETIME_S)  # traffic goes on with the new CA alone
        elapsed = time.monotonic() - started
        seen_by_upstream = upstream.identity.svid.cert.issuer
    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.sent["worker"] > 50 and traffic.sent["upstream"] > 50, traffic.sent
    assert seen_by_upstream == ca.cert.subject
    assert identity.svid.cert.issuer == ca.cert.subject
    assert worker_certificate_issuer(served) == ca.cert.subject
    print(f"\nCA rotation: {traffic.sent} requests in {elapsed:.1f} s, 0 failed")
    states = [k["state"] for k in inventory(served) if k["kind"] == "ca"]
    assert states == ["active"]


def inventory(gw: GatewayThread) -> list[dict[str, Any]]:
    return list(gw.must("GET", "/admin/v1/keys/status")["data"])


# The audit signing key ---------------------------------------------------------------------


def export(gw: GatewayThread, directory: Path, name: str) -> tuple[Path, Path]:
    """A full bundle and the public keys, as files an auditor keeps."""
    gw.app.audit.flush()
    gw.app.sequencer.checkpoint()
    bundle, keys = directory / f"{name}.json", directory / f"{name}.keys"
    bundle.write_text(json.dumps(gw.must("GET", "/admin/v1/audit/bundle")))
    keys.write_text("\n".join(gw.must("GET", "/admin/v1/audit/keys")["verifiers"]) + "\n")
    return bundle, keys


def verify(bundle: Path, keys: Path, *extra: str) -> dict[str, Any]:
    done = bulkhead(
        "audit", "verify", str(bundle), "--public-key", str(keys), "--json", *extra,
        cwd=bundle.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_audit_key_rotation_under_load_keeps_every_checkpoint_verifiable(
    served: GatewayThread, tmp_path: Path
) -> None:
    served.grant("admin:audit.export.get", "platform", duration_s=3600)
    before, _ = export(served, tmp_path, "before")
    trusted = tmp_path / "trusted.checkpoint"
    trusted.write_text(json.loads(before.read_text())["checkpoints"][-1])
    audit = keys_of(served).audit
    first = audit.current().verifier
    calls = {
        "chat": chat(served, "demo-chat"),
        "admin": lambda: served.admin("GET", "/admin/v1/tenants"),
    }
    started = time.monotonic()
    with Traffic(calls) as traffic:
        time.sleep(1)
        served.grant("admin:audit.keys.rotate")
        on_demand = served.admin("POST", "/admin/v1/audit/keys/rotate")
        assert on_demand.status == 200, on_demand.body
        time.sleep(3)
        # The schedule's path: the maintenance loop asks once the key is old enough.
        assert audit.rotate_if_due(
            utcnow() + timedelta(days=served.settings.audit_key_rotation_days)
        )
        time.sleep(3)
    elapsed = time.monotonic() - started
    assert traffic.failures == [], traffic.failures[:5]
    after, keys = export(served, tmp_path, "after")
    third = audit.current().verifier
    assert len({first, Verifier.from_vkey(on_demand.body["verifier"]), third}) == 3
    # The bundle exported before the rotations verifies after them, with the keys as they are now.
    assert verify(before, keys)["verified"] is True
    report = verify(after, keys, "--trusted-checkpoint", str(trusted), "--full")
    assert report["verified"] is True
    verifiers = [Verifier.from_vkey(v) for v in keys.read_text().split()]
    signed_by = set()
    for note in json.loads(after.read_text())["checkpoints"]:  # every checkpoint, old and new
        checkpoint = open_checkpoint(note.encode(), verifiers, expected_origin=audit.origin)
        assert checkpoint.size > 0
        signed_by |= {v for v in verifiers if _signed_by(note, v)}
    assert {first, third} <= signed_by
    print(f"\naudit key rotation: {traffic.sent} requests in {elapsed:.1f} s, 0 failed")


def _signed_by(note: str, verifier: Verifier) -> bool:
    try:
        open_checkpoint(note.encode(), [verifier])
    except Exception:
        return False
    return True


# The platform KEK --------------------------------------------------------------------------


def enrolled_platform_admin(gw: GatewayThread, name: str) -> tuple[bytes, str]:
    """A platform admin with a password and TOTP (sealed under the platform KEK)."""
    from bulkhead.domain import PrincipalKind, Role
    from bulkhead.store import repo

    role = Role.PLATFORM_ADMIN
    with gw.app.db.platform_transaction() as session:
        who = repo.create_principal(session, None, name, PrincipalKind.USER, [role])
        own_key = repo.create_key(session, None, role=role, principal=who).secret
    gw.app.catalog.reload()
    # A platform principal sets its own password (with a key of its own).
    path = f"/admin/v1/principals/{name}/password"
    assert gw.admin("PUT", path, {"password": PASSWORD}, key=own_key).status < 300
    who = {"principal": name, "password": PASSWORD}
    started = gw.call("POST", "/auth/v1/mfa/enroll", None, who)
    assert started.status == 200, started.body
    raw = parse_qs(urlsplit(started.body["otpauth_uri"]).query)["secret"][0]
    secret = base64.b32decode(raw + "=" * (-len(raw) % 8))
    confirmed = gw.call(
        "POST", "/auth/v1/mfa/confirm", None, {**who, "totp": totp.totp(secret, time.time())}
    )
    assert confirmed.status == 200, confirmed.body
    return secret, str(confirmed.body["recovery_codes"][0])


def sign_in(gw: GatewayThread, name: str, **second_factor: str) -> str:
    body = {"principal": name, "password": PASSWORD, **second_factor}
    signed = gw.call("POST", "/auth/v1/login", None, body)
    assert signed.status == 200, signed.body
    return str(signed.body["token"])


def test_platform_kek_rotation_under_load_keeps_every_platform_secret_open(
    served: GatewayThread, plain: UpstreamThread, tmp_path: Path
) -> None:
    secret = "sk-platform-credential-under-rotation"
    created = served.admin(
        "POST", "/admin/v1/upstream-credentials", {"name": "rot-cred", "secret": secret}
    )
    assert created.status == 201, created.body
    served.must("POST", "/admin/v1/upstream-credentials/rot-cred/grants", {"tenant": "demo"})
    served.model("kek-up", plain.url, grant=("demo",), upstream_model="fake", credential="rot-cred")
    wait_for_model(served, "kek-up")
    totp_secret, recovery = enrolled_platform_admin(served, "kek-admin")
    # The traffic's session comes from a recovery code: the next TOTP step is kept for
    # the sign-in after the rotation, which opens the re-wrapped TOTP secret.
    session = sign_in(served, "kek-admin", recovery_code=recovery)
    keyring = served.app.maintenance.keyring
    old = keyring.kms.status(PLATFORM_KEY_OWNER).primary
    calls = {
        "credential": chat(served, "kek-up"),
        "worker": chat(served, "demo-chat"),
        "session": lambda: served.call("GET", "/admin/v1/tenants", session),
    }
    started = time.monotonic()
    with Traffic(calls) as traffic:
        time.sleep(1)
        rotated = served.admin("POST", "/admin/v1/keys/platform-kek/rotate")
        assert rotated.status == 200, rotated.body
        # Retiring the old version proves nothing still needs it: whatever it wrapped
        # and was not re-wrapped would no longer open.
        assert set(keyring.versions_in_use(PLATFORM_KEY_OWNER)) == {old + 1}
        # Through the API, under a grant another admin approved.
        served.grant("admin:kms.platform.retire")
        retired = served.admin("POST", f"/admin/v1/keys/platform-kek/versions/{old}/retire")
        assert retired.status == 200, retired.body
        [gone] = [v for v in retired.body["versions"] if v["version"] == old]
        assert gone["retired_at"] is not None
        served.app.catalog.reload()  # upstream credentials are opened again here
        time.sleep(2)
        # A sign-in now opens the TOTP secret under the new version.
        later = sign_in(served, "kek-admin", totp=totp.totp(totp_secret, time.time() + 30))
        assert served.call("GET", "/admin/v1/tenants", later).status == 200
        time.sleep(1)
    elapsed = time.monotonic() - started
    assert traffic.failures == [], traffic.failures[:5]
    assert min(traffic.sent.values()) > 10, traffic.sent
    assert plain.fake.last_headers.get("Authorization") == f"Bearer {secret}"
    # A fresh replica's view: every platform secret opens with version 1 gone.
    fresh_ring = TenantKeyring(keyring.kms, BlobStore(served.settings.data_dir / "blobs"))
    fresh = PlatformKeys.open(served.settings, served.app.db, fresh_ring, lambda *e: None)
    ca, salts = fresh.load()
    assert served.app.ca is not None and ca.cert == served.app.ca.cert
    assert fresh.audit.current().verifier == keys_of(served).audit.current().verifier
    assert salts.for_tenant("t") == keys_of(served).salts.salts.for_tenant("t")
    sessions = SessionKeyring(served.app.db, keyring.kms, fresh_ring.ensure).load().newest()
    assert sessions is not None
    print(f"\nplatform KEK rotation: {traffic.sent} requests in {elapsed:.1f} s, 0 failed")
