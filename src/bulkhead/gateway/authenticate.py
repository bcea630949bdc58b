"""Step 1b: authenticate the bearer credential.

Three kinds, told apart by their prefix:

- `bk_…`  an API key (services): checked against the in-memory catalog, no I/O;
- `bks_…` a sign-in session (people): cached in memory, see `store.sessions`;
- anything else is taken for a JWT from a tenant's OIDC provider.  Its issuer
  picks the one IdP (and so the one tenant) it may act in; the token is then
  verified against that IdP's keys, and its subject must name an existing
  principal of that tenant, in a role that principal holds.  Principals are
  not created on the fly: a tenant admin provisions people, so a token can
  never conjure one up (nor a role for one), and the data plane never writes
  to the database.  An unregistered issuer gets the answer a bad signature
  gets, so the answers do not list the registered IdPs.

A person in the web console sends the session token in a cookie instead
(`web.cookies`).  The cookie is read only where no `Authorization` header
was sent (a bearer request is judged by its header alone) and only on the
console and the management APIs (`COOKIE_PATHS`): never on the model API,
the sign-in routes or the API document, so a page of another site can never
spend a person's session on a model.  It is the same session token and is
verified exactly as a bearer one; the layer marks the request
(`COOKIE_SESSION`) so that the CSRF layer asks a state change for its proofs.

Before any of it, the catalog must be fresh: a replica that could not
confirm its catalog for longer than `BULKHEAD_CATALOG_MAX_STALE_MS` (its push
and its poll both failing) answers 503 rather than accept a key that may have
been revoked through another replica (`store.catalog`, fail closed).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bulkhead.domain import ApiKey, SignedIn
from bulkhead.errors import Unauthenticated, Unavailable
from bulkhead.identity import (
    OidcValidator,
    claimed_principal,
    invalid_token,
    map_claims,
    parse_key,
    peek_issuer,
    token_id,
    verify_secret,
)
from bulkhead.store import Catalog
from bulkhead.store.sessions import SessionVerifier
from bulkhead.web.cookies import CookieSession, session_cookie
from bulkhead.web.scope import (
    COOKIE_SESSION,
    CREDENTIAL,
    ASGIApp,
    Receive,
    Scope,
    Send,
    exchange,
    header,
    set_once,
)

_BEARER = b"bearer "
# Where the console's session cookie stands for a credential (`/console` and below, the
# management APIs): never `/v1`, `/auth/v1` or `/openapi.json`.
COOKIE_PATHS = ("/console/", "/admin/v1/", "/tenant/v1/")


def cookie_path(path: str) -> bool:
    return path == "/console" or path.startswith(COOKIE_PATHS)


def bearer_token(scope: Scope) -> str:
    value = header(scope, b"authorization")
    if value is None:
        raise Unauthenticated(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        )
    if value[:7].lower() != _BEARER:
        raise Unauthenticated("Authorization header must use the Bearer scheme.")
    return value[7:].strip().decode("latin-1")


class AuthenticationMiddleware:
    """Every path except the explicit public allowlist needs a valid credential."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        catalog: Catalog,
        public: frozenset[str],
        sessions: SessionVerifier | None = None,
        oidc: OidcValidator | None = None,
    ):
        self.app = app
        self.catalog = catalog
        self.public = public
        self.sessions = sessions
        self.oidc = oidc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        if self.catalog.stale():
            raise Unavailable(
                "This gateway cannot confirm that its configuration is current; try again shortly.",
                code="catalog_stale",
            )
        token = self._cookie(scope) or bearer_token(scope)
        found: ApiKey | SignedIn
        if token.startswith("bk_"):
            found = self._api_key(scope, token)
        elif token.startswith("bks_") and self.sessions is not None:
            found = await self.sessions.verify(token)
            exchange(scope).principal(credential_id=f"session:{found.id}")
        elif token.count(".") == 2 and self.oidc is not None:
            found = await self._oidc(scope, token)
        else:
            raise Unauthenticated("Incorrect API key provided.")
        set_once(scope, CREDENTIAL, found)
        await self.app(scope, receive, send)

    def _cookie(self, scope: Scope) -> str | None:
        """The session cookie's token, where no header was sent and a cookie may stand for one."""
        if header(scope, b"authorization") is not None or not cookie_path(scope["path"]):
            return None
        token = session_cookie(scope) if self.sessions is not None else None
        if not token:
            return None
        # Marked first: a cookie refused here or by the session check is cleared in the answer.
        set_once(scope, COOKIE_SESSION, CookieSession(token))
        if not token.startswith("bks_"):  # Only a session: a key never sits in a cookie.
            raise Unauthenticated("Incorrect session token provided.")
        return token

    def _api_key(self, scope: Scope, token: str) -> ApiKey:
        key = self.catalog.snapshot.keys.get(parse_key(token))
        if key is None:
            raise Unauthenticated("Incorrect API key provided.")
        verify_secret(token, key.secret_hash)
        exchange(scope).principal(credential_id=key.id)
        if not key.usable_at(datetime.now(UTC)):
            raise Unauthenticated("This API key is revoked or expired.")
        return key

    async def _oidc(self, scope: Scope, token: str) -> SignedIn:
        assert self.oidc is not None
        snap = self.catalog.snapshot
        idp = snap.idps.get(peek_issuer(token))
        if idp is None:
            raise invalid_token()
        ex = exchange(scope)
        ex.principal(tenant_id=idp.tenant_id)
        # Off the event loop: an unknown key id may make the JWKS cache fetch.
        claims = await asyncio.to_thread(self.oidc.validate, idp, token)
        credential_id = token_id(token, claims)
        ex.principal(credential_id=credential_id)
        named = snap.principal_names.get((idp.tenant_id, claimed_principal(idp, claims)))
        principal = snap.principals.get(named or "")
        if principal is None:
            raise Unauthenticated(
                "This identity is not provisioned in the tenant.", code="unknown_principal"
            )
        mapped = map_claims(idp, claims, held=principal.roles)
        return SignedIn(
            id=credential_id,
            kind="oidc",
            tenant_id=idp.tenant_id,
            principal_id=principal.id,
            role=mapped.role,
            mfa=mapped.mfa,
            expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC),
            attributes=mapped.attributes,
        )
