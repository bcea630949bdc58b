"""/auth/v1/enrol: a new platform principal sets its own password and authenticator.

Its creator was shown a one-time enrolment secret (`admin/platform/operators.py`)
and handed it over.  The person sends it with their name and gets an
authenticator URI (`/auth/v1/enrol`); then sends it again with a new
password and a code from the authenticator (`/auth/v1/enrol/confirm`),
which sets the password, makes the authenticator theirs, answers their
recovery codes and signs them in, all in one transaction.  Until then
nothing is set, so an enrolment cut off half-way starts again with the same
secret; a second start replaces the authenticator the first began.

The secret is a credential, so everything that bounds sign-in holds here
too: the paths are anonymous, their bodies at most a few KiB, each attempt
counted per client and in all (`limits.attempts`), the work on the password
pool, and Argon2id spent only once the secret and the code were right.

It enrols nobody else: only a principal with a live enrolment and no
password yet can be enrolled (no one resets an existing principal through
it); the secret is compared in constant time and used once, in the
transaction that sets the password, so of two attempts one wins.  An
unknown name, a wrong, used or expired secret and a disabled principal all
get one answer; the audit event says which it was.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from bulkhead.crypto import DecryptionFailed
from bulkhead.domain import Principal, Role, SignedIn
from bulkhead.errors import InvalidRequest, Unauthenticated
from bulkhead.identity import totp
from bulkhead.identity.enrolment import MAX_LENGTH, hash_enrolment
from bulkhead.identity.passwords import Passwords
from bulkhead.identity.sessions import TTL_S, SessionKeys, new_recovery_codes, recovery_hash
from bulkhead.identity.totp_vault import TotpVault
from bulkhead.store import Database, operators, signin
from bulkhead.store.schema import utcnow
from bulkhead.web.scope import Exchange

MIN_PASSWORD = 12


class EnrolStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: str = Field(min_length=1, max_length=128)
    enrolment_secret: str = Field(min_length=1, max_length=MAX_LENGTH, repr=False)


class EnrolFinish(EnrolStart):
    password: str = Field(min_length=MIN_PASSWORD, max_length=1024, repr=False)
    totp: str = Field(min_length=1, max_length=16, repr=False)
    role: Role | None = None


def refused(why: str) -> Unauthenticated:
    """The one answer to every refused enrolment secret; `why` is for the audit log."""
    refusal = Unauthenticated(
        "Incorrect principal or enrolment secret, or the secret has expired or was used.",
        code="invalid_enrolment",
    )
    refusal.detail = why
    return refusal


def session_role(principal: Principal, wanted: Role | None) -> Role:
    """The role a new session acts in: the one asked for, if held, or the only one held."""
    if wanted is not None:
        if wanted not in principal.roles:
            raise InvalidRequest("The principal does not hold that role.", param="role")
        return wanted
    if len(principal.roles) != 1:
        raise InvalidRequest("The principal holds several roles: choose one.", param="role")
    return next(iter(principal.roles))


class Enrolment:
    """Enrols new platform principals; every method blocks (run it on the password pool).

    `keys` gives the session keys that sign the session an enrolment ends with.
    """

    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        vault: TotpVault,
        *,
        keys: Callable[[], SessionKeys],
        ttl_s: int = TTL_S,
    ):
        self.db, self.passwords, self.vault = db, passwords, vault
        self.keys, self.ttl_s = keys, ttl_s

    def __repr__(self) -> str:
        return "Enrolment()"

    def _checked(
        self, s: Session, body: EnrolStart, ex: Exchange
    ) -> tuple[Principal, bytes | None]:
        try:
            principal, pending = operators.check_enrolment(
                s, body.principal, body.enrolment_secret, utcnow()
            )
        except operators.EnrolmentRefused as exc:
            ex.principal(principal_id=exc.principal_id)
            raise refused(exc.why) from None
        ex.principal(principal_id=principal.id)
        return principal, pending

    def start(self, body: EnrolStart, ex: Exchange) -> str:
        """Begin a new authenticator for the enrolment; its otpauth URI (shown once)."""
        with self.db.platform_transaction() as s:
            principal, _ = self._checked(s, body, ex)
            secret = totp.new_secret()
            sealed = self.vault.seal(secret, tenant_id=None, principal_id=principal.id)
            operators.begin_authenticator(s, principal.id, sealed)
        return totp.otpauth_uri(secret, account=f"platform/{principal.name}")

    def finish(self, body: EnrolFinish, ex: Exchange) -> tuple[list[str], str, SignedIn]:
        """Set the password, make the authenticator the principal's, and sign it in."""
        with self.db.platform_transaction() as s:
            principal, pending = self._checked(s, body, ex)
        if pending is None:
            raise InvalidRequest("Start with /auth/v1/enrol.")
        role = session_role(principal, body.role)
        step = totp.verify(self._open(pending, principal), body.totp, last_step=None)
        # Argon2id only once the secret and the code were right.
        hashed = self.passwords.hash(body.password)
        now, used = utcnow(), hash_enrolment(body.enrolment_secret)
        with self.db.platform_transaction() as s:
            if not operators.use_enrolment(s, principal.id, used, pending, now):
                raise refused("used, or started again, by another attempt")
            if signin.credential_row(s, principal.id) is not None:
                raise refused("already has a password")
            codes = self._credential(s, principal, hashed, pending, step)
            # A first password: the principal has no session to revoke.
            issued = signin.create_session(
                s, principal, role, keys=self.keys(), mfa=True, ttl_s=self.ttl_s
            )
        return codes, issued.token, issued.signed_in

    def _open(self, sealed: bytes, principal: Principal) -> bytes:
        try:
            return self.vault.open(sealed, tenant_id=None, principal_id=principal.id)
        except DecryptionFailed:
            raise refused("the pending authenticator does not open") from None

    @staticmethod
    def _credential(
        s: Session, principal: Principal, hashed: str, sealed: bytes, step: int
    ) -> list[str]:
        """The principal's password and authenticator (sealed for it already); recovery codes."""
        signin.set_password(s, principal, hashed)
        row = signin.credential_row(s, principal.id)
        assert row is not None
        row.totp_secret, row.totp_last_step = sealed, step
        codes = new_recovery_codes()
        row.recovery_hashes = [recovery_hash(c) for c in codes]
        return codes
