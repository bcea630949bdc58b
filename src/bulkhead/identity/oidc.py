"""OpenID Connect ID/access tokens (JWT, RFC 7519) from a tenant's identity provider.

What is checked, and in what order:

1. The token is a JWS whose header names an algorithm the IdP allows:
   RS256 or ES256 only.  `none` and every HMAC algorithm are refused before any
   key is looked at, so a token "signed" with the IdP's public key as an HMAC
   secret (the RS/HS confusion attack) never reaches a verifier.
2. The key comes from the IdP's JWKS by `kid`, and its type must fit the
   algorithm (an RSA key for RS256, a P-256 key for ES256).
3. The signature, then `iss` and `aud` against the IdP's configuration, then
   `exp` (required) and `nbf` (if present) with `SKEW_S` of leeway.

The issuer in the unverified payload only picks which IdP's keys to try; a
token another issuer signed fails at step 3.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError

from bulkhead.crypto.certs import jwt_key_fits
from bulkhead.domain import MFA_AMR, ROLE_PRECEDENCE, TENANT_ROLES, IdpConfig, Role
from bulkhead.errors import Unauthenticated
from bulkhead.identity.jwks import Fetch, JwksCache, fetch_url

SKEW_S = 60
_JTI = re.compile("[\x21-\x7e]{1,64}")
ALLOWED = frozenset({"RS256", "ES256"})


def _invalid(message: str = "The identity token is invalid.") -> Unauthenticated:
    return Unauthenticated(message, code="invalid_token")


def peek_issuer(token: str) -> str:
    """The `iss` claim of a token, unverified: it only selects the IdP to verify against."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except InvalidTokenError:
        raise _invalid() from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise _invalid()
    return issuer


def token_id(token: str, claims: Mapping[str, Any]) -> str:
    """A name for the token in audit events: its `jti`, else a hash (never the token).

    The IdP chose the `jti`, so it is used only when it is 1 to 64 printable
    ASCII characters; anything else (a lone surrogate, a control character,
    a number, a novel) names the token by its hash instead.
    """
    jti = claims.get("jti")
    if isinstance(jti, str) and _JTI.fullmatch(jti):
        return f"jwt:{jti}"
    return "jwt:" + hashlib.sha256(token.encode()).hexdigest()[:24]


def _check_key(alg: str, key: Any) -> None:
    if not jwt_key_fits(alg, key):
        raise _invalid()


class OidcValidator:
    """Validates tokens against the IdP they claim; one JWKS cache per JWKS URL."""

    def __init__(self, *, fetch: Fetch = fetch_url, min_refresh_s: float = 30.0):
        self._fetch = fetch
        self._min_refresh_s = min_refresh_s
        self._caches: dict[str, JwksCache] = {}

    def jwks(self, url: str) -> JwksCache:
        cache = self._caches.get(url)
        if cache is None:
            cache = self._caches.setdefault(
                url, JwksCache(url, fetch=self._fetch, min_refresh_s=self._min_refresh_s)
            )
        return cache

    def validate(self, idp: IdpConfig, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The token's verified claims; raise `Unauthenticated` on any failure."""
        try:
            header = jwt.get_unverified_header(token)
        except InvalidTokenError:
            raise _invalid() from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in (idp.algorithms & ALLOWED):
            raise _invalid("The identity token's algorithm is not accepted.")
        if not isinstance(kid, str) or not kid:
            raise _invalid()
        jwk = self.jwks(idp.jwks_url).key(kid)
        declared = getattr(jwk, "_jwk_data", {}).get("alg")
        if declared is not None and declared != alg:
            raise _invalid()
        _check_key(alg, jwk.key)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=jwk.key,
                algorithms=[alg],
                audience=idp.audience,
                issuer=idp.issuer,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iss", "aud"],
                },
            )
        except InvalidTokenError:
            raise _invalid() from None
        check_times(claims, time.time() if now is None else now)
        return claims


def check_times(claims: Mapping[str, Any], now: float) -> None:
    """RFC 7519 §4.1.4 and §4.1.5, with SKEW_S of leeway for clock drift."""
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or now > exp + SKEW_S:
        raise _invalid("The identity token has expired.")
    if nbf is not None and (not isinstance(nbf, int | float) or now + SKEW_S < nbf):
        raise _invalid("The identity token is not valid yet.")


@dataclass(frozen=True, slots=True)
class MappedIdentity:
    """What a verified token says about its bearer, after the IdP's claim mapping."""

    principal: str
    role: Role
    mfa: bool
    attributes: Mapping[str, Any] = field(default_factory=dict)


def _values(claim: Any) -> list[str]:
    if isinstance(claim, str):
        return claim.split()
    if isinstance(claim, list):
        return [v for v in claim if isinstance(v, str)]
    return []


def _role(value: str) -> Role | None:
    try:
        return Role(value)
    except ValueError:
        return None


def map_claims(idp: IdpConfig, claims: Mapping[str, Any]) -> MappedIdentity:
    """Principal name, one tenant role and attributes; platform roles are never granted."""
    mapping = idp.mapping
    principal = claims.get(mapping.principal)
    if not isinstance(principal, str) or not principal:
        raise _invalid("The identity token does not name a principal.")
    roles: set[Role] = set()
    for value in _values(claims.get(mapping.roles)):
        role = mapping.role_values.get(value) if mapping.role_values else _role(value)
        if role is not None and role in TENANT_ROLES:
            roles.add(role)
    if not roles and mapping.default_role is not None:
        roles.add(mapping.default_role)
    role = next((r for r in ROLE_PRECEDENCE if r in roles), None)
    if role is None:
        raise Unauthenticated("The identity token grants no role in this tenant.", code="no_role")
    mfa = any(v in MFA_AMR for v in _values(claims.get("amr")))
    if role is Role.TENANT_ADMIN and idp.require_mfa_for_admin and not mfa:
        raise Unauthenticated(
            "The tenant_admin role needs multi-factor sign-in at the identity provider.",
            code="mfa_required",
        )
    attributes = {
        name: claims[claim]
        for name, claim in mapping.attributes.items()
        if isinstance(claims.get(claim), str | int | float | bool | list)
    }
    return MappedIdentity(principal, role, mfa, attributes)
