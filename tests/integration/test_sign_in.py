"""People signing in through the gateway: password + TOTP sessions, and tenant IdP tokens.

The IdPs are real JWKS documents served on 127.0.0.1 with keys made here.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import event

from bulkhead.domain import PrincipalKind, Role
from bulkhead.identity import totp
from bulkhead.identity.sessions import SessionKey, SessionKeys, issue_session
from bulkhead.store import repo
from bulkhead.store.schema import LocalCredentialRow
from tests.support.gateway import LOOPBACK_IDP, GatewayThread
from tests.unit.identity.test_oidc import JwksServer

# Its IdPs serve their JWKS on 127.0.0.1: the operator allows it (`tests/conftest.py`).
GATEWAY_ENV = LOOPBACK_IDP

PASSWORD = "correct horse battery staple"


def login(gw: GatewayThread, tenant: str | None, principal: str, **extra: Any) -> Any:
    body = {"principal": principal, "password": PASSWORD, **extra}
    if tenant is not None:
        body["tenant"] = tenant
    return gw.call("POST", "/auth/v1/login", None, body)


def person(gw: GatewayThread, tenant: str, name: str, roles: list[str]) -> None:
    gw.must("POST", f"/admin/v1/tenants/{tenant}/principals", {"name": name, "roles": roles})
    # A password lets whoever sets it act in the tenant: the admin holds a grant for it.
    gw.hold("admin:principals.password.set", tenant)
    gw.must("PUT", f"/admin/v1/tenants/{tenant}/principals/{name}/password", {"password": PASSWORD})


def secret_of(uri: str) -> bytes:
    raw = parse_qs(urlsplit(uri).query)["secret"][0]
    return base64.b32decode(raw + "=" * (-len(raw) % 8))


def enroll(gw: GatewayThread, tenant: str | None, name: str) -> tuple[bytes, list[str]]:
    who = {"principal": name, "password": PASSWORD, **({"tenant": tenant} if tenant else {})}
    started = gw.call("POST", "/auth/v1/mfa/enroll", None, who)
    assert started.status == 200, started.body
    secret = secret_of(started.body["otpauth_uri"])
    code = totp.totp(secret, time.time())
    confirmed = gw.call("POST", "/auth/v1/mfa/confirm", None, {**who, "totp": code})
    assert confirmed.status == 200, confirmed.body
    return secret, confirmed.body["recovery_codes"]


def test_password_session_works_and_logout_revokes_it(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "alice", ["end_user"])
    signed = login(gateway, unique, "alice")
    assert signed.status == 200, signed.body
    token = signed.body["token"]
    assert token.startswith("bks_") and signed.body["role"] == "end_user"
    assert gateway.call("GET", "/v1/models", token).status == 200
    assert gateway.call("GET", "/tenant/v1/tenant", token).status == 403  # Role, not session.
    assert gateway.call("POST", "/auth/v1/logout", token).status == 200
    after = gateway.call("GET", "/v1/models", token)
    assert after.status == 401 and after.body["error"]["code"] == "session_expired"
    assert gateway.call("POST", "/auth/v1/logout", token).status == 401


def test_wrong_password_and_unknown_principal_look_the_same(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "alice", ["end_user"])
    wrong = login(gateway, unique, "alice", password="not the password!")
    nobody = login(gateway, unique, "nobody")
    no_tenant = login(gateway, unique + "-x", "alice")
    assert wrong.status == nobody.status == no_tenant.status == 401
    assert wrong.body == nobody.body == no_tenant.body


def test_admins_need_mfa_and_recovery_codes_work_once(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "bob", ["tenant_admin"])
    refused = login(gateway, unique, "bob")
    assert refused.status == 401 and refused.body["error"]["code"] == "mfa_required"
    secret, codes = enroll(gateway, unique, "bob")
    assert len(codes) == 10
    refused = login(gateway, unique, "bob")
    assert refused.status == 401 and refused.body["error"]["code"] == "mfa_required"
    code = totp.totp(secret, time.time() + 30)
    signed = login(gateway, unique, "bob", totp=code)
    assert signed.status == 200, signed.body
    assert signed.body["mfa"] is True
    me = gateway.call("GET", "/tenant/v1/tenant", signed.body["token"])
    assert me.status == 200 and me.body["name"] == unique
    # The code just used is refused the second time.
    replay = login(gateway, unique, "bob", totp=code)
    assert replay.status == 401
    assert login(gateway, unique, "bob", recovery_code=codes[0]).status == 200
    assert login(gateway, unique, "bob", recovery_code=codes[0]).status == 401
    assert login(gateway, unique, "bob", recovery_code=codes[1]).status == 200


def test_platform_admin_sessions_need_mfa(gateway: GatewayThread) -> None:
    gateway.must("PUT", "/admin/v1/principals/admin/password", {"password": PASSWORD})
    refused = login(gateway, None, "admin")
    assert refused.status == 401 and refused.body["error"]["code"] == "mfa_required"


def test_lockout_after_five_failures(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "carol", ["end_user"])
    for _ in range(5):
        assert login(gateway, unique, "carol", password="wrong password!!").status == 401
    # Locked, even the right password is refused, with the answer a wrong one gets
    # (issue 12 item 18: a distinct 429 told which accounts exist).
    locked = login(gateway, unique, "carol")
    assert locked.status == 401 and locked.body["error"]["code"] == "invalid_credentials"
    # A new password set by an admin lifts the lock.
    gateway.must(
        "PUT", f"/admin/v1/tenants/{unique}/principals/carol/password", {"password": PASSWORD}
    )
    assert login(gateway, unique, "carol").status == 200


def test_sign_ins_are_audited_without_secrets(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "dave", ["end_user"])
    token = login(gateway, unique, "dave").body["token"]
    assert login(gateway, unique, "dave", password="a wrong password").status == 401
    events = [e for e in gateway.audit_events() if e.get("action") == "auth:login"]
    mine = [e for e in events if e.get("resource") == "dave"]
    outcomes = sorted(e["outcome"] for e in mine)
    assert outcomes == ["failure", "success"]
    failure = next(e for e in mine if e["outcome"] == "failure")
    assert failure["reason"] == "invalid_credentials" and failure["principal_id"]
    dump = json.dumps(gateway.audit_events())
    assert PASSWORD not in dump and "a wrong password" not in dump
    assert token not in dump and token.split("_", 2)[2] not in dump


def test_a_repeated_unknown_session_token_costs_one_read(gateway: GatewayThread) -> None:
    # Signed with the platform's own key (as the id of a deleted principal's session is):
    # it is read once, then remembered as missing.  A forged one is never read.
    assert gateway.app.session_keys is not None
    keys = gateway.app.session_keys.current()
    unknown = issue_session(keys, datetime.now(UTC) + timedelta(hours=1)).token
    theirs = SessionKeys([SessionKey.generate(1, datetime.now(UTC))])
    forged = issue_session(theirs, datetime.now(UTC) + timedelta(hours=1)).token
    reads: list[str] = []

    def record(*args: Any) -> None:
        if "sign_in_sessions" in str(args[2]):
            reads.append(str(args[2]))

    engine = gateway.app.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(20):
            assert gateway.call("GET", "/v1/models", unknown).status == 401
            assert gateway.call("GET", "/v1/models", forged).status == 401
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(reads) == 1


# TOTP secrets at rest ----------------------------------------------------------------------


def credential(gw: GatewayThread, tenant: str | None, name: str) -> LocalCredentialRow:
    with gw.app.db.platform_transaction() as s:
        tenant_id = repo.get_tenant(s, tenant).id if tenant else None
        principal = repo.get_principal(s, tenant_id, name)
        row = s.get(LocalCredentialRow, principal.id)
        assert row is not None
        s.expunge(row)
        return row


def set_totp_secret(gw: GatewayThread, principal_id: str, value: bytes | None) -> None:
    with gw.app.db.platform_transaction() as s:
        row = s.get(LocalCredentialRow, principal_id)
        assert row is not None
        row.totp_secret, row.totp_last_step = value, None


def assert_not_in_row(row: LocalCredentialRow, secret: bytes) -> None:
    """No column holds the secret, raw, in base32 (any case, padded or not) or in hex."""
    encoded = base64.b32encode(secret).decode()
    needles = [
        secret,
        encoded.encode(),
        encoded.rstrip("=").lower().encode(),
        secret.hex().encode(),
    ]
    for column in LocalCredentialRow.__table__.columns:
        value = getattr(row, column.key)
        cell = value if isinstance(value, bytes) else json.dumps(value, default=str).encode()
        for needle in needles:
            assert needle.lower() not in cell.lower(), column.key


def test_totp_secrets_are_sealed_at_rest(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "fay", ["tenant_admin"])
    who = {"tenant": unique, "principal": "fay", "password": PASSWORD}
    started = gateway.call("POST", "/auth/v1/mfa/enroll", None, who)
    pending = secret_of(started.body["otpauth_uri"])
    assert_not_in_row(credential(gateway, unique, "fay"), pending)
    code = totp.totp(pending, time.time())
    assert gateway.call("POST", "/auth/v1/mfa/confirm", None, {**who, "totp": code}).status == 200
    row = credential(gateway, unique, "fay")
    assert row.totp_secret is not None and row.totp_secret.startswith(b"BHE1")
    assert row.pending_totp_secret is None
    assert_not_in_row(row, pending)
    signed = login(gateway, unique, "fay", totp=totp.totp(pending, time.time() + 30))
    assert signed.status == 200 and signed.body["mfa"] is True


def test_a_sealed_secret_copied_to_another_principal_fails_closed(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    for name in ("gus", "hal"):
        person(gateway, unique, name, ["end_user"])
    gus_secret, _ = enroll(gateway, unique, "gus")
    hal_secret, hal_codes = enroll(gateway, unique, "hal")
    gus, hal = credential(gateway, unique, "gus"), credential(gateway, unique, "hal")
    set_totp_secret(gateway, hal.principal_id, gus.totp_secret)
    for secret in (gus_secret, hal_secret):
        copied = login(gateway, unique, "hal", totp=totp.totp(secret, time.time() + 30))
        assert copied.status == 401, copied.body
        assert copied.body["error"]["code"] == "invalid_totp"
    # The recovery codes still get hal in; gus is untouched.
    assert login(gateway, unique, "hal", recovery_code=hal_codes[0]).status == 200
    assert login(gateway, unique, "gus", totp=totp.totp(gus_secret, time.time() + 30)).status == 200


def test_a_legacy_plaintext_secret_is_sealed_on_its_next_use(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    person(gateway, unique, "ida", ["end_user"])
    secret, _ = enroll(gateway, unique, "ida")
    principal_id = credential(gateway, unique, "ida").principal_id
    set_totp_secret(gateway, principal_id, secret)  # As a row from before migration 0015.
    assert login(gateway, unique, "ida", totp="000000").status == 401
    assert credential(gateway, unique, "ida").totp_secret == secret  # Sealed only on success.
    now = time.time()
    signed = login(gateway, unique, "ida", totp=totp.totp(secret, now))
    assert signed.status == 200, signed.body
    row = credential(gateway, unique, "ida")
    assert row.totp_secret is not None and row.totp_secret.startswith(b"BHE1")
    assert_not_in_row(row, secret)
    assert login(gateway, unique, "ida", totp=totp.totp(secret, now + 30)).status == 200


def test_platform_principals_seal_under_the_platform_key(gateway: GatewayThread) -> None:
    from bulkhead.identity.passwords import Passwords
    from bulkhead.store import signin

    # Made in the store: a platform principal sets only its own password through the API.
    with gateway.app.db.platform_transaction() as s:
        ops = repo.create_principal(s, None, "ops", PrincipalKind.USER, [Role.PLATFORM_ADMIN])
        signin.set_password(s, ops, Passwords().hash(PASSWORD))
    refused = gateway.admin("PUT", "/admin/v1/principals/ops/password", {"password": PASSWORD})
    assert refused.status == 403
    secret, _ = enroll(gateway, None, "ops")
    row = credential(gateway, None, "ops")
    assert row.totp_secret is not None and b"_platform" in row.totp_secret[:32]
    assert_not_in_row(row, secret)
    signed = login(gateway, None, "ops", totp=totp.totp(secret, time.time() + 30))
    assert signed.status == 200 and signed.body["role"] == "platform_admin"


# OIDC ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idps() -> Iterator[tuple[JwksServer, JwksServer, Any, Any]]:
    a, b = JwksServer(), JwksServer()
    a_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    b_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    a.publish("k1", a_key.public_key())
    b.publish("k1", b_key.public_key())
    yield a, b, a_key, b_key
    a.close()
    b.close()


def idp_token(key: Any, issuer: str, audience: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": issuer, "aud": audience, "exp": now + 300, "iat": now, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def test_idp_tokens_act_only_in_their_own_tenant(
    gateway: GatewayThread, unique: str, idps: tuple[JwksServer, JwksServer, Any, Any]
) -> None:
    a_srv, b_srv, a_key, _ = idps
    a, b = f"{unique}-a", f"{unique}-b"
    for name, srv in ((a, a_srv), (b, b_srv)):
        gateway.tenant(name)
        gateway.must(
            "PUT",
            f"/admin/v1/tenants/{name}/idp",
            {"issuer": f"https://idp.test/{name}", "audience": name, "jwks_url": srv.url},
        )
        gateway.must(
            "POST", f"/admin/v1/tenants/{name}/principals", {"name": "erin", "roles": ["end_user"]}
        )
    gateway.must(
        "POST", f"/admin/v1/tenants/{b}/principals", {"name": "only-b", "roles": ["end_user"]}
    )
    got = gateway.must("GET", f"/admin/v1/tenants/{a}/idp")
    assert got["issuer"] == f"https://idp.test/{a}"

    good = idp_token(a_key, f"https://idp.test/{a}", a, sub="erin", roles=["end_user"])
    assert gateway.call("GET", "/v1/models", good).status == 200
    # A's IdP vouching for a principal only B has: not provisioned in A.
    stray = idp_token(a_key, f"https://idp.test/{a}", a, sub="only-b", roles=["end_user"])
    assert gateway.call("GET", "/v1/models", stray).status == 401
    # A's key, claiming to be B's issuer (or audience): B's keys do not verify it.
    forged = idp_token(a_key, f"https://idp.test/{b}", b, sub="erin", roles=["end_user"])
    assert gateway.call("GET", "/v1/models", forged).status == 401
    wrong_aud = idp_token(a_key, f"https://idp.test/{a}", b, sub="erin", roles=["end_user"])
    assert gateway.call("GET", "/v1/models", wrong_aud).status == 401
    # An issuer belongs to one tenant.  (B has its IdP: replacing it needs a grant.)
    gateway.hold("admin:tenants.idp.set", b)
    taken = gateway.admin(
        "PUT",
        f"/admin/v1/tenants/{b}/idp",
        {"issuer": f"https://idp.test/{a}", "audience": b, "jwks_url": b_srv.url},
    )
    assert taken.status == 409
    # Platform roles in a tenant IdP's claims are ignored.
    only_platform = idp_token(
        a_key, f"https://idp.test/{a}", a, sub="erin", roles=["platform_admin"]
    )
    assert gateway.call("GET", "/admin/v1/tenants", only_platform).status == 401
    mixed = idp_token(
        a_key, f"https://idp.test/{a}", a, sub="erin", roles=["platform_admin", "end_user"]
    )
    assert gateway.call("GET", "/admin/v1/tenants", mixed).status == 403
    # Removing the IdP ends its tokens.
    assert gateway.admin("DELETE", f"/admin/v1/tenants/{a}/idp").status == 204
    assert gateway.call("GET", "/v1/models", good).status == 401


def test_idp_registration_is_validated(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    base = {"issuer": f"https://idp.test/{unique}", "audience": unique}
    bad_url = {**base, "jwks_url": "http://idp.example.test/jwks"}
    bad_role = {
        **base,
        "jwks_url": "https://idp.test/jwks",
        "claims": {"role_values": {"admins": "platform_admin"}},
    }
    for body in (bad_url, bad_role):
        response = gateway.admin("PUT", f"/admin/v1/tenants/{unique}/idp", body)
        assert response.status == 400, response.body
