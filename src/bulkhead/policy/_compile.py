"""Cedar text to the policies a decision is made by, each under an id of its namespace.

Three namespaces, which no text can cross:

- `platform.<name>`: the platform's own policies (`platform.cedar`);
- `platform.tenant.<tenant id>.<name>`: what the platform generates for one
  tenant from its attributes (its allowed networks; the stand-in for stored
  policies that no longer check);
- `tenant.<tenant id>.<its @id>`: a tenant's own policies.

A tenant's @id only ever lands after `tenant.<its tenant id>.`, so no tenant
policy can take the id of (and so replace) a platform or generated one, nor
another tenant's.  Tenant text is checked by `_bounds` before cedarpy parses
it, and everything here is blocking: callers run it off the event loop.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

import cedarpy
import orjson

from bulkhead.domain import Tenant
from bulkhead.errors import InvalidRequest
from bulkhead.policy._bounds import check_depth, check_text, split_policies

GENERATED = "platform.tenant"
TENANT = "tenant"
MAX_NETWORKS = 64
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_POSITION = re.compile(r"\d+$")
# Cedar's strict validation wants ip("...") literals; `ip(context.ip)` is how a
# policy reads the client address, so that one complaint is let through.
_NON_LITERAL = "extension constructors may not be called with non-literal expressions"


def tenant_policy_id(tenant_id: str, name: str) -> str:
    return f"{TENANT}.{tenant_id}.{name}"


def generated_policy_id(tenant_id: str, name: str) -> str:
    return f"{GENERATED}.{tenant_id}.{name}"


def _refuse(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="policies")


def parse(text: str) -> dict[str, Any]:
    """Cedar text to its JSON form (EST): {"staticPolicies": {...}, "templates": {...}}.

    One policy at a time: cedarpy's parser holds the interpreter lock, and a
    whole set of policies within the bounds takes it for tens of milliseconds
    (the event loop waits that long), one policy for well under one.  Cedar
    names the policies by their place in the text (`policy0`, `policy1`…); so
    do the joined results.
    """
    found: dict[str, Any] = {"staticPolicies": {}, "templates": {}, "templateLinks": []}
    for number, piece in enumerate(split_policies(text), start=1):
        try:
            json = cedarpy.policies_to_json_str(piece)
        except ValueError as exc:
            where = f"policy #{number} " if number > 1 else ""
            raise _refuse(f"The policies do not parse: {where}{exc}") from None
        try:
            parsed: dict[str, Any] = orjson.loads(json)
        except orjson.JSONDecodeError:
            # Cedar wrote it, so it is JSON: only its depth (orjson stops at 1024) can fail.
            raise _refuse("A policy nests too deeply to be loaded.") from None
        for kind in ("staticPolicies", "templates"):
            for policy in _ordered_values(parsed.get(kind) or {}):
                taken = len(found["staticPolicies"]) + len(found["templates"])
                found[kind][f"policy{taken}"] = policy
        found["templateLinks"] += parsed.get("templateLinks") or []  # refused with templates
    return found


def _ordered_values(policies: Mapping[str, Any]) -> list[Any]:
    return [policy for _, policy in sorted(policies.items(), key=lambda i: _position(i[0]))]


def _ordered(est: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(Cedar's id, policy) in the order of the text; Cedar numbers them `policy0`, `policy1`…"""
    policies = est.get("staticPolicies") or {}
    return sorted(policies.items(), key=lambda item: _position(item[0]))


def _position(policy_id: str) -> int:
    found = _POSITION.search(policy_id)
    return int(found.group()) if found else 0


def _name(policy_id: str, policy: Mapping[str, Any]) -> str:
    """A policy's name: its @id, else Cedar's id for it (its position)."""
    return str(policy.get("annotations", {}).get("id") or policy_id)


def named(est: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, policy) in the order of the text."""
    return [(_name(pid, policy), policy) for pid, policy in _ordered(est)]


def keyed(policies: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Policies by id, each carrying its id as @id; an id given twice raises ValueError."""
    out: dict[str, dict[str, Any]] = {}
    for name, policy in policies:
        if name in out:
            raise ValueError(f"policy id '{name}' given twice")
        out[name] = {**policy, "annotations": {**policy.get("annotations", {}), "id": name}}
    return out


def merge(*sets: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One policy set from several; an id in two of them raises ValueError, never replaces."""
    return keyed((name, policy) for policies in sets for name, policy in policies.items())


def _tenant_condition(tenant_id: str) -> dict[str, Any]:
    principal_tenant = {".": {"left": {"Var": "principal"}, "attr": "tenant"}}
    return {
        "kind": "when",
        "body": {"==": {"left": principal_tenant, "right": {"Value": tenant_id}}},
    }


def _scoped(policy: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """The policy with a first condition: it applies to this tenant's principals alone."""
    return {**policy, "conditions": [_tenant_condition(tenant_id), *policy.get("conditions", [])]}


def _check_names(policies: list[tuple[str, dict[str, Any]]]) -> None:
    seen: set[str] = set()
    for name, policy in policies:
        if policy["effect"] != "forbid":
            raise _refuse(f"Policy '{name}' is a permit: tenant policies may only forbid.")
        if not _ID.match(name):
            raise _refuse(f"Policy id '{name}' must match {_ID.pattern}.")
        if name in seen:
            raise _refuse(f"Policy id '{name}' is used more than once.")
        seen.add(name)


def _validate(text: str, schema: cedarpy.Schema, names: Mapping[str, str]) -> None:
    result = cedarpy.validate_policies(text, schema, release_gil=True)
    for error in result.errors:
        if _NON_LITERAL not in error.error:
            name = names.get(error.policy_id, error.policy_id)
            raise _refuse(f"Policy '{name}' does not match the schema: {error.error}")


def load(policies: Mapping[str, dict[str, Any]]) -> cedarpy.PolicySet:
    """The engine's policy set; raises ValueError if Cedar cannot load it."""
    est = {"staticPolicies": dict(policies), "templates": {}, "templateLinks": []}
    return cedarpy.PolicySet.from_json_str(orjson.dumps(est).decode(), release_gil=True)


def compile_tenant_policies(
    tenant_id: str, text: str, schema: cedarpy.Schema
) -> dict[str, dict[str, Any]]:
    """A tenant's policy text, checked and scoped; raises `InvalidRequest` if it is refused.

    Refused: text over the bounds of `_bounds`, text that does not parse or
    fails the schema, templates, any `permit`, an @id used twice, and what
    Cedar could not load.  Each policy's @id becomes `tenant.<tenant id>.<its
    @id>`, and each gets a condition that it applies to this tenant's
    principals only.
    """
    check_text(text)
    est = parse(text)
    if est.get("templates"):
        raise _refuse("Policy templates are not accepted.")
    policies = named(est)
    _check_names(policies)
    _validate(text, schema, {pid: _name(pid, policy) for pid, policy in _ordered(est)})
    compiled = keyed(
        (tenant_policy_id(tenant_id, name), _scoped(policy, tenant_id)) for name, policy in policies
    )
    try:
        load(compiled)
    except ValueError as exc:
        for name, policy in policies:
            check_depth(name, policy)  # Names the policy that nests too deeply, if one does.
        raise _refuse(f"The policies cannot be loaded: {exc}") from None
    return compiled


# Generated per tenant --------------------------------------------------------------------


def networks(tenant: Tenant) -> tuple[str, ...] | None:
    """The tenant's `allowed_networks`, normalised; None when it has none (no restriction).

    Unreadable entries are dropped, so they allow nobody, and so is anything
    past the first `MAX_NETWORKS` (what the platform API accepts); a value
    that is not a list allows nobody at all.
    """
    raw = tenant.attributes.get("allowed_networks")
    if not raw:
        return None
    found: list[str] = []
    for item in list(raw)[:MAX_NETWORKS] if isinstance(raw, list | tuple) else ():
        try:
            found.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            continue
    return tuple(found)


def _any_of(terms: list[str]) -> str:
    """`a || b || …` as a balanced tree, so its depth grows with log(n), not n."""
    if not terms:
        return "false"
    while len(terms) > 1:
        pairs = [terms[i : i + 2] for i in range(0, len(terms), 2)]
        terms = [f"({p[0]} || {p[1]})" if len(p) == 2 else p[0] for p in pairs]
    return terms[0]


def network_policy(tenant: Tenant) -> dict[str, dict[str, Any]]:
    """`allowed_networks` as a forbid: outside them (or from an unknown address), nothing."""
    ranges = _any_of([f'ip(context.ip).isInRange(ip("{n}"))' for n in networks(tenant) or ()])
    text = f'forbid (principal, action, resource) unless {{ context.ip != "" && {ranges} }};'
    return _generated(tenant.id, "networks", text)


def invalid_policy(tenant_id: str) -> dict[str, dict[str, Any]]:
    """Stands in for stored policies that no longer check: the model API closes, nothing else."""
    return _generated(tenant_id, "invalid", 'forbid (principal, action in Action::"v1", resource);')


def _generated(tenant_id: str, name: str, text: str) -> dict[str, dict[str, Any]]:
    ((_, policy),) = named(parse(text))
    return keyed([(generated_policy_id(tenant_id, name), _scoped(policy, tenant_id))])
