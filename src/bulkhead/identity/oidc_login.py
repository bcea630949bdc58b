"""Signing a person in through a tenant's OIDC provider: authorization code with PKCE.

The browser leaves for the IdP carrying nothing but a short-lived pre-auth
cookie (`PreAuth`), and comes back with a code; what the flow checks is
here, what it fetches is in `console/oidc.py`:

- the pre-auth cookie binds the flow's `state`, `nonce`, PKCE verifier and
  tenant to this browser.  It is HMAC-SHA256-tagged with a key derived from
  the platform's session key (`SessionKeys`), so every replica can read it
  and no one can make one; it lives `PRE_AUTH_TTL_S` and names the key
  version that tagged it;
- the `state` the IdP sends back is compared with the cookie's in constant
  time, and each state is spent once on this replica (`SpentStates`): the
  IdP's code is single-use as well, so a replay elsewhere fails there;
- the discovery document must name the configured issuer exactly and offer
  S256; its endpoints must be https (plain http on loopback only, as the
  JWKS URL, `check_jwks_url`);
- the ID token goes through `OidcValidator` (RS256/ES256 only, the key by
  `kid` from the tenant's JWKS, `iss`, `aud`, `exp`, `nbf`), then `iat`
  (required, not in the future beyond `SKEW_S`), the `nonce` (constant
  time) and `azp` (the client itself when present, required when `aud`
  names more than one audience).

The client id is the IdP's `audience`: the ID token's `aud` must be it.  An
IdP that wants a confidential client gets its client secret at the token
endpoint (`client_secret_basic`); the secret is sealed under the tenant's KEK
(`ClientSecretVault`, associated data: kind `idp-client-secret` and the
tenant id) and opened only for the exchange.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from bulkhead.crypto import Kms, decrypt, encrypt
from bulkhead.domain import IdpConfig
from bulkhead.errors import Unauthenticated
from bulkhead.identity.jwks import check_jwks_url
from bulkhead.identity.oidc import SKEW_S, OidcValidator
from bulkhead.identity.sessions import SessionKeys

PRE_AUTH_TTL_S = 600
_LABEL = b"bulkhead/console-oidc-pre-auth/v1"
# A pre-auth cookie is a few hundred bytes; anything much longer is not ours.
_MAX_COOKIE = 2048


def failed(message: str, detail: str) -> Unauthenticated:
    """A refused OIDC sign-in: `message` for the person, `detail` for the audit log."""
    refused = Unauthenticated(message, code="oidc_sign_in_failed")
    refused.detail = detail
    return refused


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def challenge(verifier: str) -> str:
    """The PKCE S256 code challenge of `verifier` (RFC 7636 §4.2)."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class PreAuth:
    """One sign-in in flight; none of its secrets shows in a repr."""

    tenant_id: str
    expires: int
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    verifier: str = field(repr=False)

    @classmethod
    def begin(cls, tenant_id: str, *, now: float | None = None) -> PreAuth:
        start = time.time() if now is None else now
        return cls(
            tenant_id=tenant_id,
            expires=int(start) + PRE_AUTH_TTL_S,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
        )

    def seal(self, keys: SessionKeys, now: datetime) -> str:
        key = keys.signing(now)
        body = {
            "k": key.version,
            "t": self.tenant_id,
            "e": self.expires,
            "s": self.state,
            "n": self.nonce,
            "v": self.verifier,
        }
        payload = _b64(orjson.dumps(body))
        return f"{payload}.{_tag(key.secret, payload)}"

    @classmethod
    def open(cls, value: str | None, keys: SessionKeys, now: datetime) -> PreAuth:
        """The flow the cookie holds; refused unless one of the accepted keys tagged it."""
        if not value or len(value) > _MAX_COOKIE or value.count(".") != 1:
            raise failed(_START_AGAIN, "no pre-auth cookie")
        payload, tag = value.split(".")
        try:
            body: Any = orjson.loads(_unb64(payload))
        except (ValueError, orjson.JSONDecodeError):
            raise failed(_START_AGAIN, "malformed pre-auth cookie") from None
        version = body.get("k") if isinstance(body, dict) else None
        key = next((k for k in keys.accepted(now) if k.version == version), None)
        if key is None or not hmac.compare_digest(_tag(key.secret, payload), tag):
            raise failed(_START_AGAIN, "pre-auth cookie not ours")
        try:
            flow = cls(
                str(body["t"]), int(body["e"]), str(body["s"]), str(body["n"]), str(body["v"])
            )
        except (KeyError, TypeError, ValueError):
            raise failed(_START_AGAIN, "malformed pre-auth cookie") from None
        if flow.expires < now.timestamp():
            raise failed(_START_AGAIN, "pre-auth cookie expired")
        return flow

    def check_state(self, sent: str | None) -> None:
        if sent is None or not hmac.compare_digest(sent.encode(), self.state.encode()):
            raise failed(_START_AGAIN, "state mismatch")


_START_AGAIN = "This sign-in is not valid (expired, used, or not started here): start again."


def _tag(secret: bytes, payload: str) -> str:
    key = hmac.new(secret, _LABEL, hashlib.sha256).digest()
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


class SpentStates:
    """States this replica has accepted once, kept until their cookie would have expired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, int] = {}

    def spend(self, flow: PreAuth, now: float) -> None:
        name = hashlib.sha256(flow.state.encode()).hexdigest()
        with self._lock:
            self._spent = {k: e for k, e in self._spent.items() if e >= now}
            if name in self._spent:
                raise failed(_START_AGAIN, "state replayed")
            self._spent[name] = flow.expires


@dataclass(frozen=True, slots=True)
class Discovery:
    """What of the IdP's discovery document the flow uses."""

    authorization_endpoint: str
    token_endpoint: str
    # RFC 9207 `authorization_response_iss_parameter_supported`: the callback must carry `iss`.
    iss_parameter: bool = False


# An endpoint goes into our `Location` header as it is: printable ASCII, no space, nothing a
# server would refuse (CR LF: a 5xx) or a browser read another way.
_URL_CHARS = re.compile(r"[\x21-\x7e]{1,2048}")


def endpoint(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    try:
        if not isinstance(value, str) or not _URL_CHARS.fullmatch(value):
            raise ValueError(name)
        check_jwks_url(value)
    except ValueError:
        raise failed(_IDP_BROKEN, f"discovery: bad {name}") from None
    return value


_IDP_BROKEN = "Your organisation's identity provider is not set up for console sign-in."


def discovery(idp: IdpConfig, document: Any) -> Discovery:
    """The endpoints of a discovery document that is the configured issuer's own."""
    if not isinstance(document, Mapping) or document.get("issuer") != idp.issuer:
        raise failed(_IDP_BROKEN, "discovery: issuer mismatch")
    methods = document.get("code_challenge_methods_supported")
    if methods is not None and (not isinstance(methods, list) or "S256" not in methods):
        raise failed(_IDP_BROKEN, "discovery: no S256")
    return Discovery(
        endpoint(document, "authorization_endpoint"),
        endpoint(document, "token_endpoint"),
        document.get("authorization_response_iss_parameter_supported") is True,
    )


def id_token_claims(
    validator: OidcValidator, idp: IdpConfig, token: Any, flow: PreAuth, *, now: float
) -> dict[str, Any]:
    """The verified claims of the ID token the token endpoint returned for this flow."""
    if not isinstance(token, str) or not token:
        raise failed("The identity provider returned no ID token.", "no id_token")
    claims = validator.validate(idp, token, now=now)
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + SKEW_S:
        raise failed("The identity token's issue time is missing or in the future.", "bad iat")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), flow.nonce.encode()):
        raise failed("The identity token was not issued for this sign-in.", "nonce mismatch")
    aud, azp = claims.get("aud"), claims.get("azp")
    several = isinstance(aud, list) and len(aud) > 1
    if (several or azp is not None) and azp != idp.audience:
        raise failed("The identity token was issued to another client.", "azp mismatch")
    return claims


SEALED_KIND = "idp-client-secret"
MAX_CLIENT_SECRET = 1024


class ClientSecretVault:
    """Seals and opens IdP client secrets under the tenant's KEK (`ensure_key` makes it)."""

    def __init__(self, kms: Kms, ensure_key: Callable[[str], object]):
        self._kms, self._ensure_key = kms, ensure_key

    def __repr__(self) -> str:
        return "ClientSecretVault()"

    def seal(self, secret: str, tenant_id: str) -> bytes:
        self._ensure_key(tenant_id)
        return encrypt(
            secret.encode(),
            tenant_id=tenant_id,
            kind=SEALED_KIND,
            object_id=tenant_id,
            kms=self._kms,
        )

    def open(self, sealed: bytes, tenant_id: str) -> str:
        """The secret; raises `DecryptionFailed` for one that is not this tenant's IdP's."""
        plain = decrypt(
            sealed, tenant_id=tenant_id, kind=SEALED_KIND, object_id=tenant_id, kms=self._kms
        )
        return plain.decode()
