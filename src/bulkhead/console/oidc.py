"""The console's sign-in through a tenant's OIDC provider (authorization code + PKCE).

- `GET /console/login/oidc?tenant=<id or name>`: reads the IdP's discovery
  document, sets the pre-auth cookie (`identity/oidc_login.PreAuth`) and
  sends the browser to the IdP's authorization endpoint (302) with
  `response_type=code`, S256 PKCE, `state` and `nonce`.
- `GET /console/login/oidc/callback?code=…&state=…`: checks the state
  against the cookie (constant time, once), exchanges the code with the
  verifier at the token endpoint, validates the ID token, maps its subject
  to the tenant's principal exactly as a bearer ID token is mapped
  (`gateway/authenticate.py`: same claim, same roles; unknown → refused),
  and creates the sign-in session the password path creates, in the same
  cookie.  The answer is a small page that moves on to `/console`, so the
  `SameSite=Strict` cookie goes with a navigation that starts on our origin.

Every fetch (discovery, token, JWKS) goes through the gateway's one IdP
fetcher (`identity/idp_fetch.IdpFetcher`, shared with the API path's token
validation): the egress guard with the IdP policy (public addresses, and
special ones only inside the operator's `BULKHEAD_IDP_ALLOW_CIDRS`), checked
after DNS and on the connection's peer, with no redirect, no proxy from the
environment, a deadline and a size bound.  The IdP is the tenant's to run: a
tenant must never make the gateway reach a platform-internal address.

Every failure is a 4xx in the API error format, audited with what failed
(`detail`), and names no secret; a broken or unreachable IdP is 401 too.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import orjson

from bulkhead.admin.signin import Peer, SignIn
from bulkhead.console import assets
from bulkhead.crypto import DecryptionFailed
from bulkhead.domain import MFA_ROLES, IdpConfig, SignedIn, Tenant
from bulkhead.errors import InvalidRequest, NotFound, PermissionDenied, Unauthenticated
from bulkhead.identity.idp_fetch import IdpFetcher, IdpUnreachable
from bulkhead.identity.jwks import MAX_JWKS_BYTES
from bulkhead.identity.oidc import OidcValidator, claimed_principal, map_claims
from bulkhead.identity.oidc_login import (
    PRE_AUTH_TTL_S,
    ClientSecretVault,
    Discovery,
    PreAuth,
    SpentStates,
    challenge,
    discovery,
    endpoint,
    failed,
    id_token_claims,
)
from bulkhead.identity.sessions import TTL_S, SessionKeys
from bulkhead.limits.attempts import AttemptLimits
from bulkhead.store import Catalog, Database, signin
from bulkhead.web.cookies import HOST, own_origin, pre_auth_cookie, set_pre_auth_cookie
from bulkhead.web.responses import send_bytes
from bulkhead.web.scope import Scope, Send, exchange, header
from bulkhead.web.tls import client_certificate

log = logging.getLogger("bulkhead.signin")
_MAX_QUERY = 4096
# What of an IdP's `error` parameter is repeated (RFC 6749 §4.1.2.1: printable ASCII).
_ERROR_CODE = re.compile(r"[^\x20-\x7e]")
_UNREACHABLE = "Your organisation's identity provider could not be reached: try again later."
_NO_STORE = (b"cache-control", b"no-store")
_IDP_NOT_READY = "Your organisation's identity provider is not set up for console sign-in."
# The page the callback answers: it moves on to the console by itself, from our own origin.
_LANDED = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8">'
    b'<meta http-equiv="refresh" content="0;url=/console"><link rel="icon" href="data:,">'
    b"<title>Signed in</title></head>"
    b'<body><p><a href="/console">Continue to the console</a></p></body></html>'
)


def _query(scope: Scope) -> dict[str, str]:
    raw = bytes(scope.get("query_string", b""))
    if len(raw) > _MAX_QUERY:
        raise InvalidRequest("The query string is too long.")
    found: dict[str, str] = {}
    for name, values in parse_qs(raw.decode("latin-1"), keep_blank_values=True).items():
        if len(values) != 1:
            raise InvalidRequest(f"'{name[:32]}' is given more than once.", param=name[:32])
        found[name] = values[0]
    return found


class OidcSignIn:
    """Starts and finishes console sign-ins through tenants' IdPs."""

    def __init__(
        self,
        *,
        db: Database,
        catalog: Catalog,
        service: SignIn,
        keys: Callable[[], SessionKeys],
        idp: IdpFetcher,
        validator: OidcValidator | None = None,
        attempts: AttemptLimits | None = None,
        vault: ClientSecretVault | None = None,
        ttl_s: int = TTL_S,
        origin: str | None = None,
    ):
        self.db, self.catalog, self.service, self.keys = db, catalog, service, keys
        self.attempts, self.vault, self.idp, self.ttl_s = attempts, vault, idp, ttl_s
        self.origin = origin  # `BULKHEAD_CONSOLE_ORIGIN`: the only origin sign-in answers on
        # The API path's validator when given: one JWKS cache per URL for both.
        self.validator = validator or OidcValidator(fetch=idp.fetch)
        self.spent = SpentStates()

    # The IdP, through the egress guard ---------------------------------------------------

    async def _request(
        self,
        method: str,
        url: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The JSON document an IdP endpoint answers; any failure is a refused sign-in."""
        try:
            status, body = await self.idp.request(method, url, form=form, headers=headers)
        except IdpUnreachable as exc:
            raise failed(_UNREACHABLE, f"idp unreachable: {exc.reason}") from None
        try:
            document = orjson.loads(body) if len(body) <= MAX_JWKS_BYTES else None
        except orjson.JSONDecodeError:
            document = None
        if status != 200 or not isinstance(document, dict):
            error = document.get("error") if isinstance(document, dict) else None
            said = str(error)[:64] if isinstance(error, str) else "no error"
            raise failed(
                "Your organisation's identity provider refused the sign-in: start again.",
                f"idp answered {status} ({said})",
            )
        return document

    async def _discovery(self, idp: IdpConfig) -> Discovery:
        # The issuer is the tenant's string: an https URL (http on loopback) or no sign-in.
        url = endpoint({"issuer": idp.issuer}, "issuer").rstrip("/")
        return discovery(idp, await self._request("GET", url + "/.well-known/openid-configuration"))

    # What the snapshot knows ---------------------------------------------------------------

    def _named(self, named: str) -> Tenant | None:
        tenants = self.catalog.snapshot.tenants
        return tenants.get(named) or next((t for t in tenants.values() if t.name == named), None)

    def _tenant(self, named: str) -> tuple[Tenant, IdpConfig]:
        tenant, idps = self._named(named), self.catalog.snapshot.idps.values()
        idp = next((i for i in idps if tenant and i.tenant_id == tenant.id), None)
        if tenant is None or idp is None:
            raise NotFound("No identity provider is set up for console sign-in to this tenant.")
        return tenant, idp

    def _admit(self, client: str | None) -> None:
        """Count the attempt with the password sign-ins: each makes the gateway call the IdP."""
        if self.attempts is not None:
            self.attempts.admit(client)

    async def _client_auth(self, idp: IdpConfig) -> dict[str, str] | None:
        """`client_secret_basic` (RFC 6749 §2.3.1) for an IdP with a client secret, else none."""
        if not idp.has_client_secret or self.vault is None:
            return None

        def opened() -> str | None:
            with self.db.platform_transaction() as s:
                sealed = signin.sealed_client_secret(s, idp.tenant_id)
            return self.vault.open(sealed, idp.tenant_id) if self.vault and sealed else None

        try:
            secret = await asyncio.to_thread(opened)
        except DecryptionFailed:
            log.warning("the IdP client secret of tenant %s does not open", idp.tenant_id)
            secret = None
        if secret is None:
            raise failed(_IDP_NOT_READY, "client secret unavailable")
        pair = f"{quote(idp.audience, safe='')}:{quote(secret, safe='')}"
        return {"authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    # The two routes ------------------------------------------------------------------------

    async def start(self, scope: Scope, send: Send) -> None:
        ex = exchange(scope)
        ex.names(action="auth:login.oidc.start")
        self._admit(ex.client)
        _started_here(scope)
        named = _query(scope).get("tenant", "")
        if not 0 < len(named) <= 63:
            raise InvalidRequest("Name the tenant: ?tenant=<id or name>.", param="tenant")
        tenant, idp = self._tenant(named)
        ex.principal(tenant_id=tenant.id)
        found = await self._discovery(idp)
        flow = PreAuth.begin(tenant.id)
        params = {
            "response_type": "code",
            "client_id": idp.audience,
            "redirect_uri": _redirect_uri(scope, self.origin),
            "scope": "openid",
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": challenge(flow.verifier),
            "code_challenge_method": "S256",
        }
        joiner = "&" if "?" in found.authorization_endpoint else "?"
        location = found.authorization_endpoint + joiner + urlencode(params)
        cookie = set_pre_auth_cookie(flow.seal(self.keys(), datetime.now(UTC)), PRE_AUTH_TTL_S)
        await send_bytes(send, 302, b"", [(b"location", location.encode()), cookie, _NO_STORE])

    async def callback(self, scope: Scope, send: Send) -> tuple[str, SignedIn]:
        """Finish the sign-in; the new session's token and what it grants."""
        ex = exchange(scope)
        ex.names(action="auth:login.oidc")
        self._admit(ex.client)
        query = _query(scope)
        flow = PreAuth.open(pre_auth_cookie(scope), self.keys(), datetime.now(UTC))
        ex.principal(tenant_id=flow.tenant_id)
        flow.check_state(query.get("state"))
        tenant, idp = self._tenant(flow.tenant_id)
        named = self._named(query["tenant"]) if "tenant" in query else tenant
        if named is None or named.id != tenant.id:
            raise failed("This sign-in was started for another tenant.", "tenant mismatch")
        found = await self._discovery(idp)
        # RFC 9207: an IdP that says it names itself in its answers must have named itself,
        # so an answer another IdP sent here (a mix-up) is never taken for this one's.
        if query.get("iss", idp.issuer if not found.iss_parameter else None) != idp.issuer:
            raise failed("The answer came from another identity provider.", "iss mismatch")
        if "error" in query:
            said = _ERROR_CODE.sub("?", query["error"][:64])
            raise failed(f"Your identity provider refused the sign-in ({said}).", f"idp: {said}")
        code = query.get("code")
        if not code:
            raise InvalidRequest("The identity provider sent no code.", param="code")
        self.spent.spend(flow, time.time())
        tokens = await self._request(
            "POST",
            found.token_endpoint,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": _redirect_uri(scope, self.origin),
                "client_id": idp.audience,
                "code_verifier": flow.verifier,
            },
            await self._client_auth(idp),
        )
        claims = await asyncio.to_thread(
            id_token_claims, self.validator, idp, tokens.get("id_token"), flow, now=time.time()
        )
        return await asyncio.to_thread(self._session, scope, tenant, idp, claims)

    def _session(
        self, scope: Scope, tenant: Tenant, idp: IdpConfig, claims: dict[str, Any]
    ) -> tuple[str, SignedIn]:
        """The same sign-in session as a password's, for the principal the claims name."""
        snap = self.catalog.snapshot
        named = snap.principal_names.get((tenant.id, claimed_principal(idp, claims)))
        principal = snap.principals.get(named or "")
        if principal is None or principal.disabled:
            raise failed("This identity is not provisioned in the tenant.", "unknown principal")
        ex = exchange(scope)
        ex.principal(principal_id=principal.id)
        refusal = self.service.refusal(tenant, Peer(ex.client, client_certificate(scope)))
        if refusal is not None:
            raise failed("This tenant does not accept sign-in from this connection.", refusal)
        mapped = map_claims(idp, claims, held=principal.roles)
        if mapped.role in MFA_ROLES and not mapped.mfa:
            # Whatever the IdP's `require_mfa_for_admin`: a console session of this role
            # without a second factor is refused on every request (`tenant_context`).
            raise Unauthenticated(
                f"The {mapped.role.value} role needs multi-factor sign-in at the identity "
                "provider to use the console.",
                code="mfa_required",
            )
        with self.db.platform_transaction() as s:
            issued = signin.create_session(
                s, principal, mapped.role, keys=self.keys(), mfa=mapped.mfa, ttl_s=self.ttl_s
            )
        ex.principal(credential_id=f"session:{issued.signed_in.id}")
        ex.finding([f"revoked_oldest_session:{i}" for i in issued.revoked])
        return issued.token, issued.signed_in


def _started_here(scope: Scope) -> None:
    """Refuse a sign-in the console's own sign-in page did not start (login CSRF).

    A page elsewhere, or a link in a mail, could otherwise send a person's
    browser through a flow whose IdP (any tenant's, so perhaps the
    attacker's) answers at once, and leave them signed in to the console as
    someone else without knowing it.  The sign-in page starts it from our
    origin (`same-origin`); anything else a browser says (`cross-site`,
    `same-site`: a sibling host; `none`: typed, or opened from another
    application) is refused.  A browser too old to send `Sec-Fetch-Site` is
    let through: nothing else tells where a navigation started.
    """
    site = header(scope, b"sec-fetch-site")
    if site is not None and site != b"same-origin":
        refused = PermissionDenied(
            "Start the sign-in from the console's sign-in page (/console/login).",
            code="oidc_sign_in_failed",
        )
        refused.detail = f"started by sec-fetch-site {site.decode('latin-1')[:32]}"
        raise refused


def _redirect_uri(scope: Scope, configured: str | None = None) -> str:
    """The callback's URL at our own origin: the operator's, else the request's Host.

    The Host header is the client's to write: one that is not a host and port
    (`gw.example@evil.test`) must not move the URI to another host, and with
    `BULKHEAD_CONSOLE_ORIGIN` set no other Host is answered at all.
    """
    origin = own_origin(scope)
    if origin is None:
        raise InvalidRequest("The request has no Host header.")
    if not HOST.fullmatch(origin.partition("://")[2]):
        raise InvalidRequest("The request's Host header is not a host name and port.")
    if configured is not None and origin != configured:
        raise InvalidRequest(f"Sign in through the console at {configured}.")
    return origin + assets.OIDC_CALLBACK


async def send_landed(send: Send, session_cookie: tuple[bytes, bytes]) -> None:
    """The callback's answer: the session cookie, the pre-auth cookie gone, on to /console."""
    headers = [(b"content-type", b"text/html; charset=utf-8"), _NO_STORE, session_cookie]
    await send_bytes(send, 200, _LANDED, [*headers, set_pre_auth_cookie("", 0)])
