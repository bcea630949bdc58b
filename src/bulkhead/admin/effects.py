"""What a management route can do: the table of effects, and which of them need a grant.

Every route declares the effects it can reach (`Route.effects`), whatever
path or query reaches them.  On the platform surface (`admin:` actions) a
route reaching a privileged effect needs the caller's live grant
(`bulkhead.pam`) before its handler runs: the router asks for it, so no
handler can forget, and a test walks the route table to hold every route to
it.  Where whether one call reaches the effect depends on its values (a limit
above the tier's default, a tenant's very first admin, an auditor's read),
the route's `grant_target` decides from the parsed call, before the handler;
a call it lets through without a grant names why (`Exempt`), and that reason
goes into the call's audit event.

On the tenant surface (`tenant:` actions) the same effects stay inside the
caller's own tenant and are bounded by the caller instead: a key mints or
rotates nothing broader than itself (`admin/rules.py`), and safeguards the
platform set are a floor that tenant settings only tighten
(`bulkhead.guard.looser_settings`, `repo.set_key_limits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Effect(StrEnum):
    READ_TENANT_DATA = "read_tenant_data"
    """A tenant's records or content: audit events, bundles, proofs, retained exchanges."""
    ACT_IN_TENANT = "act_in_tenant"
    """A credential that acts inside a tenant: its API keys, its principals' passwords, its IdP."""
    RAISE_LIMITS = "raise_limits"
    """A tenant's rate limits, budgets or quotas above its tier's defaults."""
    DELETE_TENANT = "delete_tenant"
    RETIRE_KEY = "retire_key"
    """A KEK version, a tenant's or the platform's: whatever it still wraps can no longer be
    opened."""
    ROTATE_AUDIT_KEY = "rotate_audit_key"
    """The key auditors verify new checkpoints with; the old private key is destroyed."""
    ROTATE_CA = "rotate_ca"
    """The internal CA: every peer (workers, upstreams, tenants' client certificates) must take
    the new trust bundle before the new version issues, and the old key is destroyed then."""
    PLATFORM_ROLES = "platform_roles"
    """Who holds a platform role: a new admin approves grants, a new auditor reads the whole
    audit log; a key for another platform principal acts as it (`admin/platform/operators.py`)."""
    CHANGE_SAFEGUARDS = "change_safeguards"
    """Guard settings, limits, policies, attributes: the platform sets a floor, tenants tighten."""


# The effects a platform admin reaches only with a live grant.  Changing
# safeguards is the platform's own job; above the tier it is `RAISE_LIMITS`.
PRIVILEGED_EFFECTS = frozenset(Effect) - {Effect.CHANGE_SAFEGUARDS}


@dataclass(frozen=True, slots=True)
class Exempt:
    """A call of a privileged route that needs no grant, and why (recorded in its audit event)."""

    reason: str
