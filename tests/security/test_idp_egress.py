"""A tenant's IdP never makes the gateway reach a platform-internal address (the API path).

A JWKS URL pointing inside: the gateway's own loopback (where a server here counts
requests), `localhost`, the cloud metadata service and a private 10.x address.  This
module's gateway has no `BULKHEAD_IDP_ALLOW_CIDRS`, as in production by default.  An IP
literal is refused at registration (400); one stored before that rule, and a name that
resolves inside, reach the fetch: a bearer ID token for the tenant makes the gateway
fetch the JWKS, which is refused before any byte is sent, the caller gets the one 401
for a token that does not verify (nothing says why), and the operator's log says what
was refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkhead.domain import ClaimMapping, IdpConfig
from bulkhead.store import signin
from tests.security.test_policy_input import register_idp, token
from tests.support.gateway import GatewayThread
from tests.unit.identity.test_oidc import JwksServer

INSIDE = {
    "loopback": lambda url: url,
    "localhost": lambda url: url.replace("127.0.0.1", "localhost"),
    "metadata": lambda url: "https://169.254.169.254/latest/meta-data/jwks.json",
    "private": lambda url: "https://10.0.0.5/jwks.json",
}


@pytest.fixture(scope="module")
def idp() -> Iterator[tuple[JwksServer, rsa.RSAPrivateKey]]:
    server = JwksServer()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server.publish("k1", key.public_key())
    yield server, key
    server.close()


@pytest.mark.parametrize("where", sorted(INSIDE))
def test_a_jwks_url_inside_the_platform_is_never_fetched(
    gateway: GatewayThread,
    unique: str,
    idp: tuple[JwksServer, Any],
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, key = idp
    tenant = gateway.tenant(unique)
    url = INSIDE[where](server.url)
    if where == "localhost":
        issuer = register_idp(gateway, unique, url)
    else:  # a literal: refused at registration, so stored as one from before that rule
        issuer = f"https://idp.test/{unique}"
        stored = IdpConfig(
            tenant_id=tenant["id"],
            issuer=issuer,
            audience=unique,
            jwks_url=url,
            mapping=ClaimMapping.from_json({}),
        )
        with gateway.app.db.platform_transaction() as session:
            signin.put_idp(session, stored)
        gateway.app.catalog.reload()
    gateway.must(
        "POST", f"/admin/v1/tenants/{unique}/principals", {"name": "erin", "roles": ["end_user"]}
    )
    before = server.hits
    caplog.set_level(logging.WARNING, logger="bulkhead.identity")
    bearer = token(key, issuer, unique, sub="erin", roles=["end_user"])
    answer = gateway.call("GET", "/v1/models", bearer)
    assert answer.status == 401, answer.body
    assert answer.body["error"]["message"] == "The identity token is invalid."
    assert answer.body["error"]["code"] == "invalid_token"
    assert server.hits == before
    logged = [r.getMessage() for r in caplog.records if r.name == "bulkhead.identity"]
    assert any("refused" in line for line in logged), logged
    assert not any("jwks.json" in line for line in logged), logged


@pytest.mark.parametrize("where", ["loopback", "metadata", "private"])
def test_a_jwks_url_at_an_internal_address_is_refused_at_registration(
    gateway: GatewayThread, unique: str, idp: tuple[JwksServer, Any], where: str
) -> None:
    gateway.tenant(unique)
    body = {"issuer": f"https://idp.test/{unique}", "audience": unique}
    answer = gateway.admin(
        "PUT", f"/admin/v1/tenants/{unique}/idp", {**body, "jwks_url": INSIDE[where](idp[0].url)}
    )
    assert answer.status == 400, answer.body
    assert answer.body["error"]["param"] == "jwks_url"
    assert "BULKHEAD_IDP_ALLOW_CIDRS" in answer.body["error"]["message"]
    assert gateway.admin("GET", f"/admin/v1/tenants/{unique}/idp").status == 404
