"""Authorization decisions by Cedar policies (via `cedarpy`), cached.

The policy set a request is judged by is the platform's (`platform.cedar`),
the policies generated from its tenant's attributes (allowed networks), and
the tenant's own policies.  Tenants may only add `forbid` policies, each
wrapped so that it applies inside their tenant alone: since a `forbid` beats
every `permit`, a tenant can narrow the platform's policy and never widen it.

Cedar skips a policy whose condition fails to evaluate; for a `forbid` that
would let a request through, so any evaluation error here is a deny.
Decisions are cached under everything they depend on, the policy version
first: a change to the catalog (keys, tenants, tenant policies) empties the
cache.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import cedarpy
import orjson

from bulkhead.domain import Model, Tenant, TenantContext
from bulkhead.errors import InvalidRequest, PermissionDenied
from bulkhead.policy.rbac import ACTIONS, Environment, Resource, action_groups

# (policy version, tenant id -> that tenant's own policy text)
PolicySource = Callable[[], tuple[int, Mapping[str, str]]]

CLEARANCE = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}
SENSITIVITY = {"low": 0, "medium": 1, "normal": 1, "high": 2}
DEFAULT_DENY = "platform.deny-by-default"
UNKNOWN_ACTION = "platform.unknown-action"
MAX_POLICY_BYTES = 64 * 1024
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ERROR_POLICY = re.compile(r"policy `([^`]+)`")
# Cedar's strict validation wants ip("...") literals; `ip(context.ip)` is how a
# policy reads the client address, so that one complaint is let through.
_NON_LITERAL = "extension constructors may not be called with non-literal expressions"
_MESSAGES = {
    "platform.tenant-required": "credential has no tenant",
    "platform.surface.platform-credential-required": (
        "The platform API needs a platform credential."
    ),
    "platform.surface.tenant-credential-required": "The tenant API needs a tenant credential.",
    "platform.surface.models-need-a-tenant-key": (
        "Platform credentials cannot call models; use a tenant key."
    ),
    UNKNOWN_ACTION: "unknown action",
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


def _parse(text: str) -> dict[str, Any]:
    """Cedar text to its JSON form (EST): {"staticPolicies": {...}, "templates": {...}}."""
    try:
        parsed: dict[str, Any] = orjson.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        raise InvalidRequest(f"The policies do not parse: {exc}", param="policies") from None
    return parsed


def _keyed_by_id(est: Mapping[str, Any]) -> dict[str, Any]:
    """Policies keyed by their @id, so that a decision names them by it."""
    out: dict[str, Any] = {}
    for pid, policy in est["staticPolicies"].items():
        out[policy.get("annotations", {}).get("id") or pid] = policy
    return out


def _tenant_condition(tenant_id: str) -> dict[str, Any]:
    principal_tenant = {".": {"left": {"Var": "principal"}, "attr": "tenant"}}
    return {
        "kind": "when",
        "body": {"==": {"left": principal_tenant, "right": {"Value": tenant_id}}},
    }


def compile_tenant_policies(
    tenant_id: str, text: str, schema: cedarpy.Schema
) -> dict[str, dict[str, Any]]:
    """A tenant's policy text, checked and scoped; raises `InvalidRequest` if it is refused.

    Refused: text that does not parse or fails the schema, templates, and any
    `permit`.  Each policy's @id becomes `tenant.<tenant id>.<its @id>`, and
    each gets a condition that it applies to this tenant's principals only.
    """
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise InvalidRequest("The policies are too long (64 KiB at most).", param="policies")
    est = _parse(text)
    if est.get("templates"):
        raise InvalidRequest("Policy templates are not accepted.", param="policies")
    result = cedarpy.validate_policies(text, schema)
    names = result.id_annotations_by_policy_id
    for error in result.errors:
        if _NON_LITERAL not in error.error:
            name = names.get(error.policy_id, error.policy_id)
            raise InvalidRequest(
                f"Policy '{name}' does not match the schema: {error.error}", param="policies"
            )
    compiled: dict[str, dict[str, Any]] = {}
    for name, policy in _keyed_by_id(est).items():
        if policy["effect"] != "forbid":
            raise InvalidRequest(
                f"Policy '{name}' is a permit: tenant policies may only forbid.", param="policies"
            )
        if not _ID.match(name):
            raise InvalidRequest(f"Policy id '{name}' must match {_ID.pattern}.", param="policies")
        scoped = f"tenant.{tenant_id}.{name}"
        policy["annotations"] = {**policy.get("annotations", {}), "id": scoped}
        policy["conditions"] = [_tenant_condition(tenant_id), *policy.get("conditions", [])]
        compiled[scoped] = policy
    return compiled


def _network_policy(tenant: Tenant) -> dict[str, Any]:
    """`allowed_networks` as a forbid: outside them (or from an unknown address), nothing."""
    networks = []
    for raw in tenant.attributes.get("allowed_networks") or ():
        try:
            networks.append(str(ipaddress.ip_network(str(raw), strict=False)))
        except ValueError:
            continue  # An unreadable network allows nobody; the rest still apply.
    ranges = " || ".join(f'ip(context.ip).isInRange(ip("{n}"))' for n in networks) or "false"
    text = (
        f'@id("tenant.{tenant.id}.networks")\n'
        f"forbid (principal, action, resource)\n"
        f'unless {{ context.ip != "" && ({ranges}) }};'
    )
    policies = _keyed_by_id(_parse(text))
    for policy in policies.values():
        policy["conditions"].insert(0, _tenant_condition(tenant.id))
    return policies


def _hours(tenant: Tenant | None) -> tuple[int, int]:
    hours = tenant.attributes.get("allowed_hours") if tenant is not None else None
    if not hours:
        return 0, 24
    if isinstance(hours, Mapping):
        hours = (hours.get("start", 0), hours.get("end", 24))
    start, end = (int(h) for h in hours)
    return start, end


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
        self._platform = _keyed_by_id(_parse(_read("platform.cedar")))
        self._actions = cedarpy.Entities.from_json_str(orjson.dumps(_action_entities()).decode())
        self._source, self._now, self._cache_size = source, now, cache_size
        self._version: int | None = None
        self._sets: dict[str, cedarpy.PolicySet] = {}
        self._cache: dict[tuple[Any, ...], str | None] = {}
        self._tenants: dict[str, Tenant] = {}

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
            self._version, self._sets, self._cache, self._tenants = version, {}, {}, {}
        if ctx.tenant is not None and self._tenants.get(ctx.tenant.id) is not ctx.tenant:
            self._saw(ctx.tenant)
        resource = resource or Resource(tenant_id=ctx.tenant_id, kind=action.partition(":")[0])
        env = env or Environment()
        hour = (env.now or self._now()).astimezone(UTC).hour
        attrs = ctx.attributes
        clearance = attrs.get("clearance", "internal")
        grants = frozenset(attrs.get("grants") or ())
        key: tuple[Any, ...] = (ctx.principal.id, ctx.role, ctx.tenant_id, clearance, grants)
        key += (action, resource, env.client_ip, hour)
        try:
            decided = self._cache[key]
        except KeyError:
            decided = self._decide(ctx, action, resource, env.client_ip, hour, texts)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = decided
        if decided is not None:
            message = _MESSAGES.get(decided, f"role '{ctx.role.value}' may not perform '{action}'")
            raise PermissionDenied(message, policy=decided)

    def _saw(self, tenant: Tenant) -> None:
        """Drop what was decided under other attributes of this tenant (without a new version)."""
        known = self._tenants.get(tenant.id)
        if known is not None and known.attributes != tenant.attributes:
            self._sets, self._cache, self._tenants = {}, {}, {}
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
        tenant = ctx.tenant
        start, end = _hours(tenant)
        regions = tenant.attributes.get("regions") if tenant is not None else None
        principal = {
            "uid": {"type": "Principal", "id": ctx.principal.id},
            "attrs": {
                "tenant": ctx.tenant_id or "",
                "clearance": CLEARANCE.get(str(ctx.attributes.get("clearance", "internal")), 0),
                "regions": [str(r) for r in regions or ()],
                "hours_from": start,
                "hours_to": end,
            },
            "parents": [{"type": "Role", "id": ctx.role.value}],
        }
        target = {
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
        entities = self._actions.with_added_json_str(orjson.dumps([principal, target]).decode())
        request = {
            "principal": {"type": "Principal", "id": ctx.principal.id},
            "action": {"type": "Action", "id": action},
            "resource": {"type": "Resource", "id": "resource"},
            "context": {
                "ip": client_ip or "",
                "hour": hour,
                "grants": [str(g) for g in ctx.attributes.get("grants") or ()],
            },
        }
        result = cedarpy.is_authorized(request, self._policies_for(tenant, texts), entities)
        diagnostics = result.diagnostics
        for error in diagnostics.errors:
            found = _ERROR_POLICY.search(error)
            return found.group(1) if found else DEFAULT_DENY
        if result.allowed:
            return None
        reasons = sorted(diagnostics.reasons)
        return reasons[0] if reasons else DEFAULT_DENY

    def _policies_for(self, tenant: Tenant | None, texts: Mapping[str, str]) -> cedarpy.PolicySet:
        tenant_id = tenant.id if tenant is not None else ""
        found = self._sets.get(tenant_id)
        if found is None:
            policies = dict(self._platform)
            if tenant is not None:
                policies.update(self._tenant_policies(tenant, texts.get(tenant.id, "")))
            est = {"staticPolicies": policies, "templates": {}, "templateLinks": []}
            found = self._sets[tenant_id] = cedarpy.PolicySet.from_json_str(
                orjson.dumps(est).decode()
            )
        return found

    def _tenant_policies(self, tenant: Tenant, text: str) -> dict[str, Any]:
        policies: dict[str, Any] = {}
        if tenant.attributes.get("allowed_networks"):
            policies.update(_network_policy(tenant))
        if text.strip():
            try:
                policies.update(compile_tenant_policies(tenant.id, text, self.schema))
            except InvalidRequest:
                # Stored policies the schema no longer accepts: fail closed on the
                # model API, and leave the tenant API open to fix them.
                policies.update(_keyed_by_id(_parse(_invalid_policy(tenant.id))))
        return policies


def _invalid_policy(tenant_id: str) -> str:
    return (
        f'@id("tenant.{tenant_id}.invalid")\n'
        f'forbid (principal, action in Action::"v1", resource) '
        f'when {{ principal.tenant == "{tenant_id}" }};'
    )
