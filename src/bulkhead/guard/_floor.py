"""The platform's guard settings for a tenant are a floor: the tenant's own only tighten them.

A tenant's settings come in two layers, each holding only the keys someone
set: the platform's (the floor) and the tenant's own on top.  For every
setting the platform set, the tenant's value must guard at least as much:

- an action (`pii`, `secrets`, each entity's) ranks off < detect < mask <
  pseudonymize < redact < block, compared entity by entity, so a tenant's
  per-entity override cannot undo the platform's group action either;
- `injection` ranks off < flag < block, and `injection_threshold` may only go
  down (it blocks or flags sooner);
- `scan_output`, `strip_images`, `strip_links`, `canary`, `injection_learned`
  may only be turned on, `allow_logprobs` and `allow_fine_tuned_logprobs` only off;
- `allowed_link_hosts` may only shrink (each host covered by the platform's
  list), `phone_regions` only grow, `stream_window` only grow;
- a setting that decides what a floored one (set to guard) does is held too, to the
  floor's value or default: `injection_threshold` under a floored
  `injection`, `allowed_link_hosts` under `strip_images` or `strip_links`,
  `phone_regions` under a floored action for phone numbers.

`looser_settings` names what a tenant layer would loosen (its writes are
refused with that name); `with_floor` is what the gateway guards with: the
floor and the tenant's settings, without any that loosen it (the platform
may have tightened the floor after the tenant chose).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bulkhead.guard._config import GuardConfig, InjectionMode
from bulkhead.guard._entities import SECRET_ENTITIES, Action, Entity

_ACTIONS = (
    Action.OFF,
    Action.DETECT,
    Action.MASK,
    Action.PSEUDONYMIZE,
    Action.REDACT,
    Action.BLOCK,
)
_INJECTION = (InjectionMode.OFF, InjectionMode.FLAG, InjectionMode.BLOCK)


def _covered(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether `allowed` lets through every target `host` does (`*.x` covers x's subdomains)."""
    if host in allowed:
        return True
    # A wildcard `*.y` reaches y's subdomains: covered where every one of them is.
    target = host[1:] if host.startswith("*.") else host
    return any(a.startswith("*.") and target.endswith(a[1:]) for a in allowed)


# Per setting (other than the actions): whether `own` guards at least as much as `floor`.
_AT_LEAST: dict[str, Callable[[Any, Any], bool]] = {
    "scan_output": lambda own, floor: own or not floor,
    "strip_images": lambda own, floor: own or not floor,
    "strip_links": lambda own, floor: own or not floor,
    "canary": lambda own, floor: own or not floor,
    "injection_learned": lambda own, floor: own or not floor,
    "allow_logprobs": lambda own, floor: floor or not own,
    "allow_fine_tuned_logprobs": lambda own, floor: floor or not own,
    "injection": lambda own, floor: _INJECTION.index(own) >= _INJECTION.index(floor),
    "injection_threshold": lambda own, floor: own <= floor,
    "allowed_link_hosts": lambda own, floor: all(_covered(h, floor) for h in own),
    "phone_regions": lambda own, floor: set(floor) <= set(own),
    "stream_window": lambda own, floor: own >= floor,
}
# Settings that decide what a floored setting does: where the platform set the
# one on the right to guard, the one on the left is held to the floor's value too
# (its default, if the platform left it), or a tenant would hollow out the floored
# one through it: `injection: block` with a threshold of 1.0 blocks nothing, and
# `strip_links` with `allowed_link_hosts: ["*.attacker.example"]` strips none of theirs.
_QUALIFIES: dict[str, tuple[tuple[str, Callable[[GuardConfig], bool]], ...]] = {
    "injection_threshold": (("injection", lambda c: c.injection is not InjectionMode.OFF),),
    "allowed_link_hosts": (
        ("strip_images", lambda c: c.strip_images),
        ("strip_links", lambda c: c.strip_links),
    ),
}
# The settings compared entity by entity, through `GuardConfig.action_for`.
ACTION_SETTINGS = frozenset({"pii", "secrets", "entities"})
# Every setting the floor orders (a test holds this to `GuardConfig`'s fields).
FLOORED = ACTION_SETTINGS | frozenset(_AT_LEAST)


def combined(floor: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """The tenant's layer over the platform's; `entities` merge entity by entity."""
    out = {**floor, **own}
    if "entities" in floor and "entities" in own:
        out["entities"] = {**floor["entities"], **own["entities"]}
    return out


def _governed(floor: Mapping[str, Any], entity: Entity) -> bool:
    """Whether the platform set what decides `entity`'s action."""
    group = "secrets" if entity in SECRET_ENTITIES else "pii"
    return group in floor or entity.value in (floor.get("entities") or {})


def _source(own: Mapping[str, Any], entity: Entity) -> str:
    """The tenant setting that decides `entity`'s action."""
    if entity.value in (own.get("entities") or {}):
        return f"entities.{entity.value}"
    return "secrets" if entity in SECRET_ENTITIES else "pii"


def looser_settings(floor: Mapping[str, Any], own: Mapping[str, Any]) -> list[str]:
    """The tenant settings (`entities.<entity>` for one entity) that would loosen the floor.

    Both layers must be valid settings (`GuardConfig.from_dict`); raises ValueError if not.
    """
    base, mine = GuardConfig.from_dict(floor), GuardConfig.from_dict(combined(floor, own))
    found: list[str] = []
    for entity in Entity:
        if not _governed(floor, entity):
            continue
        if _ACTIONS.index(mine.action_for(entity)) < _ACTIONS.index(base.action_for(entity)):
            found.append(_source(own, entity))
    for name, at_least in _AT_LEAST.items():
        held = _floored(floor, base, name)
        if held and not at_least(getattr(mine, name), getattr(base, name)):
            found.append(name)
    return sorted(set(found))


def _floored(floor: Mapping[str, Any], base: GuardConfig, name: str) -> bool:
    """Whether the floor holds `name`: it set it, or set a setting `name` qualifies to guard."""
    if name in floor or any(q in floor and on(base) for q, on in _QUALIFIES.get(name, ())):
        return True
    # Which phone numbers are found decides what a floored action for them does.
    phone = _governed(floor, Entity.PHONE) and base.action_for(Entity.PHONE) is not Action.OFF
    return name == "phone_regions" and phone


def _without(own: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    kept = {k: v for k, v in own.items() if k not in names and k != "entities"}
    entities = {
        k: v for k, v in (own.get("entities") or {}).items() if f"entities.{k}" not in names
    }
    if entities:
        kept["entities"] = entities
    return kept


def with_floor(floor: Mapping[str, Any], own: Mapping[str, Any]) -> GuardConfig:
    """The settings to guard with: the floor, and the tenant's own that do not loosen it."""
    mine = dict(own)
    # Dropping a group action can expose an entity override below it: check again.
    for _ in range(3):
        loose = looser_settings(floor, mine)
        if not loose:
            break
        mine = _without(mine, loose)
    else:
        mine = {}
    return GuardConfig.from_dict(combined(floor, mine))


def settings_of(floor: Mapping[str, Any], own: Mapping[str, Any]) -> GuardConfig:
    """`with_floor`, never raising: stored settings that do not parse fall back to the
    floor alone, then to the defaults, never to less than a valid floor."""
    for layers in ((floor, own), (floor, {})):
        try:
            return with_floor(*layers)
        except (ValueError, TypeError):
            continue
    return GuardConfig()
