"""Authorization decisions by Cedar policies (via `cedarpy`), cached.

The policy set a request is judged by is the platform's (`platform.cedar`),
the policies generated from its tenant's attributes (allowed networks), and
the tenant's own policies (`_compile` names and checks them).  Tenants may
only add `forbid` policies, each wrapped so that it applies inside their
tenant alone: since a `forbid` beats every `permit`, a tenant can narrow the
platform's policy and never widen it.  A tenant admin's own policy management
(`SELF_REPAIR`) is judged without the tenant's policies, so no tenant policy
can lock the tenant out of repairing them.

Compiling a tenant's set is the costly part, so it is done once per text and
attribute change, by `prepare`, which the catalog calls off the event loop
before it publishes a snapshot; a decision then only evaluates.  Cedar skips
a policy whose condition fails to evaluate; for a `forbid` that would let a
request through, so any evaluation error here is a deny.  Decisions are
cached under everything they depend on, the policy version first: a change
to the catalog (keys, tenants, tenant policies) empties the cache.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import cedarpy
import orjson

from bulkhead.domain import Model, Role, Tenant, TenantContext
from bulkhead.errors import InvalidRequest, PermissionDenied
from bulkhead.policy._compile import (
    GENERATED,
    TENANT,
    compile_tenant_policies,
    invalid_policy,
    keyed,
    load,
    merge,
    named,
    network_policy,
    networks,
    parse,
)
from bulkhead.policy.rbac import ACTIONS, SELF_REPAIR, Environment, Resource, action_groups

# (policy version, tenant id -> that tenant's own policy text)
PolicySource = Callable[[], tuple[int, Mapping[str, str]]]

CLEARANCE = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}
# A caller's clearance when the platform set none.
DEFAULT_CLEARANCE = "internal"
SENSITIVITY = {"low": 0, "medium": 1, "normal": 1, "high": 2}
DEFAULT_DENY = "platform.deny-by-default"
UNKNOWN_ACTION = "platform.unknown-action"
_ERROR_POLICY = re.compile(r"policy `([^`]+)`")
_MAX_REGIONS = 16
_MAX_ADDRESS = 64
# Why a request was refused, by the id of the policy that refused it.  The
# generated and tenant policies are named by `_refusal`; these never name
# another tenant, so a refusal tells the caller nothing of anyone else.
_MESSAGES = {
    "platform.tenant-required": "credential has no tenant",
    "platform.surface.console-tenant-required": "credential has no tenant",
    "platform.surface.platform-credential-required": (
        "The platform API needs a platform credential."
    ),
    "platform.surface.tenant-credential-required": "The tenant API needs a tenant credential.",
    "platform.surface.models-need-a-tenant-key": (
        "Platform credentials cannot call models; use a tenant key."
    ),
    "platform.tenant-isolation": "This resource is not yours to act on.",
    "platform.clearance": "The resource's classification is above your clearance.",
    "platform.sensitive-model": "High-sensitivity models are not for end users.",
    "platform.region": "The resource is outside your tenant's allowed regions.",
    "platform.hours": "This is outside your tenant's allowed hours (UTC).",
    UNKNOWN_ACTION: "unknown action",
}
_GENERATED_MESSAGES = {
    "networks": "The client address is outside your tenant's allowed networks.",
    "invalid": (
        "Your tenant's stored policies no longer match the schema: a tenant admin must "
        "replace them (PUT /tenant/v1/policies)."
    ),
}


def _no_tenant_policies() -> tuple[int, Mapping[str, str]]:
    return 0, {}


def _read(name: str) -> str:
    return resources.files("bulkhead.policy").joinpath(name).read_text(encoding="utf-8")


def schema_text() -> str:
    """The Cedar schema, with an action (and its groups) for every registered action."""
    groups = sorted({g for a in ACTIONS for g in action_groups(a)})
    lines = [f'action "{g}";' for g in groups]
    for action in sorted(ACTIONS):
        parents = ", ".join(f'"{g}"' for g in action_groups(action))
        lines.append(
            f'action "{action}" in [{parents}] appliesTo '
            "{ principal: [Principal], resource: [Resource], context: Env };"
        )
    return _read("schema.cedarschema").replace("// @actions", "\n".join(lines))


def load_schema() -> cedarpy.Schema:
    return cedarpy.Schema.from_str(schema_text())


def _action_entities() -> list[dict[str, Any]]:
    groups = sorted({g for a in ACTIONS for g in action_groups(a)})
    entities: list[dict[str, Any]] = [
        {"uid": {"type": "Action", "id": g}, "attrs": {}, "parents": []} for g in groups
    ]
    for action in sorted(ACTIONS):
        parents = [{"type": "Action", "id": g} for g in action_groups(action)]
        entities.append({"uid": {"type": "Action", "id": action}, "attrs": {}, "parents": parents})
    return entities


def _hours(tenant: Tenant | None) -> tuple[int, int]:
    """The tenant's allowed hours; unreadable ones allow none (the policy denies every hour)."""
    hours = tenant.attributes.get("allowed_hours") if tenant is not None else None
    if not hours:
        return 0, 24
    if isinstance(hours, Mapping):
        hours = (hours.get("start", 0), hours.get("end", 24))
    try:
        start, end = (int(h) for h in hours)
    except (TypeError, ValueError):
        return 0, 0
    return start, end


def _regions(tenant: Tenant | None) -> list[str]:
    """The tenant's regions (none: any); a value that is not a list matches no region at all."""
    value = tenant.attributes.get("regions") if tenant is not None else None
    if not value:
        return []
    if not isinstance(value, list | tuple):
        return [""]  # No model's region is "": fail closed.
    return [str(v) for v in value[:_MAX_REGIONS]]


def model_resource(model: Model, owner: Tenant | None = None) -> Resource:
    """What policy knows of a model: its owner and its policy attributes.

    A private model without a classification of its own takes its owner's
    `default_classification` (pass the owner as `owner`); else "internal".
    """
    attrs = model.attributes
    default = "internal"
    if owner is not None and owner.id == model.owner_tenant_id:
        default = str(owner.attributes.get("default_classification", default))
    return Resource(
        tenant_id=model.owner_tenant_id,
        kind="model",
        classification=CLEARANCE.get(str(attrs.get("classification", default)), 3),
        sensitivity=SENSITIVITY.get(str(attrs.get("sensitivity", "normal")), 2),
        region=str(attrs.get("region", "")),
    )


@dataclass(frozen=True, slots=True)
class _TenantSets:
    """One tenant's compiled policy sets, and the text and networks they were compiled from."""

    source: tuple[str, tuple[str, ...] | None]
    full: cedarpy.PolicySet  # platform, generated and the tenant's own
    repair: cedarpy.PolicySet  # platform and generated: a tenant admin's `SELF_REPAIR` actions


def _refusal(decided: str, ctx: TenantContext, action: str) -> str:
    """The message for a deny by policy `decided`: its real reason, in the caller's terms."""
    found = _MESSAGES.get(decided)
    if found is not None:
        return found
    rest = decided.rpartition(".")[2]
    if decided.startswith(f"{GENERATED}.") and rest in _GENERATED_MESSAGES:
        return _GENERATED_MESSAGES[rest]
    prefix = f"{TENANT}.{ctx.tenant_id}."
    if ctx.tenant_id and decided.startswith(prefix):
        return f"Your tenant's policy '{decided.removeprefix(prefix)}' forbids '{action}'."
    return f"role '{ctx.role.value}' may not perform '{action}'"


class CedarAuthorizer:
    """The `Authorizer` of the gateway and the management APIs."""

    def __init__(
        self,
        source: PolicySource = _no_tenant_policies,
        *,
        cache_size: int = 65536,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.schema = load_schema()
        self._platform = keyed(named(parse(_read("platform.cedar"))))
        self._platform_set = load(self._platform)
        self._actions = cedarpy.Entities.from_json_str(orjson.dumps(_action_entities()).decode())
        self._source, self._now, self._cache_size = source, now, cache_size
        self._version: int | None = None
        # Each tenant's sets for the snapshot prepared last, and for the one before
        # it: requests still holding that snapshot must not compile on the loop.
        self._sets: dict[str, _TenantSets] = {}
        self._previous: dict[str, _TenantSets] = {}
        self._preparing = threading.Lock()
        self._cache: dict[tuple[Any, ...], str | None] = {}
        self._tenants: dict[str, Tenant] = {}

    def prepare(self, tenants: Iterable[Tenant], texts: Mapping[str, str]) -> None:
        """Compile the sets of every tenant whose policy text or networks changed.

        Blocking (it parses tenant text): the catalog calls it off the event
        loop, before it publishes the snapshot these tenants come from, so a
        decision on the loop finds its set ready.  Unchanged tenants keep theirs.
        """
        with self._preparing:
            fresh = {t.id: self._tenant_sets(t, texts.get(t.id, "")) for t in tenants}
            self._previous = {tid: self._sets[tid] for tid in fresh if tid in self._sets}
            self._sets = fresh

    def authorize(
        self,
        ctx: TenantContext,
        action: str,
        *,
        resource: Resource | None = None,
        env: Environment | None = None,
    ) -> None:
        if action not in ACTIONS:
            raise PermissionDenied(f"unknown action '{action}'", policy=UNKNOWN_ACTION)
        version, texts = self._source()
        if version != self._version:
            self._version, self._cache, self._tenants = version, {}, {}
        if ctx.tenant is not None and self._tenants.get(ctx.tenant.id) is not ctx.tenant:
            self._saw(ctx.tenant)
        env = env or Environment()
        hour = (env.now or self._now()).astimezone(UTC).hour
        clearance = str(ctx.attributes.get("clearance", DEFAULT_CLEARANCE))
        key: tuple[Any, ...] = (ctx.principal.id, ctx.role, ctx.tenant_id, clearance, _grants(ctx))
        # The resource by its fields, as its own `==` and `hash` take it: a tuple of strings
        # and numbers hashes and compares in C, the dataclass by generated Python.
        if resource is None:  # the action's own kind of resource, in the caller's tenant
            place = (ctx.tenant_id, action.partition(":")[0], *_DEFAULT_PLACE)
        else:
            place = _fields(resource)
        key += (action, *place, env.client_ip, hour)
        try:
            decided = self._cache[key]
        except KeyError:
            resource = resource or Resource(*place)
            decided = self._decide(ctx, action, resource, env.client_ip, hour, texts)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = decided
        if decided is not None:
            raise PermissionDenied(_refusal(decided, ctx, action), policy=decided)

    def _saw(self, tenant: Tenant) -> None:
        """Drop what was decided under other attributes of this tenant (without a new version)."""
        known = self._tenants.get(tenant.id)
        if known is not None and known.attributes != tenant.attributes:
            self._cache, self._tenants = {}, {}
        self._tenants[tenant.id] = tenant

    def _decide(
        self,
        ctx: TenantContext,
        action: str,
        resource: Resource,
        client_ip: str | None,
        hour: int,
        texts: Mapping[str, str],
    ) -> str | None:
        """None for allow, else the id of the policy that denies."""
        entities = self._actions.with_added_json_str(
            orjson.dumps([_principal(ctx), _resource(resource)]).decode()
        )
        request = {
            "principal": {"type": "Principal", "id": ctx.principal.id},
            "action": {"type": "Action", "id": action},
            "resource": {"type": "Resource", "id": "resource"},
            "context": {
                "ip": client_ip if client_ip and len(client_ip) <= _MAX_ADDRESS else "",
                "hour": hour,
                "grants": sorted(_grants(ctx)),
            },
        }
        policies = self._policies_for(ctx, action, texts)
        result = cedarpy.is_authorized(request, policies, entities, schema=self.schema)
        diagnostics = result.diagnostics
        for error in diagnostics.errors:
            found = _ERROR_POLICY.search(error)
            return found.group(1) if found else DEFAULT_DENY
        if result.allowed:
            return None
        reasons = sorted(diagnostics.reasons)
        return reasons[0] if reasons else DEFAULT_DENY

    def _policies_for(
        self, ctx: TenantContext, action: str, texts: Mapping[str, str]
    ) -> cedarpy.PolicySet:
        tenant = ctx.tenant
        if tenant is None:
            return self._platform_set
        sets = self._tenant_sets(tenant, texts.get(tenant.id, ""))
        # Compiled here only for a tenant `prepare` has not seen (a caller
        # without a catalog, such as a test): the gateway's catalog prepares
        # every tenant before a request can name it.  Kept until the next one.
        self._sets.setdefault(tenant.id, sets)
        if ctx.role is Role.TENANT_ADMIN and action in SELF_REPAIR:
            return sets.repair
        return sets.full

    def _tenant_sets(self, tenant: Tenant, text: str) -> _TenantSets:
        """The tenant's compiled sets: `prepare`'s if they match, else compiled (blocking)."""
        source = (text, networks(tenant))
        for known in (self._sets, self._previous):
            found = known.get(tenant.id)
            if found is not None and found.source == source:
                return found
        generated = network_policy(tenant) if source[1] is not None else {}
        repair = merge(self._platform, generated)
        return _TenantSets(source, load(merge(repair, self._own(tenant, text))), load(repair))

    def _own(self, tenant: Tenant, text: str) -> dict[str, Any]:
        if not text.strip():
            return {}
        try:
            return compile_tenant_policies(tenant.id, text, self.schema)
        except InvalidRequest:
            # Stored policies the schema no longer accepts: fail closed on the
            # model API, and leave the tenant API open to fix them.
            return invalid_policy(tenant.id)


def _grants(ctx: TenantContext) -> frozenset[str]:
    """The tenants a privileged-access grant opens to a platform admin; nobody else has any.

    Only the router sets `grants`, from live grants (`bulkhead.pam`), and only
    platform admins hold those: anything else calling itself `grants` (a claim,
    say) opens nothing.
    """
    held = ctx.attributes.get("grants")
    if ctx.role is not Role.PLATFORM_ADMIN or not isinstance(held, list | tuple | frozenset):
        return frozenset()
    return frozenset(str(g) for g in held)


def _principal(ctx: TenantContext) -> dict[str, Any]:
    start, end = _hours(ctx.tenant)
    return {
        "uid": {"type": "Principal", "id": ctx.principal.id},
        "attrs": {
            "tenant": ctx.tenant_id or "",
            "clearance": CLEARANCE.get(str(ctx.attributes.get("clearance", DEFAULT_CLEARANCE)), 0),
            "regions": _regions(ctx.tenant),
            "hours_from": start,
            "hours_to": end,
        },
        "parents": [{"type": "Role", "id": ctx.role.value}],
    }


_fields: Callable[[Resource], tuple[Any, ...]] = operator.attrgetter(
    *(f.name for f in dataclasses.fields(Resource))
)
"""A resource's fields in order: what its `==` and `hash` compare (`Resource(*fields)` is it)."""
_DEFAULT_PLACE = _fields(Resource())[2:]
"""What a resource of a tenant and a kind alone (its first two fields) holds besides them."""


def _resource(resource: Resource) -> dict[str, Any]:
    return {
        "uid": {"type": "Resource", "id": "resource"},
        "attrs": {
            "tenant": resource.tenant_id or "",
            "kind": resource.kind,
            "classification": resource.classification,
            "sensitivity": resource.sensitivity,
            "region": resource.region,
        },
        "parents": [],
    }
