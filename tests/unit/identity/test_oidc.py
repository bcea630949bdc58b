"""OIDC token validation against a real JWKS served on 127.0.0.1, with keys made here.

Each attack is named and must fail: `alg: none`, HS256 signed with the RSA
public key (algorithm confusion), expired, not yet valid, wrong audience,
wrong issuer, an unknown key id, and a key of the wrong type for its `alg`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bulkhead.domain import ClaimMapping, IdpConfig, Role
from bulkhead.errors import Unauthenticated
from bulkhead.identity import OidcValidator, map_claims, peek_issuer
from bulkhead.identity.idp_fetch import IdpFetcher, idp_egress
from bulkhead.identity.jwks import check_jwks_url

ISSUER = "https://idp.example.test/acme"
AUDIENCE = "bulkhead-acme"
# The JWKS servers here listen on 127.0.0.1: reached only through the operator's allowance.
LOOPBACK = IdpFetcher(idp_egress(("127.0.0.1/32",)))


class JwksServer:
    """Serves `self.keys` as a JWKS document and counts the requests."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, kid: str, public_key: Any) -> None:
        algo = RSAAlgorithm if isinstance(public_key, rsa.RSAPublicKey) else ECAlgorithm
        jwk = algo.to_jwk(public_key, as_dict=True)
        self.keys.append({**jwk, "kid": kid, "use": "sig"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def server(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> Iterator[JwksServer]:
    srv = JwksServer()
    srv.publish("rsa-1", rsa_key.public_key())
    srv.publish("ec-1", ec_key.public_key())
    yield srv
    srv.close()


@pytest.fixture
def idp(server: JwksServer) -> IdpConfig:
    return IdpConfig(
        tenant_id="ten_a",
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=server.url,
        mapping=ClaimMapping.from_json(
            {"principal": "email", "roles": "groups", "role_values": {"llm-users": "end_user"}}
        ),
    )


@pytest.fixture
def validator() -> OidcValidator:
    return OidcValidator(fetch=LOOPBACK.fetch, min_refresh_s=0.0)


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u-1",
        "email": "alice@acme.test",
        "groups": ["llm-users"],
        "iat": now,
        "exp": now + 300,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, alg: str, kid: str, **over: Any) -> str:
    return jwt.encode(claims(**over), key, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# What must pass -------------------------------------------------------------------------------


def test_rs256_token_verifies(validator: OidcValidator, idp: IdpConfig, rsa_key: Any) -> None:
    got = validator.validate(idp, sign(rsa_key, "RS256", "rsa-1"))
    assert got["email"] == "alice@acme.test"


def test_es256_token_verifies(validator: OidcValidator, idp: IdpConfig, ec_key: Any) -> None:
    assert validator.validate(idp, sign(ec_key, "ES256", "ec-1"))["sub"] == "u-1"


def test_small_clock_skew_is_tolerated(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any
) -> None:
    now = int(time.time())
    token = sign(rsa_key, "RS256", "rsa-1", exp=now - 30, nbf=now + 30)
    validator.validate(idp, token)


def test_the_jwks_is_fetched_once_and_cached(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any, server: JwksServer
) -> None:
    for _ in range(5):
        validator.validate(idp, sign(rsa_key, "RS256", "rsa-1"))
    assert server.hits == 1


def test_a_rotated_key_is_picked_up_on_its_first_token(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any, server: JwksServer
) -> None:
    validator.validate(idp, sign(rsa_key, "RS256", "rsa-1"))
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server.publish("rsa-2", new_key.public_key())
    assert validator.validate(idp, sign(new_key, "RS256", "rsa-2"))["sub"] == "u-1"
    assert server.hits == 2


# Attacks: each must fail ------------------------------------------------------------------------


def refused(validator: OidcValidator, idp: IdpConfig, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        validator.validate(idp, token)
    return caught.value


def test_alg_none_is_refused(validator: OidcValidator, idp: IdpConfig) -> None:
    header = b64(json.dumps({"alg": "none", "kid": "rsa-1", "typ": "JWT"}).encode())
    token = f"{header}.{b64(json.dumps(claims()).encode())}."
    # The one answer for every failure before the signature (issue 12, item 18).
    assert refused(validator, idp, token).message == "The identity token is invalid."


def test_hs256_signed_with_the_rsa_public_key_is_refused(
    validator: OidcValidator, idp: IdpConfig, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The classic RS/HS confusion: the attacker knows the public key and uses it as an
    # HMAC secret, hoping the verifier feeds the same key to HMAC.  Signed by hand,
    # since PyJWT itself refuses to use a PEM key as an HMAC secret.
    import hashlib
    import hmac

    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    refused(validator, idp, f"{header}.{payload}.{b64(mac)}")


def test_rs256_header_with_an_ec_key_id_is_refused(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any
) -> None:
    refused(validator, idp, sign(rsa_key, "RS256", "ec-1"))


def test_an_expired_token_is_refused(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any
) -> None:
    token = sign(rsa_key, "RS256", "rsa-1", exp=int(time.time()) - 120)
    assert "expired" in refused(validator, idp, token).message


def test_a_token_without_exp_is_refused(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any
) -> None:
    refused(validator, idp, sign(rsa_key, "RS256", "rsa-1", exp=None))


def test_a_token_not_valid_yet_is_refused(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any
) -> None:
    token = sign(rsa_key, "RS256", "rsa-1", nbf=int(time.time()) + 600)
    assert "not valid yet" in refused(validator, idp, token).message


def test_the_wrong_audience_is_refused(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any
) -> None:
    refused(validator, idp, sign(rsa_key, "RS256", "rsa-1", aud="some-other-app"))


def test_the_wrong_issuer_is_refused(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any
) -> None:
    refused(validator, idp, sign(rsa_key, "RS256", "rsa-1", iss="https://evil.test/"))


def test_a_tampered_payload_is_refused(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any
) -> None:
    header, _, signature = sign(rsa_key, "RS256", "rsa-1").split(".")
    payload = b64(json.dumps(claims(email="root@acme.test")).encode())
    refused(validator, idp, f"{header}.{payload}.{signature}")


def test_a_key_the_idp_does_not_publish_is_refused_after_one_refresh(
    validator: OidcValidator, idp: IdpConfig, rsa_key: Any, server: JwksServer
) -> None:
    validator.validate(idp, sign(rsa_key, "RS256", "rsa-1"))
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # Refused with the one answer a bad signature gets (issue 12, item 18).
    assert refused(validator, idp, sign(attacker, "RS256", "kid-x")).message == (
        "The identity token is invalid."
    )
    assert server.hits == 2  # It looked again once, in case the IdP had rotated.


def test_an_attacker_key_under_a_known_kid_is_refused(
    validator: OidcValidator, idp: IdpConfig
) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(validator, idp, sign(attacker, "RS256", "rsa-1"))


def test_unknown_kids_do_not_refetch_within_the_minimum_interval(
    idp: IdpConfig, rsa_key: Any, server: JwksServer
) -> None:
    validator = OidcValidator(fetch=LOOPBACK.fetch, min_refresh_s=60.0)
    validator.validate(idp, sign(rsa_key, "RS256", "rsa-1"))
    for i in range(10):
        refused(validator, idp, sign(rsa_key, "RS256", f"made-up-{i}"))
    assert server.hits == 1


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "..."])
def test_garbage_is_refused(validator: OidcValidator, idp: IdpConfig, token: str) -> None:
    refused(validator, idp, token)


def test_another_tenants_idp_keys_do_not_verify_this_tenants_issuer(
    validator: OidcValidator, idp: IdpConfig, ec_key: Any
) -> None:
    # Tenant B's IdP (other keys, same JWKS shape) signs a token naming tenant A's issuer.
    other = JwksServer()
    try:
        b_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other.publish("rsa-1", b_key.public_key())
        refused(validator, idp, sign(b_key, "RS256", "rsa-1"))
    finally:
        other.close()


# Claims -> principal, role, attributes ---------------------------------------------------------


def test_peek_issuer_reads_iss_without_verifying(rsa_key: Any) -> None:
    assert peek_issuer(sign(rsa_key, "RS256", "rsa-1")) == ISSUER
    with pytest.raises(Unauthenticated):
        peek_issuer("not-a-token")


def test_claims_map_to_principal_role_and_attributes(idp: IdpConfig) -> None:
    mapping = ClaimMapping.from_json(
        {"principal": "email", "roles": "groups", "attributes": {"department": "dept"}}
    )
    config = IdpConfig("ten_a", ISSUER, AUDIENCE, "https://x/", mapping=mapping)
    got = map_claims(config, claims(groups=["model_developer", "end_user"], dept="research"))
    assert (got.principal, got.role, got.attributes) == (
        "alice@acme.test",
        Role.MODEL_DEVELOPER,
        {"department": "research"},
    )


def test_platform_roles_are_never_granted_by_a_tenant_idp(idp: IdpConfig) -> None:
    config = IdpConfig("ten_a", ISSUER, AUDIENCE, "https://x/", mapping=ClaimMapping())
    got = map_claims(config, claims(roles=["platform_admin", "end_user"]))
    assert got.role is Role.END_USER
    with pytest.raises(Unauthenticated):
        map_claims(config, claims(roles=["platform_admin"]))
    with pytest.raises(ValueError, match="platform role"):
        ClaimMapping.from_json({"role_values": {"admins": "platform_admin"}})


def test_tenant_admin_needs_mfa_asserted_by_the_idp() -> None:
    config = IdpConfig("ten_a", ISSUER, AUDIENCE, "https://x/", mapping=ClaimMapping())
    with pytest.raises(Unauthenticated) as caught:
        map_claims(config, claims(roles=["tenant_admin"]))
    assert caught.value.code == "mfa_required"
    assert map_claims(config, claims(roles=["tenant_admin"], amr=["pwd", "otp"])).mfa


@pytest.mark.parametrize(
    "url", ["http://idp.example.test/jwks", "ftp://127.0.0.1/x", "file:///etc/passwd", "x"]
)
def test_jwks_urls_must_be_https_except_on_loopback(url: str) -> None:
    with pytest.raises(ValueError):
        check_jwks_url(url)
    check_jwks_url("https://idp.example.test/jwks")
    check_jwks_url("http://127.0.0.1:8080/jwks")
