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
token another issuer signed fails at step 3.  Every failure up to and
including the signature gives one answer, `INVALID`: whether an issuer is
registered, or a key id known, is nobody's business before a valid signature.

The claims then map (`map_claims`) to one role, which must be one the
provisioned principal holds, and to attributes for policy: never a reserved
one, and only small flat values.
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
from bulkhead.domain import (
    ROLE_PRECEDENCE,
    TENANT_ROLES,
    IdpConfig,
    Role,
    mappable,
    multi_factor,
)
from bulkhead.errors import Unauthenticated
from bulkhead.identity.jwks import INVALID, Fetch, JwksCache

SKEW_S = 60
_JTI = re.compile("[\x21-\x7e]{1,64}")
ALLOWED = frozenset({"RS256", "ES256"})
# What of a claim may reach the tenant context (and so policy).
MAX_CLAIM_CHARS = 256
MAX_CLAIM_ITEMS = 16


def _invalid(message: str = INVALID) -> Unauthenticated:
    return Unauthenticated(message, code="invalid_token")


def invalid_token() -> Unauthenticated:
    """The one answer for an unknown issuer, key id or algorithm, and a bad signature."""
    return _invalid()


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
    """Validates tokens against the IdP they claim; one JWKS cache per JWKS URL.

    `fetch` reads a JWKS: the gateway's is `identity/idp_fetch.IdpFetcher.fetch`,
    which holds to the IdP egress policy (there is deliberately no default).
    """

    def __init__(self, *, fetch: Fetch, min_refresh_s: float = 30.0):
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
            raise _invalid()
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


def claimed_principal(idp: IdpConfig, claims: Mapping[str, Any]) -> str:
    """The principal name the token names (the tenant must have provisioned it)."""
    principal = claims.get(idp.mapping.principal)
    if not isinstance(principal, str) or not principal:
        raise _invalid("The identity token does not name a principal.")
    return principal


def _claimed_roles(idp: IdpConfig, claims: Mapping[str, Any]) -> set[Role]:
    """The tenant roles the token claims (its IdP's default if it claims none)."""
    mapping = idp.mapping
    roles: set[Role] = set()
    for value in _values(claims.get(mapping.roles)):
        role = mapping.role_values.get(value) if mapping.role_values else _role(value)
        if role is not None and role in TENANT_ROLES:
            roles.add(role)
    if not roles and mapping.default_role is not None:
        roles.add(mapping.default_role)
    return roles


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_CLAIM_CHARS
    return isinstance(value, bool | int | float) and abs(value) < 2**53


def _bounded(value: Any) -> bool:
    """A claim value policy may see: a short string, a number, or a short flat list of them."""
    if isinstance(value, list):
        return len(value) <= MAX_CLAIM_ITEMS and all(_scalar(v) for v in value)
    return _scalar(value)


def _attributes(idp: IdpConfig, claims: Mapping[str, Any]) -> dict[str, Any]:
    """Mapped attributes; reserved names (a stored mapping may predate the rule) are ignored."""
    return {
        name: claims[claim]
        for name, claim in idp.mapping.attributes.items()
        if mappable(name) and claim in claims and _bounded(claims[claim])
    }


def map_claims(
    idp: IdpConfig, claims: Mapping[str, Any], *, held: frozenset[Role] = TENANT_ROLES
) -> MappedIdentity:
    """Principal name, one tenant role and attributes; platform roles are never granted.

    The role is the first (by `ROLE_PRECEDENCE`) of those the token claims that
    the principal also `held` as the platform provisioned it: the tenant's IdP
    can pick among the principal's roles, never add one.
    """
    principal = claimed_principal(idp, claims)
    usable = _claimed_roles(idp, claims) & held
    role = next((r for r in ROLE_PRECEDENCE if r in usable), None)
    if role is None:
        raise Unauthenticated("The identity token grants no role in this tenant.", code="no_role")
    mfa = multi_factor(claims.get("amr"))
    if role is Role.TENANT_ADMIN and idp.require_mfa_for_admin and not mfa:
        raise Unauthenticated(
            "The tenant_admin role needs multi-factor sign-in at the identity provider.",
            code="mfa_required",
        )
    return MappedIdentity(principal, role, mfa, _attributes(idp, claims))
