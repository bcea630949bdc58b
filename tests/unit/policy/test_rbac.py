"""The role table: every role against every registered action, through the Cedar policies.

The expected table is written here, apart from the policies it checks.
"""

from __future__ import annotations

import itertools

import pytest

from bulkhead.domain import (
    PLATFORM_ROLES,
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.errors import PermissionDenied
from bulkhead.policy import ACTIONS, Authorizer, CedarAuthorizer

PA, PU = Role.PLATFORM_ADMIN, Role.PLATFORM_AUDITOR
TA, MD, EU, TU = Role.TENANT_ADMIN, Role.MODEL_DEVELOPER, Role.END_USER, Role.TENANT_AUDITOR

# Action -> the roles allowed to take it.  Everything else is denied.
EXPECTED: dict[str, frozenset[Role]] = {
    "v1:chat": frozenset({TA, MD, EU}),
    "v1:completions": frozenset({TA, MD, EU}),
    "v1:embeddings": frozenset({TA, MD, EU}),
    "v1:models.list": frozenset({TA, MD, EU}),
    "v1:files.create": frozenset({TA, MD, EU}),
    "v1:files.list": frozenset({TA, MD, EU}),
    "v1:files.get": frozenset({TA, MD, EU}),
    "v1:files.content": frozenset({TA, MD, EU}),
    "v1:files.delete": frozenset({TA, MD, EU}),
    "v1:models.delete": frozenset({TA, MD}),
    # Fine-tuning builds models: tenant admins and model developers, never end users.
    "v1:fine_tuning.jobs.create": frozenset({TA, MD}),
    "v1:fine_tuning.jobs.list": frozenset({TA, MD}),
    "v1:fine_tuning.jobs.get": frozenset({TA, MD}),
    "v1:fine_tuning.jobs.cancel": frozenset({TA, MD}),
    "v1:fine_tuning.jobs.events.list": frozenset({TA, MD}),
    "v1:fine_tuning.jobs.checkpoints.list": frozenset({TA, MD}),
    "v1:vector_stores.create": frozenset({TA, MD, EU}),
    "v1:vector_stores.list": frozenset({TA, MD, EU}),
    "v1:vector_stores.get": frozenset({TA, MD, EU}),
    "v1:vector_stores.update": frozenset({TA, MD, EU}),
    "v1:vector_stores.delete": frozenset({TA, MD, EU}),
    "v1:vector_stores.search": frozenset({TA, MD, EU}),
    "v1:vector_stores.files.create": frozenset({TA, MD, EU}),
    "v1:vector_stores.files.list": frozenset({TA, MD, EU}),
    "v1:vector_stores.files.get": frozenset({TA, MD, EU}),
    "v1:vector_stores.files.delete": frozenset({TA, MD, EU}),
    "admin:tenants.create": frozenset({PA}),
    "admin:tenants.list": frozenset({PA, PU}),
    "admin:tenants.get": frozenset({PA, PU}),
    "admin:tenants.update": frozenset({PA}),
    "admin:principals.create": frozenset({PA}),
    "admin:principals.list": frozenset({PA, PU}),
    "admin:keys.create": frozenset({PA}),
    "admin:keys.list": frozenset({PA, PU}),
    "admin:keys.revoke": frozenset({PA}),
    "admin:models.create": frozenset({PA}),
    "admin:models.list": frozenset({PA, PU}),
    "admin:models.grant": frozenset({PA}),
    "admin:models.revoke_grant": frozenset({PA}),
    "admin:models.import": frozenset({PA}),
    "admin:workers.list": frozenset({PA, PU}),
    "admin:gpus.list": frozenset({PA, PU}),
    "admin:gpus.plan": frozenset({PA}),
    "admin:audit.list": frozenset({PA, PU}),
    "admin:audit.export.get": frozenset({PA, PU}),
    "admin:audit.proof.get": frozenset({PA, PU}),
    "admin:audit.keys.list": frozenset({PA, PU}),
    "admin:audit.keys.rotate": frozenset({PA}),
    "admin:kms.get": frozenset({PA, PU}),
    "admin:kms.list": frozenset({PA, PU}),
    "admin:kms.platform.rotate": frozenset({PA}),
    "admin:kms.platform.retire": frozenset({PA}),
    "admin:kms.ca.rotate": frozenset({PA}),
    "admin:kms.rotate": frozenset({PA}),
    "admin:kms.retire": frozenset({PA}),
    "admin:tenants.idp.set": frozenset({PA}),
    "admin:tenants.idp.get": frozenset({PA, PU}),
    "admin:tenants.idp.delete": frozenset({PA}),
    "admin:principals.password.set": frozenset({PA}),
    "admin:platform_principals.create": frozenset({PA}),
    "admin:platform_principals.list": frozenset({PA, PU}),
    "admin:platform_principals.get": frozenset({PA, PU}),
    "admin:platform_principals.roles.set": frozenset({PA}),
    "admin:platform_principals.disable": frozenset({PA}),
    "admin:platform_principals.enable": frozenset({PA}),
    "admin:platform_principals.delete": frozenset({PA}),
    "admin:platform_principals.keys.create": frozenset({PA}),
    "admin:platform_principals.keys.list": frozenset({PA, PU}),
    "admin:tenants.client_cert": frozenset({PA}),
    "admin:tenants.configure": frozenset({PA}),
    "admin:tenants.delete": frozenset({PA}),
    "admin:policies.list": frozenset({PA, PU}),
    "admin:policies.update": frozenset({PA}),
    "admin:policies.delete": frozenset({PA}),
    "admin:access.create": frozenset({PA}),
    "admin:access.list": frozenset({PA, PU}),
    "admin:access.get": frozenset({PA, PU}),
    "admin:access.approve": frozenset({PA}),
    "admin:access.deny": frozenset({PA}),
    "tenant:self.get": frozenset({TA, TU}),
    "tenant:keys.create": frozenset({TA}),
    "tenant:keys.list": frozenset({TA, TU}),
    "tenant:keys.revoke": frozenset({TA}),
    "tenant:principals.create": frozenset({TA}),
    "tenant:principals.list": frozenset({TA, TU}),
    "tenant:usage.get": frozenset({TA, TU}),
    "tenant:models.list": frozenset({TA, TU}),
    "tenant:audit.list": frozenset({TA, TU}),
    "tenant:audit.export.get": frozenset({TA, TU}),
    "tenant:audit.proof.get": frozenset({TA, TU}),
    "tenant:audit.keys.list": frozenset({TA, TU}),
    "tenant:exchanges.list": frozenset({TA, TU}),
    "tenant:exchanges.get": frozenset({TA, TU}),
    "tenant:policies.list": frozenset({TA, TU}),
    "tenant:policies.update": frozenset({TA}),
    "admin:tenants.attributes.set": frozenset({PA}),
    "admin:tenants.attributes.get": frozenset({PA, PU}),
    "admin:models.attributes.set": frozenset({PA}),
    "admin:models.attributes.get": frozenset({PA, PU}),
    "admin:principals.attributes.set": frozenset({PA}),
    "admin:principals.attributes.get": frozenset({PA, PU}),
    "admin:surface": frozenset({PA, PU}),
    "tenant:surface": frozenset({TA, MD, EU, TU}),
    "admin:quota_requests.list": frozenset({PA, PU}),
    "admin:quota_requests.approve": frozenset({PA}),
    "admin:quota_requests.deny": frozenset({PA}),
    "tenant:principals.update": frozenset({TA}),
    "tenant:principals.delete": frozenset({TA}),
    "tenant:keys.rotate": frozenset({TA}),
    "tenant:models.versions.create": frozenset({TA}),
    "tenant:models.versions.list": frozenset({TA, TU}),
    "tenant:models.versions.retire": frozenset({TA}),
    # Weights for a model's own server: not a read, so never an auditor's.
    "tenant:models.artifacts.pull": frozenset({TA, MD}),
    "tenant:quota_requests.create": frozenset({TA}),
    "tenant:quota_requests.list": frozenset({TA, TU}),
    "admin:limits.get": frozenset({PA, PU}),
    "admin:limits.update": frozenset({PA}),
    "tenant:limits.get": frozenset({TA, TU}),
    "tenant:keys.limits.get": frozenset({TA, TU}),
    "tenant:keys.limits.update": frozenset({TA}),
    "admin:guard.get": frozenset({PA, PU}),
    "admin:guard.update": frozenset({PA}),
    "tenant:guard.get": frozenset({TA, TU}),
    "tenant:guard.update": frozenset({TA}),
    "admin:upstream_credentials.create": frozenset({PA}),
    "admin:upstream_credentials.list": frozenset({PA, PU}),
    "admin:upstream_credentials.get": frozenset({PA, PU}),
    "admin:upstream_credentials.delete": frozenset({PA}),
    "admin:upstream_credentials.allow": frozenset({PA}),
    "admin:upstream_credentials.disallow": frozenset({PA}),
    "admin:tenants.upstreams.get": frozenset({PA, PU}),
    "admin:tenants.upstreams.set": frozenset({PA}),
    "tenant:upstreams.get": frozenset({TA, TU}),
    # The console's own pages and session: every role (the APIs behind it decide the rest).
    "console:surface": frozenset(Role),
    "console:pages.get": frozenset(Role),
    "console:session.get": frozenset(Role),
    "console:session.delete": frozenset(Role),
}
AUTHORIZER: Authorizer = CedarAuthorizer()
TENANT = Tenant(id="ten_1", name="acme", tier=Tier.SHARED, status=TenantStatus.ACTIVE)


def context(role: Role, *, with_tenant: bool | None = None) -> TenantContext:
    if with_tenant is None:
        with_tenant = role not in PLATFORM_ROLES
    tenant = TENANT if with_tenant else None
    principal = Principal(
        id="prn_1",
        tenant_id=tenant.id if tenant else None,
        name="someone",
        kind=PrincipalKind.USER,
        roles=frozenset({role}),
    )
    return TenantContext(tenant=tenant, principal=principal, role=role, credential_id="key1")


def test_expected_table_names_exactly_the_known_actions() -> None:
    assert set(EXPECTED) == set(ACTIONS)


@pytest.mark.parametrize(
    ("role", "action"),
    list(itertools.product(Role, sorted(ACTIONS))),
    ids=lambda value: str(value),
)
def test_role_action_matrix(role: Role, action: str) -> None:
    if role in EXPECTED[action]:
        AUTHORIZER.authorize(context(role), action)
    else:
        with pytest.raises(PermissionDenied):
            AUTHORIZER.authorize(context(role), action)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(
    "action",
    [
        pytest.param("", id="empty"),
        pytest.param("v1:unknown", id="unknown-v1"),
        pytest.param("admin:*", id="wildcard"),
        pytest.param("ADMIN:tenants.list", id="upper-case"),
        pytest.param("admin:tenants.list ", id="trailing-space"),
        pytest.param("tenants.list", id="no-surface"),
        pytest.param("tenant:keys", id="prefix-of-an-action"),
    ],
)
def test_unknown_actions_are_denied_for_every_role(role: Role, action: str) -> None:
    with pytest.raises(PermissionDenied, match="unknown action"):
        AUTHORIZER.authorize(context(role), action)


@pytest.mark.parametrize("role", [TA, MD, EU, TU])
def test_tenant_role_without_a_tenant_is_denied(role: Role) -> None:
    allowed = sorted(a for a, roles in EXPECTED.items() if role in roles)
    assert allowed
    for action in allowed:
        with pytest.raises(PermissionDenied, match="no tenant"):
            AUTHORIZER.authorize(context(role, with_tenant=False), action)
