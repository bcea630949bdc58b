"""The management APIs and the web console, as `app.build` wires them: each made at the
first request that reaches it (`app.lazy`), not at start-up.

What they are made from was opened at start-up (`build`'s `Core`, `Data` and
`Services`); only the making, and the imports of `admin.api` and `console`, wait.
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
    from bulkhead.app.build import Core, Data, Services


def management_api(
    core: Core, data: Data, services: Services
) -> tuple[ASGIApp, Callable[[], dict[str, Any]]]:
    """`/admin/v1` and `/tenant/v1`, made at the first call that reaches them (`app.lazy`),
    and what makes the OpenAPI document of them (which makes them first)."""
    made = Deferred(lambda: _management(core, data, services))
    return DeferredApp(made, lambda m: m[0]), lambda: made.get()[1]()


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

        return ConsoleEndpoints(
            sign_in=services.sign_in,
            authorizer=data.authorizer,
            oidc=OidcSignIn(
                db=core.db,
                catalog=data.catalog,
                service=services.sign_in.service,
                keys=data.session_keys.current,
                idp=services.idp,
                validator=validator,
                attempts=services.sign_in.attempts,
                vault=ClientSecretVault(core.keyring.kms, core.keyring.ensure),
                origin=core.settings.console_origin,
            ),
        )

    return DeferredApp(Deferred(make), lambda app: app)
