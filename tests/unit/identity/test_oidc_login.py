"""The console's OIDC sign-in checks, with ID tokens a real provider would never issue.

Each token is signed here with a key whose JWKS is served on 127.0.0.1 and must be
refused: a wrong nonce, a wrong issuer, `alg: none`, HS256 keyed with the RSA public
key, expired, from the future, for another client (`aud`, `azp`).  Also the pre-auth
cookie (tampered, another platform's key, expired, replayed state) and the discovery
document (another issuer's, no S256, endpoints off https).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkhead.domain import IdpConfig
from bulkhead.errors import Unauthenticated
from bulkhead.identity.oidc import OidcValidator
from bulkhead.identity.oidc_login import (
    PRE_AUTH_TTL_S,
    PreAuth,
    SpentStates,
    challenge,
    discovery,
    id_token_claims,
)
from bulkhead.identity.sessions import SessionKey, SessionKeys
from tests.unit.identity.test_oidc import LOOPBACK, JwksServer

ISSUER = "https://idp.example.test/acme"
CLIENT = "acme-console"
NOW = datetime.now(UTC)
KEYS = SessionKeys([SessionKey.generate(1, NOW - timedelta(hours=1))])


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def idp(key: rsa.RSAPrivateKey) -> Iterator[IdpConfig]:
    server = JwksServer()
    server.publish("k1", key.public_key())
    yield IdpConfig(tenant_id="ten_a", issuer=ISSUER, audience=CLIENT, jwks_url=server.url)
    server.close()


@pytest.fixture
def flow() -> PreAuth:
    return PreAuth.begin("ten_a")


def token(key: Any, flow: PreAuth, alg: str = "RS256", **over: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": CLIENT, "sub": "alice", "exp": now + 300, "iat": now}
    body |= {"nonce": flow.nonce, **over}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, alg, {"kid": "k1"})


def check(idp: IdpConfig, raw: Any, flow: PreAuth) -> dict[str, Any]:
    return id_token_claims(
        OidcValidator(fetch=LOOPBACK.fetch, min_refresh_s=0), idp, raw, flow, now=time.time()
    )


def refused(idp: IdpConfig, raw: Any, flow: PreAuth) -> str:
    with pytest.raises(Unauthenticated) as caught:
        check(idp, raw, flow)
    return caught.value.message


def test_a_good_token_passes(idp: IdpConfig, key: Any, flow: PreAuth) -> None:
    assert check(idp, token(key, flow), flow)["sub"] == "alice"
    assert check(idp, token(key, flow, azp=CLIENT, aud=[CLIENT, "x"]), flow)["sub"] == "alice"


def test_a_wrong_or_missing_nonce_is_refused(idp: IdpConfig, key: Any, flow: PreAuth) -> None:
    assert "not issued for this sign-in" in refused(idp, token(key, flow, nonce="x" * 43), flow)
    assert "not issued for this sign-in" in refused(idp, token(key, flow, nonce=None), flow)
    other = PreAuth.begin("ten_a")
    assert "not issued for this sign-in" in refused(idp, token(key, other), flow)


def test_a_wrong_issuer_or_audience_is_refused(idp: IdpConfig, key: Any, flow: PreAuth) -> None:
    assert refused(idp, token(key, flow, iss="https://evil.test"), flow)
    assert refused(idp, token(key, flow, aud="other-client"), flow)


def test_another_clients_azp_is_refused(idp: IdpConfig, key: Any, flow: PreAuth) -> None:
    assert "another client" in refused(idp, token(key, flow, azp="other-client"), flow)
    assert "another client" in refused(idp, token(key, flow, aud=[CLIENT, "other"]), flow)


def test_alg_none_and_hs256_with_the_public_key_are_refused(
    idp: IdpConfig, key: rsa.RSAPrivateKey, flow: PreAuth
) -> None:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": CLIENT, "sub": "alice", "exp": now + 60, "iat": now}
    body["nonce"] = flow.nonce
    header = {"alg": "none", "kid": "k1", "typ": "JWT"}
    parts = [base64.urlsafe_b64encode(json.dumps(x).encode()).rstrip(b"=") for x in (header, body)]
    assert refused(idp, b".".join(parts).decode() + ".", flow)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k1","typ":"JWT"}').rstrip(b"=")
    signing_input = hs_header + b"." + parts[1]
    tag = hmac.new(public, signing_input, hashlib.sha256).digest()
    forged = signing_input + b"." + base64.urlsafe_b64encode(tag).rstrip(b"=")
    assert refused(idp, forged.decode(), flow)


def test_expired_and_future_tokens_are_refused(idp: IdpConfig, key: Any, flow: PreAuth) -> None:
    now = int(time.time())
    assert "expired" in refused(idp, token(key, flow, exp=now - 120, iat=now - 400), flow)
    assert "issue time" in refused(idp, token(key, flow, iat=now + 600), flow)
    assert "issue time" in refused(idp, token(key, flow, iat=None), flow)
    assert "not valid yet" in refused(idp, token(key, flow, nbf=now + 600), flow)


def test_another_key_and_no_token_are_refused(idp: IdpConfig, flow: PreAuth) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refused(idp, token(stranger, flow), flow)
    for raw in (None, "", 42, "a.b.c"):
        assert refused(idp, raw, flow)


# The pre-auth cookie --------------------------------------------------------------------------


def test_the_cookie_round_trips_and_hides_its_secrets(flow: PreAuth) -> None:
    opened = PreAuth.open(flow.seal(KEYS, NOW), KEYS, NOW)
    assert opened == flow
    assert flow.state not in repr(flow) and flow.verifier not in repr(flow)
    assert flow.expires - time.time() <= PRE_AUTH_TTL_S
    assert len(challenge(flow.verifier)) == 43


def test_a_tampered_foreign_or_expired_cookie_is_refused(flow: PreAuth) -> None:
    sealed = flow.seal(KEYS, NOW)
    payload, tag = sealed.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    swapped = base64.urlsafe_b64encode(json.dumps({**body, "t": "ten_b"}).encode()).decode()
    theirs = SessionKeys([SessionKey.generate(1, NOW - timedelta(hours=1))])
    for value in (
        None,
        "",
        "x" * 5000,
        payload,
        f"{payload}.{'A' * 43}",
        f"{swapped.rstrip('=')}.{tag}",
        flow.seal(theirs, NOW),
        "!!!.???",
    ):
        with pytest.raises(Unauthenticated):
            PreAuth.open(value, KEYS, NOW)
    with pytest.raises(Unauthenticated):
        PreAuth.open(sealed, KEYS, datetime.fromtimestamp(flow.expires + 1, UTC))


def test_the_state_is_compared_and_spent_once(flow: PreAuth) -> None:
    flow.check_state(flow.state)
    for sent in (None, "", flow.state + "x", flow.state[:-1]):
        with pytest.raises(Unauthenticated):
            flow.check_state(sent)
    spent = SpentStates()
    spent.spend(flow, time.time())
    with pytest.raises(Unauthenticated):
        spent.spend(flow, time.time())
    spent.spend(PreAuth.begin("ten_a"), time.time())


# The discovery document ----------------------------------------------------------------------


def test_discovery_must_be_the_issuers_own_with_s256_and_https(idp: IdpConfig) -> None:
    good = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/auth",
        "token_endpoint": ISSUER + "/token",
        "code_challenge_methods_supported": ["S256"],
    }
    assert discovery(idp, good).token_endpoint == ISSUER + "/token"
    assert not discovery(idp, good).iss_parameter
    # RFC 9207: only a literal true makes the callback's `iss` required.
    for said, required in ((True, True), (False, False), ("true", False), (1, False)):
        named = {**good, "authorization_response_iss_parameter_supported": said}
        assert discovery(idp, named).iss_parameter is required
    for bad in (
        {**good, "issuer": "https://evil.test"},
        {**good, "code_challenge_methods_supported": ["plain"]},
        {**good, "token_endpoint": "http://169.254.169.254/token"},
        {**good, "authorization_endpoint": "javascript:alert(1)"},
        {**good, "token_endpoint": None},
        # Into our Location header as sent: CR LF (a 5xx from the server), spaces, non-ASCII.
        {**good, "authorization_endpoint": ISSUER + "/auth\r\nSet-Cookie: __Host-x=1"},
        {**good, "authorization_endpoint": ISSUER + "/a b"},
        {**good, "authorization_endpoint": ISSUER + "/\u00e9"},
        {**good, "token_endpoint": ISSUER + "/token\x00"},
        {**good, "token_endpoint": ISSUER + "/" + "t" * 2048},
        [],
        None,
    ):
        with pytest.raises(Unauthenticated):
            discovery(idp, bad)
