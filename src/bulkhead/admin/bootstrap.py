"""A tenant's first admin: the one credential a platform admin gives a tenant without a grant.

Onboarding needs someone inside the tenant.  Once per tenant, a platform
admin may give it its first admin without a grant: a `tenant_admin` key, the
password of a principal holding `tenant_admin`, or the tenant's IdP; the
call's audit event says `no_grant_needed:first_admin`.  From then on every
credential a platform admin creates inside the tenant needs a grant
(`admin:keys.create`, `admin:principals.password.set`,
`admin:tenants.idp.set` on the tenant), since any of them reads the tenant's
data and acts in it.  The tenant's own admins issue its other keys under
/tenant/v1, no broader than their own.

The router's check only reads; the claim is a conditional update in the
credential's own transaction, so of two concurrent first admins only one
passes without a grant.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from bulkhead.admin.control import Control
from bulkhead.admin.effects import Exempt
from bulkhead.admin.router import Call
from bulkhead.pam import refusal
from bulkhead.store import selfservice

FIRST_ADMIN = Exempt("first_admin")


async def grant_target(
    control: Control, call: Call, first_admin: Callable[[Session], bool]
) -> str | Exempt:
    """The tenant in the path, or no grant for its first admin (`first_admin` says if it is one)."""
    name = call.params["name"]

    def open_for(db: Session) -> bool:
        return selfservice.bootstrap_open(db, name) and first_admin(db)

    return FIRST_ADMIN if await control.read(open_for) else name


def claim(db: Session, call: Call, tenant_id: str, action: str) -> None:
    """In the credential's transaction: the tenant has its first admin now.

    A call let through as the first admin that finds another one got there
    first is refused like any call without a grant.
    """
    if not selfservice.claim_bootstrap(db, tenant_id) and call.exempt == FIRST_ADMIN:
        raise refusal(action, call.params["name"])
