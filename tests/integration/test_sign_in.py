"""People signing in through the gateway: password + TOTP sessions, and tenant IdP tokens.

The IdPs are real JWKS documents served on 127.0.0.1 with keys made here.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkhead.identity import totp
from tests.support.gateway import GatewayThread
from tests.unit.identity.test_oidc import JwksServer

PASSWORD = "correct horse battery staple"


def login(gw: GatewayThread, tenant: str | None, principal: str, **extra: Any) -> Any:
    body = {"principal": principal, "password": PASSWORD, **extra}
    if tenant is not None:
        body["tenant"] = tenant
    return gw.call("POST", "/auth/v1/login", None, body)


def person(gw: GatewayThread, tenant: str, name: str, roles: list[str]) -> None:
    gw.must("POST", f"/admin/v1/tenants/{tenant}/principals", {"name": name, "roles": roles})
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
    locked = login(gateway, unique, "carol")
    assert locked.status == 429 and locked.body["error"]["code"] == "account_locked"
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
    # An issuer belongs to one tenant.
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
