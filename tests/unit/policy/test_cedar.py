"""`CedarAuthorizer`: tenancy, attributes, tenants' own policies and the decision cache.

Every case is decided by Cedar itself: the policies in `platform.cedar` and
the ones the tests add, evaluated through `cedarpy`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from bulkhead.domain import (
    PLATFORM_ROLES,
    Endpoint,
    Model,
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.errors import InvalidRequest, PermissionDenied
from bulkhead.policy import (
    ACTIONS,
    CedarAuthorizer,
    Environment,
    Resource,
    compile_tenant_policies,
    load_schema,
    model_resource,
)
from tests.unit.policy.test_rbac import EXPECTED

TA, MD, EU, PA = Role.TENANT_ADMIN, Role.MODEL_DEVELOPER, Role.END_USER, Role.PLATFORM_ADMIN
NOON = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
AUTHORIZER = CedarAuthorizer(now=lambda: NOON)


def tenant(tid: str = "ten_1", **attributes: Any) -> Tenant:
    return Tenant(
        id=tid, name=tid, tier=Tier.SHARED, status=TenantStatus.ACTIVE, attributes=attributes
    )


def context(role: Role, owner: Tenant | None = None, **attributes: Any) -> TenantContext:
    if owner is None and role not in PLATFORM_ROLES:
        owner = tenant()
    principal = Principal(
        id=f"prn_{role.value}",
        tenant_id=owner.id if owner else None,
        name="someone",
        kind=PrincipalKind.USER,
        roles=frozenset({role}),
    )
    return TenantContext(
        tenant=owner, principal=principal, role=role, credential_id="key1", attributes=attributes
    )


def denied_by(authorizer: CedarAuthorizer, ctx: TenantContext, action: str, **kw: Any) -> str:
    with pytest.raises(PermissionDenied) as caught:
        authorizer.authorize(ctx, action, **kw)
    assert caught.value.policy is not None
    return caught.value.policy


def model(**attributes: Any) -> Model:
    return Model(
        id="mdl_1",
        name="m",
        owner_tenant_id=None,
        endpoints=frozenset({Endpoint.CHAT}),
        attributes=attributes,
    )


# Tenancy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "action", "owner"),
    list(itertools.product(Role, sorted(ACTIONS), ["own", "shared"])),
    ids=str,
)
def test_own_and_shared_resources_follow_the_role_table(
    role: Role, action: str, owner: str
) -> None:
    ctx = context(role)
    resource = Resource(tenant_id=ctx.tenant_id if owner == "own" else None)
    if role in EXPECTED[action]:
        AUTHORIZER.authorize(ctx, action, resource=resource)
    else:
        denied_by(AUTHORIZER, ctx, action, resource=resource)


@pytest.mark.parametrize(
    ("role", "action"), list(itertools.product(Role, sorted(ACTIONS))), ids=str
)
def test_another_tenants_resource_is_denied_for_every_role(role: Role, action: str) -> None:
    policy = denied_by(AUTHORIZER, context(role), action, resource=Resource(tenant_id="ten_2"))
    if role in EXPECTED[action]:
        assert policy == "platform.tenant-isolation"


def test_a_grant_opens_one_other_tenant_and_no_more() -> None:
    admin = context(PA, grants=["ten_2"])
    AUTHORIZER.authorize(admin, "admin:tenants.get", resource=Resource(tenant_id="ten_2"))
    assert (
        denied_by(AUTHORIZER, admin, "admin:tenants.get", resource=Resource(tenant_id="ten_3"))
        == "platform.tenant-isolation"
    )


def test_unknown_action_names_its_policy() -> None:
    assert denied_by(AUTHORIZER, context(EU), "v1:nope") == "platform.unknown-action"


# Attributes ----------------------------------------------------------------------------


def test_classification_above_clearance_is_denied() -> None:
    secret = model_resource(model(classification="confidential"))
    assert denied_by(AUTHORIZER, context(EU), "v1:chat", resource=secret) == "platform.clearance"
    AUTHORIZER.authorize(context(EU, clearance="confidential"), "v1:chat", resource=secret)
    AUTHORIZER.authorize(context(EU), "v1:chat", resource=model_resource(model()))


@pytest.mark.parametrize(
    ("client_ip", "allowed"),
    [
        ("10.1.2.3", True),
        ("192.168.7.9", True),
        ("192.168.8.1", False),
        ("2001:db8::1", False),
        (None, False),
        ("not-an-address", False),  # Cedar errors on it; an error is a deny.
    ],
)
def test_client_ip_must_be_in_the_tenants_networks(client_ip: str | None, allowed: bool) -> None:
    authorizer = CedarAuthorizer(now=lambda: NOON)
    ctx = context(EU, tenant(allowed_networks=["10.0.0.0/8", "192.168.7.0/24"]))
    env = Environment(client_ip=client_ip)
    if allowed:
        authorizer.authorize(ctx, "v1:chat", env=env)
    else:
        assert denied_by(authorizer, ctx, "v1:chat", env=env) == "platform.tenant.ten_1.networks"


@pytest.mark.parametrize(
    ("hours", "hour", "allowed"),
    [
        ((8, 18), 12, True),
        ((8, 18), 18, False),
        ((8, 18), 7, False),
        ((22, 6), 23, True),
        ((22, 6), 3, True),
        ((22, 6), 12, False),
    ],
)
def test_outside_the_tenants_hours_is_denied(
    hours: tuple[int, int], hour: int, allowed: bool
) -> None:
    ctx = context(MD, tenant(allowed_hours=list(hours)))
    env = Environment(now=NOON.replace(hour=hour))
    if allowed:
        AUTHORIZER.authorize(ctx, "v1:chat", env=env)
    else:
        assert denied_by(AUTHORIZER, ctx, "v1:chat", env=env) == "platform.hours"


def test_a_model_outside_the_tenants_regions_is_denied() -> None:
    ctx = context(EU, tenant(regions=["eu-west"]))
    AUTHORIZER.authorize(ctx, "v1:chat", resource=model_resource(model(region="eu-west")))
    us = model_resource(model(region="us-east"))
    assert denied_by(AUTHORIZER, ctx, "v1:chat", resource=us) == "platform.region"
    AUTHORIZER.authorize(context(EU), "v1:chat", resource=us)  # No regions set: any.


def test_high_sensitivity_models_are_not_for_end_users() -> None:
    high = model_resource(model(sensitivity="high"))
    assert denied_by(AUTHORIZER, context(EU), "v1:chat", resource=high) == (
        "platform.sensitive-model"
    )
    AUTHORIZER.authorize(context(MD), "v1:chat", resource=high)
    AUTHORIZER.authorize(context(EU), "v1:files.list", resource=high)  # Not an invocation.


def test_medium_is_the_middle_sensitivity_and_end_users_may_invoke_it() -> None:
    AUTHORIZER.authorize(
        context(EU), "v1:chat", resource=model_resource(model(sensitivity="medium"))
    )


def test_a_tenants_default_classification_covers_its_own_models_only() -> None:
    owner = tenant(default_classification="confidential")
    own = Model(
        id="mdl_2", name="own", owner_tenant_id="ten_1", endpoints=frozenset({Endpoint.CHAT})
    )
    ctx = context(EU, owner)
    resource = model_resource(own, owner)
    assert denied_by(AUTHORIZER, ctx, "v1:chat", resource=resource) == "platform.clearance"
    AUTHORIZER.authorize(ctx, "v1:chat", resource=model_resource(model(), owner))  # Shared.
    labelled = Model(
        id="mdl_3",
        name="labelled",
        owner_tenant_id="ten_1",
        endpoints=frozenset({Endpoint.CHAT}),
        attributes={"classification": "public"},
    )
    AUTHORIZER.authorize(ctx, "v1:chat", resource=model_resource(labelled, owner))


def test_allowed_hours_may_be_stored_as_start_and_end() -> None:
    ctx = context(MD, tenant(allowed_hours={"start": 8, "end": 18}))
    AUTHORIZER.authorize(ctx, "v1:chat", env=Environment(now=NOON))
    late = Environment(now=NOON.replace(hour=20))
    assert denied_by(AUTHORIZER, ctx, "v1:chat", env=late) == "platform.hours"


# Surfaces: which credential may use which API ------------------------------------------


@pytest.mark.parametrize(
    ("role", "with_tenant", "action", "policy"),
    [
        (PA, False, "tenant:surface", "platform.surface.tenant-credential-required"),
        (
            Role.PLATFORM_AUDITOR,
            False,
            "tenant:surface",
            "platform.surface.tenant-credential-required",
        ),
        (PA, False, "v1:chat", "platform.surface.models-need-a-tenant-key"),
        (
            Role.PLATFORM_AUDITOR,
            False,
            "v1:models.list",
            "platform.surface.models-need-a-tenant-key",
        ),
        (TA, True, "admin:surface", "platform.surface.platform-credential-required"),
        (EU, True, "admin:tenants.list", "platform.surface.platform-credential-required"),
        (EU, False, "tenant:surface", "platform.tenant-required"),
        (EU, True, "v1:models.delete", "platform.model-deleters"),
    ],
    ids=str,
)
def test_the_wrong_credential_for_a_surface_is_denied_by_a_named_policy(
    role: Role, with_tenant: bool, action: str, policy: str
) -> None:
    principal = Principal(
        id="prn_x",
        tenant_id="ten_1" if with_tenant else None,
        name="someone",
        kind=PrincipalKind.USER,
        roles=frozenset({role}),
    )
    ctx = TenantContext(
        tenant=tenant() if with_tenant else None, principal=principal, role=role, credential_id="k"
    )
    assert denied_by(AUTHORIZER, ctx, action) == policy


def test_a_platform_role_bound_to_a_tenant_still_gets_no_platform_api() -> None:
    # A misbuilt context (platform role, tenant credential) is refused by the surface policy.
    ctx = context(PA, tenant())
    assert (
        denied_by(AUTHORIZER, ctx, "admin:surface")
        == "platform.surface.platform-credential-required"
    )


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_every_tenant_role_may_enter_the_tenant_api(role: Role) -> None:
    if role in PLATFORM_ROLES:
        denied_by(AUTHORIZER, context(role), "tenant:surface")
    else:
        AUTHORIZER.authorize(context(role), "tenant:surface")


def test_a_platform_admin_needs_a_grant_for_a_tenants_resource() -> None:
    theirs = Resource(tenant_id="ten_2", kind="tenant")
    assert (
        denied_by(AUTHORIZER, context(PA), "admin:tenants.delete", resource=theirs)
        == "platform.tenant-isolation"
    )
    AUTHORIZER.authorize(context(PA, grants=["ten_2"]), "admin:tenants.delete", resource=theirs)


# Tenants' own policies -----------------------------------------------------------------

NO_CHAT = '@id("no-chat")\nforbid (principal, action == Action::"v1:chat", resource);'


class Source:
    def __init__(self, texts: Mapping[str, str], version: int = 1):
        self.texts, self.version = dict(texts), version

    def __call__(self) -> tuple[int, Mapping[str, str]]:
        return self.version, self.texts


def test_a_tenant_forbid_narrows_its_own_tenant_only() -> None:
    authorizer = CedarAuthorizer(Source({"ten_1": NO_CHAT}))
    ctx = context(EU)
    assert denied_by(authorizer, ctx, "v1:chat") == "tenant.ten_1.no-chat"
    authorizer.authorize(ctx, "v1:embeddings")
    authorizer.authorize(context(EU, tenant("ten_2")), "v1:chat")


def test_a_tenant_forbid_cannot_reach_another_tenants_principals() -> None:
    everyone = '@id("all")\nforbid (principal, action, resource);'
    compiled = compile_tenant_policies("ten_1", everyone, load_schema())
    assert list(compiled) == ["tenant.ten_1.all"]
    authorizer = CedarAuthorizer(Source({"ten_1": everyone}))
    authorizer.authorize(context(EU, tenant("ten_2")), "v1:chat")


def test_a_tenant_may_restrict_networks_with_its_own_policy() -> None:
    office = (
        '@id("office-only")\nforbid (principal, action, resource)\n'
        'unless { ip(context.ip).isInRange(ip("10.0.0.0/8")) };'
    )
    authorizer = CedarAuthorizer(Source({"ten_1": office}))
    authorizer.authorize(context(EU), "v1:chat", env=Environment(client_ip="10.0.0.5"))
    outside = Environment(client_ip="8.8.8.8")
    assert denied_by(authorizer, context(EU), "v1:chat", env=outside) == "tenant.ten_1.office-only"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("permit (principal, action, resource);", "may only forbid", id="permit"),
        pytest.param(
            "forbid (principal, action, resource) when { principal.salary > 3 };",
            "does not match the schema",
            id="unknown-attribute",
        ),
        pytest.param(
            'forbid (principal, action == Action::"v1:nope", resource);',
            "does not match the schema",
            id="unknown-action",
        ),
        pytest.param("forbid (principal, action, resource", "do not parse", id="syntax"),
        pytest.param(
            "forbid (principal == ?principal, action, resource);", "templates", id="template"
        ),
        pytest.param(
            '@id("a b")\nforbid (principal, action, resource);', "must match", id="bad-id"
        ),
    ],
)
def test_tenant_policies_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        compile_tenant_policies("ten_1", text, load_schema())


def test_stored_policies_that_no_longer_check_close_the_model_api() -> None:
    authorizer = CedarAuthorizer(Source({"ten_1": "permit (principal, action, resource);"}))
    assert denied_by(authorizer, context(TA), "v1:chat") == "platform.tenant.ten_1.invalid"
    authorizer.authorize(context(TA), "tenant:policies.update")


# The cache -----------------------------------------------------------------------------


def test_a_cached_decision_is_the_same_and_a_new_version_drops_it() -> None:
    source = Source({})
    authorizer = CedarAuthorizer(source)
    ctx = context(EU)
    authorizer.authorize(ctx, "v1:chat")
    authorizer.authorize(ctx, "v1:chat")
    assert denied_by(authorizer, ctx, "tenant:keys.list") == "platform.deny-by-default"
    assert denied_by(authorizer, ctx, "tenant:keys.list") == "platform.deny-by-default"
    source.texts = {"ten_1": NO_CHAT}
    authorizer.authorize(ctx, "v1:chat")  # Same version: the cached allow stands.
    source.version = 2
    assert denied_by(authorizer, ctx, "v1:chat") == "tenant.ten_1.no-chat"


def test_the_cache_is_bounded() -> None:
    authorizer = CedarAuthorizer(cache_size=4)
    for i in range(20):
        authorizer.authorize(context(EU), "v1:chat", env=Environment(client_ip=f"10.0.0.{i}"))
    assert len(authorizer._cache) <= 4


# Compiled sets: prepared once per text, off the request path -----------------------------


def test_prepare_compiles_once_per_text_and_networks() -> None:
    authorizer = CedarAuthorizer(Source({"ten_1": NO_CHAT}))
    owner = tenant()
    authorizer.prepare([owner], {"ten_1": NO_CHAT})
    prepared = authorizer._sets["ten_1"]
    authorizer.prepare([owner], {"ten_1": NO_CHAT})
    assert authorizer._sets["ten_1"] is prepared
    assert denied_by(authorizer, context(EU, owner), "v1:chat") == "tenant.ten_1.no-chat"
    assert authorizer._sets["ten_1"] is prepared  # The decision used the prepared set.
    authorizer.prepare([tenant(allowed_networks=["10.0.0.0/8"])], {"ten_1": NO_CHAT})
    assert authorizer._sets["ten_1"] is not prepared
    # A request still on the snapshot before finds its set too: nothing compiles on the loop.
    assert authorizer._tenant_sets(owner, NO_CHAT) is prepared
    authorizer.prepare([], {})
    assert authorizer._sets == {}


# Self-repair: a tenant admin always reaches its tenant's own policies --------------------


@pytest.mark.parametrize(
    "action", ["tenant:surface", "tenant:policies.list", "tenant:policies.update"]
)
def test_a_tenant_policy_cannot_forbid_its_admin_the_policy_api(action: str) -> None:
    authorizer = CedarAuthorizer(Source({"ten_1": "forbid (principal, action, resource);"}))
    authorizer.authorize(context(TA), action)
    assert denied_by(authorizer, context(TA), "tenant:keys.list") == "tenant.ten_1.policy0"
    if action != "tenant:surface":
        assert denied_by(authorizer, context(MD), action) == "tenant.ten_1.policy0"


def test_the_platforms_own_policies_still_hold_for_self_repair() -> None:
    authorizer = CedarAuthorizer(Source({"ten_1": "forbid (principal, action, resource);"}))
    owner = tenant(allowed_networks=["10.0.0.0/8"])
    outside = Environment(client_ip="8.8.8.8")
    assert denied_by(authorizer, context(TA, owner), "tenant:policies.update", env=outside) == (
        "platform.tenant.ten_1.networks"
    )


# Refusals say why ------------------------------------------------------------------------


def refusal(authorizer: CedarAuthorizer, ctx: TenantContext, action: str, **kw: Any) -> str:
    with pytest.raises(PermissionDenied) as caught:
        authorizer.authorize(ctx, action, **kw)
    return caught.value.message


def test_refusals_name_the_deciding_rule() -> None:
    authorizer = CedarAuthorizer(Source({"ten_1": NO_CHAT}), now=lambda: NOON)
    assert "policy 'no-chat'" in refusal(authorizer, context(EU), "v1:chat")
    networked = context(EU, tenant("ten_2", allowed_networks=["10.0.0.0/8"]))
    assert "allowed networks" in refusal(authorizer, networked, "v1:chat")
    secret = model_resource(model(classification="restricted"))
    assert "clearance" in refusal(
        authorizer, context(EU, tenant("ten_3")), "v1:chat", resource=secret
    )
    assert refusal(authorizer, context(EU, tenant("ten_3")), "tenant:keys.list") == (
        "role 'end_user' may not perform 'tenant:keys.list'"
    )
    other = refusal(AUTHORIZER, context(EU), "v1:chat", resource=Resource(tenant_id="ten_9"))
    assert "ten_9" not in other


@pytest.mark.parametrize("stored", [["not-a-network"], "10.0.0.0/8", {"a": 1}])
def test_allowed_networks_that_do_not_read_allow_nobody(stored: object) -> None:
    ctx = context(EU, tenant(allowed_networks=stored))
    inside = Environment(client_ip="10.0.0.1")
    assert denied_by(CedarAuthorizer(), ctx, "v1:chat", env=inside) == (
        "platform.tenant.ten_1.networks"
    )


def test_stored_attributes_that_do_not_read_fail_closed() -> None:
    us = model_resource(model(region="us-east"))
    garbled = context(EU, tenant(regions="eu-west"))
    assert denied_by(AUTHORIZER, garbled, "v1:chat", resource=us) == "platform.region"
    assert denied_by(AUTHORIZER, context(EU, tenant(allowed_hours=["x", 3])), "v1:chat") == (
        "platform.hours"
    )


def test_policies_parse_one_at_a_time_to_what_the_whole_text_parses_to() -> None:
    """cedarpy holds the interpreter lock while it parses: a tenant's whole set at once (90
    policies of 8 conditions: 20 ms here) would hold the event loop; one policy at a time
    gives the same JSON form, the same ids included."""
    import cedarpy
    import orjson

    from bulkhead.policy._compile import parse

    test = " || ".join(f'resource.name == "m{i}"' for i in range(8))
    head = "forbid (principal, action, resource) when"
    one = f"// a comment; with a semicolon\n{head} {{ {test} }};\n"
    text = f'@id("first") {head} {{ context.x == ";" }};\n' + one * 40
    assert parse(text) == orjson.loads(cedarpy.policies_to_json_str(text))
