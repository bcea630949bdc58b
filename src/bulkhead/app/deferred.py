"""The management APIs, the sign-in endpoints and the web console, as `app.build` wires
them: each made at the first request that reaches it (`app.lazy`), not at start-up.

What they are made from was opened at start-up (`build`'s `Core`, `Data` and
`Services`: the password hasher and its pool, the attempt limits, the session
verifier); only the making, and the imports of `admin.api`, `admin.signin` (with
the pydantic models of both) and `console`, wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bulkhead.app.keys import rotate_audit_key
from bulkhead.app.lazy import Deferred, DeferredApp
from bulkhead.identity import OidcValidator
from bulkhead.identity.oidc_login import ClientSecretVault
from bulkhead.runtime.egress import EgressPolicy
from bulkhead.runtime.gpu import system_inventory
from bulkhead.web.scope import ASGIApp

if TYPE_CHECKING:
    from bulkhead.admin.signin import SignInEndpoints
    from bulkhead.app.build import Core, Data, Services
    from bulkhead.identity.passwords import Passwords
    from bulkhead.identity.totp_vault import TotpVault
    from bulkhead.limits.attempts import AttemptLimits
    from bulkhead.limits.pool import WorkPool
    from bulkhead.store.sessions import SessionVerifier


def management_api(
    core: Core, data: Data, services: Services
) -> tuple[ASGIApp, Callable[[], dict[str, Any]]]:
    """`/admin/v1` and `/tenant/v1`, made at the first call that reaches them (`app.lazy`),
    and what makes the OpenAPI document of them (which makes them first), once: concurrent
    first requests for it wait for the same making."""
    made = Deferred(lambda: _management(core, data, services), name="management API")
    document = Deferred(lambda: made.get()[1](), name="API document")
    return DeferredApp(made, lambda m: m[0]), document.get


def _management(
    core: Core, data: Data, services: Services
) -> tuple[ASGIApp, Callable[[], dict[str, Any]]]:
    from bulkhead.admin.api import build_admin

    settings, platform = core.settings, core.platform
    return build_admin(
        db=core.db,
        catalog=data.catalog,
        authorizer=data.authorizer,
        workers=services.workers,
        audit_origin=settings.audit_origin,
        ca=core.ca,
        rotate_audit_key=lambda: rotate_audit_key(platform.audit, core.sequencer),
        keyring=core.keyring,
        retention=services.retention,
        artifacts=services.artifacts,
        pam=services.pam,
        passwords=services.passwords,
        password_pool=services.password_pool,
        gpu_inventory=system_inventory,
        credentials=data.credentials,
        platform_egress=EgressPolicy.platform(settings.upstream_allow_cidrs),
        idp_egress=services.idp.policy,
        key_inventory=platform.inventory,
        platform_rotations=platform.on_demand(),
    )


def console_app(core: Core, data: Data, services: Services, validator: OidcValidator) -> ASGIApp:
    """The web console (`console.endpoints`), made at the first request for it (`app.lazy`)."""

    def make() -> ASGIApp:
        from bulkhead.console.endpoints import ConsoleEndpoints
        from bulkhead.console.oidc import OidcSignIn

        sign_in = services.sign_in.get()
        return ConsoleEndpoints(
            sign_in=sign_in,
            authorizer=data.authorizer,
            oidc=OidcSignIn(
                db=core.db,
                catalog=data.catalog,
                service=sign_in.service,
                keys=data.session_keys.current,
                idp=services.idp,
                validator=validator,
                attempts=sign_in.attempts,
                vault=ClientSecretVault(core.keyring.kms, core.keyring.ensure),
                origin=core.settings.console_origin,
            ),
        )

    return DeferredApp(Deferred(make, name="web console"), lambda app: app)


def sign_in_endpoints(
    core: Core,
    data: Data,
    passwords: Passwords,
    vault: TotpVault,
    sessions: SessionVerifier,
    pool: WorkPool,
    attempts: AttemptLimits,
) -> Deferred[SignInEndpoints]:
    """`/auth/v1/*` (passwords, MFA, enrolment), made at the first sign-in or console
    request; the limits, pool and hasher they use are the start-up's."""

    def make() -> SignInEndpoints:
        from bulkhead.admin.enrolment import Enrolment
        from bulkhead.admin.signin import SignIn, SignInEndpoints

        keys = data.session_keys.current
        return SignInEndpoints(
            SignIn(core.db, passwords, vault, keys=keys, ca=core.ca),
            sessions,
            data.catalog,
            pool=pool,
            attempts=attempts,
            enrolment=Enrolment(core.db, passwords, vault, keys=keys),
        )

    return Deferred(make, name="sign-in service")
