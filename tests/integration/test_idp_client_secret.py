"""Replacing a tenant's IdP and its sealed client secret (`PUT /admin/v1/tenants/{name}/idp`).

The rule: a `client_secret` sets the secret, `null` clears it, and leaving it out keeps
the stored one, but only while the issuer and client id (`audience`) stay: a secret is
never carried to another IdP or client (400, `param: client_secret`).  The attacker here
holds the route (a tenant's first admin, or a platform admin with a grant) and wants the
tenant's secret sent to a provider it runs.  The console sign-in that uses the secret is
tested against a real provider in tests/integration/test_console_oidc.py.
"""

from __future__ import annotations

from typing import Any

from bulkhead.identity.oidc_login import MAX_CLIENT_SECRET
from bulkhead.store import repo, signin
from tests.support.gateway import GatewayThread

SECRET = "s3cr3t-idp-client-secret-0123456789"


def sealed(gw: GatewayThread, tenant: str) -> bytes | None:
    with gw.app.db.platform_transaction() as s:
        return signin.sealed_client_secret(s, repo.get_tenant(s, tenant).id)


def put(gw: GatewayThread, tenant: str, body: dict[str, Any]) -> Any:
    """A replacement by the platform admin: the IdP exists, so it holds a fresh grant."""
    gw.hold("admin:tenants.idp.set", tenant, again=True)
    return gw.admin("PUT", f"/admin/v1/tenants/{tenant}/idp", body)


def base(tenant: str) -> dict[str, Any]:
    return {
        "issuer": f"https://idp.test/{tenant}",
        "audience": f"{tenant}-console",
        "jwks_url": f"https://idp.test/{tenant}/jwks",
    }


def test_leaving_the_secret_out_keeps_it_for_the_same_client(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    # The tenant's first IdP: no grant needed (its first admin), secret set.
    first = gateway.must(
        "PUT", f"/admin/v1/tenants/{unique}/idp", {**base(unique), "client_secret": SECRET}
    )
    assert first["client_secret_set"] is True and SECRET not in str(first)
    stored = sealed(gateway, unique)
    assert stored is not None and SECRET.encode() not in stored

    # Same issuer and client id, other settings changed, no `client_secret`: kept as is.
    edited = {
        **base(unique),
        "jwks_url": f"https://idp.test/{unique}/keys",
        "claims": {"roles": "groups"},
        "require_mfa_for_admin": False,
    }
    answer = put(gateway, unique, edited)
    assert answer.status == 200 and answer.body["client_secret_set"] is True, answer.body
    assert sealed(gateway, unique) == stored
    assert gateway.must("GET", f"/admin/v1/tenants/{unique}/idp")["client_secret_set"] is True

    # An explicit null clears it (a public client).
    cleared = put(gateway, unique, {**base(unique), "client_secret": None})
    assert cleared.status == 200 and cleared.body["client_secret_set"] is False, cleared.body
    assert sealed(gateway, unique) is None
    # Nothing stored, nothing to keep: leaving it out stays without one.
    again = put(gateway, unique, base(unique))
    assert again.status == 200 and again.body["client_secret_set"] is False


def test_the_secret_never_follows_a_new_issuer_or_client(
    gateway: GatewayThread, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.must(
        "PUT", f"/admin/v1/tenants/{unique}/idp", {**base(unique), "client_secret": SECRET}
    )
    stored = sealed(gateway, unique)
    # The attacker points the tenant at its own provider, or another client at the same one,
    # and leaves the secret out, hoping the console sends the old one there.
    for moved in (
        {**base(unique), "issuer": f"https://evil.test/{unique}"},
        {**base(unique), "audience": "attacker-client"},
        {**base(unique), "issuer": f"https://evil.test/{unique}", "audience": "x"},
    ):
        refused = put(gateway, unique, moved)
        assert refused.status == 400, refused.body
        error = refused.body["error"]
        assert error["param"] == "client_secret" and "client_secret" in error["message"]
        assert SECRET not in str(refused.body)
        got = gateway.must("GET", f"/admin/v1/tenants/{unique}/idp")
        assert (
            got["issuer"] == base(unique)["issuer"] and got["audience"] == base(unique)["audience"]
        )
        assert sealed(gateway, unique) == stored  # nothing changed

    # Moving with an explicit null: the old secret is gone, not carried.
    moved = {**base(unique), "issuer": f"https://new.test/{unique}", "client_secret": None}
    answer = put(gateway, unique, moved)
    assert answer.status == 200 and answer.body["client_secret_set"] is False, answer.body
    assert sealed(gateway, unique) is None

    # Moving with a new secret: that one, sealed afresh.
    other = "another-client-secret-abcdef"
    fresh = {**base(unique), "audience": "new-client", "client_secret": other}
    answer = put(gateway, unique, fresh)
    assert answer.status == 200 and answer.body["client_secret_set"] is True, answer.body
    now = sealed(gateway, unique)
    assert now is not None and now != stored and other.encode() not in now


def test_a_bad_secret_is_a_clear_400(gateway: GatewayThread, unique: str) -> None:
    gateway.tenant(unique)
    for bad in ("", 7, ["x"], {"a": 1}, "x" * (MAX_CLIENT_SECRET + 1)):
        answer = gateway.admin(
            "PUT", f"/admin/v1/tenants/{unique}/idp", {**base(unique), "client_secret": bad}
        )
        assert answer.status == 400, (bad if len(str(bad)) < 20 else len(str(bad)), answer.body)
        assert "x" * 64 not in str(answer.body)  # the value is not echoed
    # Nothing was registered by the refused calls.
    assert gateway.admin("GET", f"/admin/v1/tenants/{unique}/idp").status == 404


def test_the_rule_is_in_the_openapi_description(gateway: GatewayThread) -> None:
    document = gateway.admin("GET", "/openapi.json")
    assert document.status == 200
    text = str(document.body)
    assert "absent keeps the stored one" in text and "null clears it" in text
