"""/auth/v1: people sign in with a password and a second factor, and get a session.

These paths are on the gateway's sign-in allowlist: they need no bearer
credential, because each checks what it is given (a password and a TOTP or
recovery code, or for logout the session token it ends).  They still pass
the audit layer, so every attempt, success or failure, is one audit event
naming the tenant and principal when they exist, and never a secret.

Failed passwords and one-time codes count against the principal: after
`MAX_FAILURES` in a row it is locked for `LOCKOUT`.  An unknown tenant or
principal, a locked account and a connection the tenant does not accept all
get the same answer as a wrong password, after the same Argon2id work, so
neither the status nor the time tells them apart; the audit event says which
it was.

A tenant's rules on where it is reached from hold here as on its API: with
`require_client_cert` the connection must carry a client certificate issued
for the tenant, and with `allowed_networks` come from one of them.  A
refused connection never reaches the password check, so a stranger can
neither test a password nor lock the account, enrol an authenticator or end
the principal's sessions.

Everything here is open to anonymous clients, so it is bounded before any
work: the gateway reads at most a few KiB of body, `AttemptLimits` counts
each attempt per client address and in all (shared by the replicas through
the limiter), and the checks run on a `WorkPool` of their own — never on
the default executor that control-plane calls use — whose queue refuses the
overflow at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

import orjson
from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from bulkhead.admin.enrolment import EnrolFinish, Enrolment, EnrolStart, session_role
from bulkhead.admin.router import parse_body
from bulkhead.crypto import DecryptionFailed
from bulkhead.domain import MFA_ROLES, Principal, Role, SignedIn, Tenant
from bulkhead.errors import InvalidRequest, NotFound, Unauthenticated
from bulkhead.identity import totp
from bulkhead.identity.ca import TrustAnchor
from bulkhead.identity.passwords import Passwords
from bulkhead.identity.sessions import (
    TTL_S,
    SessionKeys,
    new_recovery_codes,
    recovery_hash,
    use_recovery_code,
)
from bulkhead.identity.spiffe import PeerRejected
from bulkhead.identity.totp_vault import TotpVault, is_legacy
from bulkhead.limits.attempts import AttemptLimits
from bulkhead.limits.pool import WorkPool
from bulkhead.policy.networks import address_allowed
from bulkhead.store import Catalog, Database, repo, signin
from bulkhead.store.schema import LocalCredentialRow, utcnow
from bulkhead.store.sessions import SessionVerifier
from bulkhead.web.responses import send_bytes
from bulkhead.web.scope import Exchange, Receive, Scope, Send, exchange, header, raw_body
from bulkhead.web.tls import client_certificate

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
T = TypeVar("T")
log = logging.getLogger("bulkhead.signin")


class _Who(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str | None = Field(default=None, max_length=63)
    principal: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024, repr=False)
    totp: str | None = Field(default=None, max_length=16, repr=False)
    recovery_code: str | None = Field(default=None, max_length=64, repr=False)


class LoginBody(_Who):
    role: Role | None = None


def _invalid(detail: str | None = None) -> Unauthenticated:
    """The one answer to every failed password check; `detail` is for the audit log."""
    invalid = Unauthenticated(
        "Incorrect tenant, principal or password.", code="invalid_credentials"
    )
    invalid.detail = detail
    return invalid


@dataclass(frozen=True, slots=True)
class Peer:
    """What the connection shows of the caller: its address and its client certificate."""

    address: str | None
    certificate: x509.Certificate | None = None


@dataclass
class _Account:
    principal: Principal
    row: LocalCredentialRow


class SignIn:
    """Checks passwords and second factors against the store; every method runs in a thread.

    `keys` gives the session keys that sign new sessions' ids
    (`store.session_keys`).  `ca` checks the client certificates of tenants
    that require them; without one, such tenants cannot be signed in to at
    all (fail closed).
    """

    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        vault: TotpVault,
        *,
        keys: Callable[[], SessionKeys],
        ca: TrustAnchor | None = None,
        ttl_s: int = TTL_S,
    ):
        self.db, self.passwords, self.vault, self.ttl_s = db, passwords, vault, ttl_s
        self.ca, self.keys = ca, keys

    def _find(self, s: Session, who: _Who, ex: Exchange, peer: Peer) -> _Account:
        tenant: Tenant | None = None
        try:
            tenant = repo.get_tenant(s, who.tenant) if who.tenant else None
            ex.principal(tenant_id=tenant.id if tenant else None)
            principal = repo.get_principal(s, tenant.id if tenant else None, who.principal)
        except NotFound:
            principal = None
        row = signin.credential_row(s, principal.id) if principal else None
        if principal is None or row is None:
            self._refuse(who, None)
        ex.principal(principal_id=principal.id)
        if principal.disabled:
            self._refuse(who, "principal disabled")
        refusal = self.refusal(tenant, peer) if tenant is not None else None
        if refusal is not None:
            self._refuse(who, refusal)
        return _Account(principal, row)

    def _refuse(self, who: _Who, detail: str | None) -> NoReturn:
        """Answer as a wrong password does, after the same Argon2id work."""
        self.passwords.verify_dummy(who.password)
        raise _invalid(detail)

    def refusal(self, tenant: Tenant, peer: Peer) -> str | None:
        """Why the tenant's own rules refuse this connection, or None if they do not.

        The console's OIDC sign-in (`console/oidc.py`) holds to them as well."""
        if tenant.config.require_client_cert:
            try:
                if self.ca is None:
                    raise PeerRejected("no CA to check it against")
                self.ca.verify_tenant_client(peer.certificate, tenant.id)
            except PeerRejected as exc:
                return f"client certificate: {exc.reason}"
        networks = tenant.attributes.get("allowed_networks")
        if networks and not address_allowed(peer.address, networks):
            return "client address outside allowed_networks"
        return None

    def attempt(
        self, who: _Who, ex: Exchange, peer: Peer, then: Callable[[Session, _Account], T]
    ) -> T:
        """Check the password, then run `then`; count a failure of either, and lock out."""
        now = utcnow()
        failure: Unauthenticated | None = None
        with self.db.platform_transaction() as s:
            account = self._find(s, who, ex, peer)
            row = account.row
            if row.locked_until is not None and row.locked_until > now:
                # The same work and answer as a wrong password: a lock must not tell that
                # the account exists, nor that the password was right.
                with contextlib.suppress(Unauthenticated):
                    self.passwords.verify(row.password_hash, who.password)
                raise _invalid("account locked")
            try:
                try:
                    self.passwords.verify(row.password_hash, who.password)
                except Unauthenticated:
                    raise _invalid() from None
                result = then(s, account)
            except Unauthenticated as exc:
                failure = exc
                if exc.code != "mfa_required":  # A missing code is a question, not a guess.
                    self._failed(row, now)
            else:
                row.failed_attempts = 0
                return result
        raise failure

    @staticmethod
    def _failed(row: LocalCredentialRow, now: datetime) -> None:
        row.failed_attempts += 1
        if row.failed_attempts >= MAX_FAILURES:
            row.failed_attempts = 0
            row.locked_until = now + LOCKOUT

    # Second factor ----------------------------------------------------------------------

    def second_factor(self, account: _Account, who: _Who, role: Role | None) -> bool:
        """Check a TOTP or recovery code when one is enrolled or the role needs it."""
        row = account.row
        enrolled = row.totp_secret is not None
        if not enrolled and role in MFA_ROLES:
            raise Unauthenticated(
                f"The {role.value} role needs multi-factor sign-in: enroll an authenticator "
                "at /auth/v1/mfa/enroll first.",
                code="mfa_required",
            )
        if not enrolled:
            return False
        if who.totp:
            self._check_totp(account, who.totp)
            return True
        if who.recovery_code:
            row.recovery_hashes = use_recovery_code(who.recovery_code, row.recovery_hashes)
            return True
        raise Unauthenticated(
            "Multi-factor sign-in is required: send 'totp' or 'recovery_code'.",
            code="mfa_required",
        )

    def _check_totp(self, account: _Account, code: str) -> None:
        """Verify against the sealed secret; seal a legacy plaintext one once it verified."""
        row, principal = account.row, account.principal
        assert row.totp_secret is not None
        secret = self._open(row.totp_secret, principal)
        row.totp_last_step = totp.verify(secret, code, last_step=row.totp_last_step)
        if is_legacy(row.totp_secret):
            row.totp_secret = self._seal(secret, principal)

    def _seal(self, secret: bytes, principal: Principal) -> bytes:
        return self.vault.seal(secret, tenant_id=principal.tenant_id, principal_id=principal.id)

    def _open(self, stored: bytes, principal: Principal) -> bytes:
        """Open a sealed secret; one that does not open is a wrong code outside, logged inside."""
        try:
            return self.vault.open(stored, tenant_id=principal.tenant_id, principal_id=principal.id)
        except DecryptionFailed:
            log.warning("the TOTP secret of principal %s does not open", principal.id)
            raise Unauthenticated(
                "The one-time code is wrong or was used already.", code="invalid_totp"
            ) from None

    # Operations -------------------------------------------------------------------------

    def login(self, body: LoginBody, ex: Exchange, peer: Peer) -> tuple[str, SignedIn]:
        def then(s: Session, account: _Account) -> tuple[str, SignedIn]:
            role = session_role(account.principal, body.role)
            mfa = self.second_factor(account, body, role)
            issued = signin.create_session(
                s, account.principal, role, keys=self.keys(), mfa=mfa, ttl_s=self.ttl_s
            )
            ex.finding([f"revoked_oldest_session:{i}" for i in issued.revoked])
            return issued.token, issued.signed_in

        return self.attempt(body, ex, peer, then)

    def enroll(self, body: _Who, ex: Exchange, peer: Peer) -> str:
        def then(s: Session, account: _Account) -> str:
            if account.row.totp_secret is not None:  # Replacing one needs the current one.
                self.second_factor(account, body, None)
            secret = totp.new_secret()
            account.row.pending_totp_secret = self._seal(secret, account.principal)
            name = f"{body.tenant or 'platform'}/{body.principal}"
            return totp.otpauth_uri(secret, account=name)

        return self.attempt(body, ex, peer, then)

    def confirm(self, body: _Who, ex: Exchange, peer: Peer) -> list[str]:
        def then(s: Session, account: _Account) -> list[str]:
            row = account.row
            if row.pending_totp_secret is None:
                raise InvalidRequest("Start with /auth/v1/mfa/enroll.")
            if not body.totp:
                raise InvalidRequest("'totp' is required.", param="totp")
            pending = self._open(row.pending_totp_secret, account.principal)
            row.totp_last_step = totp.verify(pending, body.totp, last_step=None)
            # Sealed for the same principal and kind, so the ciphertext moves as it is.
            sealed = row.pending_totp_secret
            if is_legacy(sealed):
                sealed = self._seal(pending, account.principal)
            row.totp_secret, row.pending_totp_secret = sealed, None
            codes = new_recovery_codes()
            row.recovery_hashes = [recovery_hash(c) for c in codes]
            signin.revoke_sessions_of(s, account.principal.id)
            return codes

        return self.attempt(body, ex, peer, then)

    def logout(self, session_id: str) -> None:
        with self.db.platform_transaction() as s:
            signin.revoke_session(s, session_id)


_BODIES: dict[str, type[BaseModel]] = {
    "/auth/v1/login": LoginBody,
    "/auth/v1/enrol": EnrolStart,
    "/auth/v1/enrol/confirm": EnrolFinish,
}


# Every answer here may hold a secret (a session token, recovery codes, an enrolment URI):
# none may be kept by a browser's or a proxy's cache.
_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


async def _send(send: Send, payload: dict[str, Any]) -> None:
    await send_bytes(send, 200, orjson.dumps(payload), _HEADERS)


def _signed_in(token: str, session: SignedIn) -> dict[str, Any]:
    return {
        "token": token,
        "expires_at": session.expires_at.isoformat(),
        "role": session.role.value,
        "mfa": session.mfa,
    }


class SignInEndpoints:
    """The ASGI app behind /auth/v1 (POST only).

    Login and the MFA steps are counted by `attempts` (when given) before the
    body is even parsed, then run on `pool`, whose bounded queue refuses the
    overflow at once.
    """

    def __init__(
        self,
        service: SignIn,
        sessions: SessionVerifier,
        catalog: Catalog,
        *,
        pool: WorkPool,
        attempts: AttemptLimits | None = None,
        enrolment: Enrolment | None = None,
    ):
        self.service, self.sessions, self.catalog = service, sessions, catalog
        self.pool, self.attempts, self.enrolment = pool, attempts, enrolment

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, ex = scope["path"], exchange(scope)
        ex.names(surface="auth", action="auth:" + path.removeprefix("/auth/v1/").replace("/", "."))
        if scope["method"] != "POST":
            raise NotFound(f"Unknown endpoint: {scope['method']} {path}")
        if path == "/auth/v1/logout":
            await _send(send, await self._logout(scope))
            return
        if path == "/auth/v1/login":
            token, session = await self.sign_in(scope)
            await _send(send, _signed_in(token, session))
            return
        who, peer = self._who(scope, _BODIES.get(path, _Who))
        await _send(send, await self._attempt(path, who, ex, peer))

    def _who(self, scope: Scope, body: type[BaseModel]) -> tuple[Any, Peer]:
        """Count the attempt (refusing over the limits), then parse who it is for."""
        ex = exchange(scope)
        if self.attempts is not None:
            self.attempts.admit(ex.client)
        who: Any = parse_body(body, raw_body(scope))
        ex.names(resource=who.principal)
        return who, Peer(ex.client, client_certificate(scope))

    async def sign_in(self, scope: Scope) -> tuple[str, SignedIn]:
        """A password (and second factor) sign-in from the request's body (`LoginBody`): the
        new session's token and what it grants.  The web console signs in through this too."""
        who, peer = self._who(scope, LoginBody)
        ex = exchange(scope)
        token, session = await self.pool.run(self.service.login, who, ex, peer)
        ex.principal(credential_id=f"session:{session.id}")
        return token, session

    async def end(self, scope: Scope, session: SignedIn) -> None:
        """Revoke a sign-in session: on this replica at once, on the others with the catalog."""
        exchange(scope).principal(
            tenant_id=session.tenant_id,
            principal_id=session.principal_id,
            credential_id=f"session:{session.id}",
        )
        await asyncio.to_thread(self.service.logout, session.id)
        self.sessions.forget(session.id)
        await asyncio.to_thread(self.catalog.reload)

    async def _attempt(self, path: str, who: Any, ex: Exchange, peer: Peer) -> dict[str, Any]:
        if path == "/auth/v1/mfa/enroll":
            return {"otpauth_uri": await self.pool.run(self.service.enroll, who, ex, peer)}
        if path.startswith("/auth/v1/enrol"):
            return await self._enrol(path, who, ex)
        codes = await self.pool.run(self.service.confirm, who, ex, peer)
        await asyncio.to_thread(self.catalog.reload)
        return {"recovery_codes": codes}

    async def _enrol(self, path: str, who: Any, ex: Exchange) -> dict[str, Any]:
        """A new platform principal's enrolment (`admin/enrolment.py`)."""
        if self.enrolment is None:
            raise NotFound(f"Unknown endpoint: POST {path}")
        ex.principal(credential_id="enrolment")
        if path == "/auth/v1/enrol":
            return {"otpauth_uri": await self.pool.run(self.enrolment.start, who, ex)}
        codes, token, session = await self.pool.run(self.enrolment.finish, who, ex)
        ex.principal(credential_id=f"session:{session.id}")
        await asyncio.to_thread(self.catalog.reload)
        return {"recovery_codes": codes, **_signed_in(token, session)}

    async def _logout(self, scope: Scope) -> dict[str, Any]:
        value = header(scope, b"authorization") or b""
        if value[:7].lower() != b"bearer ":
            raise Unauthenticated("Send the session token as 'Authorization: Bearer <token>'.")
        token = value[7:].strip().decode("latin-1")
        await self.end(scope, await self.sessions.verify(token))
        return {"revoked": True}
