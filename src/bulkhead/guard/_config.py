"""A tenant's guard settings: one frozen, validated object, read from and written to JSON.

The defaults protect without surprising:

- **Secrets** (API keys, cloud credentials, bearer tokens, JWTs, private
  keys) are redacted on input: a credential pasted into a prompt is never
  needed by the model, and sending it to a provider leaks it for good.
- **Personal data** is `off`: names, numbers and addresses are often the
  point of the request (draft a letter, check a form), and changing them by
  default would break applications.  Tenants opt in, per entity if needed.
- **Injection** is `flag`: scored, reported and audited, not refused, since
  rules have false positives and refusing is the tenant's call.
- **The learned injection stage** (`injection_learned`) is off: on the
  texts the rules pass, a character n-gram model catches paraphrases the
  rules miss, but on hard benign prompts written apart from its training data
  it flags more than 2 % (docs/benchmarks.md); a tenant who wants the recall
  turns it on.
- **Images** to hosts not on the allowlist are stripped from responses: an
  image fetch is the one exfiltration channel that needs no click.  Plain
  links are kept unless `strip_links` is set.
- **The canary** is off: it adds a system message (or a line before the
  tenant's own) to every chat prompt, which changes what the model reads.  A
  tenant (or the platform's floor) turns it on to catch a model reciting its
  system prompt; its tokens are then the gateway's own, never charged to the
  tenant or shown in its usage, and error indexes name the caller's messages.
- **logprobs** are refused unless allowed: token probabilities help
  membership-inference and model-extraction attacks.  On a fine-tuned model
  (``ft:…``, trained on the tenant's own data) they also need
  `allow_fine_tuned_logprobs`: membership inference there reads the training set.

Settings come from the tenant's configuration only; nothing in a request
can change them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

import orjson

from bulkhead.guard._entities import SECRET_ENTITIES, Action, Entity
from bulkhead.guard._stream import DEFAULT_WINDOW, MAX_WINDOW, MIN_WINDOW

_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_REGION = re.compile(r"[A-Z]{2}")
_DEFAULT_REGIONS = ("CN", "US", "GB")
_E = TypeVar("_E", bound=StrEnum)
_FLAGS: tuple[str, ...] = ("scan_output", "strip_images", "strip_links", "canary")
_FLAGS += ("allow_logprobs", "allow_fine_tuned_logprobs", "injection_learned")


class InjectionMode(StrEnum):
    """`off` skips the scan; `flag` scores and reports; `block` refuses at the threshold."""

    OFF = "off"
    FLAG = "flag"
    BLOCK = "block"


@dataclass(frozen=True)
class GuardConfig:
    """What a tenant's guards do; see the module docstring for why the defaults are these."""

    pii: Action = Action.OFF
    """The action for personal data (e-mail, phone, PRC ID, card, IBAN, IP address)."""
    secrets: Action = Action.REDACT
    """The action for credentials (API key, cloud secret, bearer token, JWT, private key)."""
    entities: Mapping[Entity, Action] = field(default_factory=dict)
    """Per-entity overrides of the two above."""
    scan_output: bool = True
    """Apply the entity actions to responses too (`pseudonymize` reports new values there)."""
    injection: InjectionMode = InjectionMode.FLAG
    injection_threshold: float = 0.5
    injection_learned: bool = False
    """Score what the rules pass with the shipped learned model too (`guard/learned`)."""
    strip_images: bool = True
    strip_links: bool = False
    allowed_link_hosts: tuple[str, ...] = ()
    """Hosts images and links may point to; `*.example.com` allows its subdomains."""
    canary: bool = False
    """Put a canary in the system prompt and stop a response that repeats it (opt-in)."""
    allow_logprobs: bool = False
    allow_fine_tuned_logprobs: bool = False
    """Logprobs on the tenant's fine-tuned models too (with `allow_logprobs`)."""
    phone_regions: tuple[str, ...] = _DEFAULT_REGIONS
    """Regions whose national phone formats (no `+`) are recognised."""
    stream_window: int = DEFAULT_WINDOW
    """The most characters a response stream is held back by."""

    def __post_init__(self) -> None:
        _check_enum(self.pii, Action, "pii")
        _check_enum(self.secrets, Action, "secrets")
        _check_enum(self.injection, InjectionMode, "injection")
        for name in _FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        self._check_numbers()
        object.__setattr__(self, "entities", MappingProxyType(_entity_actions(self.entities)))
        object.__setattr__(self, "allowed_link_hosts", _hosts(self.allowed_link_hosts))
        object.__setattr__(self, "phone_regions", _regions(self.phone_regions))

    def _check_numbers(self) -> None:
        threshold = self.injection_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError("injection_threshold must be a number")
        if not 0.0 < threshold <= 1.0:
            raise ValueError("injection_threshold must be in (0, 1]")
        window = self.stream_window
        if isinstance(window, bool) or not isinstance(window, int):
            raise ValueError("stream_window must be an integer")
        if not MIN_WINDOW <= window <= MAX_WINDOW:
            raise ValueError(f"stream_window must be {MIN_WINDOW} to {MAX_WINDOW}")

    def __hash__(self) -> int:
        return hash(self.to_json())

    def action_for(self, entity: Entity) -> Action:
        """The action for `entity`: its override, else the default of its group."""
        override = self.entities.get(entity)
        if override is not None:
            return override
        return self.secrets if entity in SECRET_ENTITIES else self.pii

    def enabled_entities(self) -> frozenset[Entity]:
        """The entities to look for at all (those whose action is not `off`)."""
        return frozenset(e for e in Entity if self.action_for(e) is not Action.OFF)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values, every field present."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["entities"] = {e.value: a.value for e, a in sorted(self.entities.items())}
        out["allowed_link_hosts"] = list(self.allowed_link_hosts)
        out["phone_regions"] = list(self.phone_regions)
        return {k: v.value if isinstance(v, StrEnum) else v for k, v in out.items()}

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GuardConfig:
        """Settings from JSON values; missing keys take their defaults, unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise ValueError("guard settings must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown guard settings: {', '.join(map(str, unknown))}")
        values = dict(data)
        for name, kind in (("pii", Action), ("secrets", Action), ("injection", InjectionMode)):
            if name in values:
                values[name] = _parse_enum(kind, values[name], name)
        if "entities" in values:
            values["entities"] = _parse_entities(values["entities"])
        for name in ("allowed_link_hosts", "phone_regions"):
            if name in values:
                values[name] = _parse_strings(values[name], name)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> GuardConfig:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError("guard settings are not valid JSON") from exc
        return cls.from_dict(data)


def _check_enum(value: object, kind: type[StrEnum], name: str) -> None:
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be one of: {', '.join(m.value for m in kind)}")


def _parse_enum(kind: type[_E], value: object, name: str) -> _E:
    choices = ", ".join(m.value for m in kind)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be one of: {choices}")
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be one of: {choices}") from None


def _parse_entities(value: object) -> dict[Entity, Action]:
    if not isinstance(value, Mapping):
        raise ValueError("entities must be an object of entity: action")
    return {
        _parse_enum(Entity, k, "entity"): _parse_enum(Action, v, f"entities.{k}")
        for k, v in value.items()
    }


def _parse_strings(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return tuple(value)


def _entity_actions(value: Mapping[Entity, Action]) -> dict[Entity, Action]:
    if not isinstance(value, Mapping):
        raise ValueError("entities must be a mapping of Entity to Action")
    for entity, action in value.items():
        _check_enum(entity, Entity, "an entity")
        _check_enum(action, Action, f"entities.{entity}")
    return dict(value)


def _hosts(value: tuple[str, ...]) -> tuple[str, ...]:
    hosts = tuple(sorted({h.strip().lower().rstrip(".") for h in _strings(value, "hosts")}))
    bad = [h for h in hosts if not _HOST.fullmatch(h)]
    if bad:
        raise ValueError(f"allowed_link_hosts: not a host name: {bad[0]!r}")
    return hosts


def _regions(value: tuple[str, ...]) -> tuple[str, ...]:
    """Known regions, each once: every phone candidate is parsed once per region listed, and
    the detector cannot be built for a region libphonenumber has no metadata for."""
    regions = tuple(dict.fromkeys(_strings(value, "phone_regions")))
    if not all(_REGION.fullmatch(r) for r in regions):
        raise ValueError("phone_regions are ISO 3166 alpha-2 codes (e.g. CN, US)")
    if regions != _DEFAULT_REGIONS:
        # libphonenumber loads only where a tenant names its own regions.
        from phonenumbers import SUPPORTED_REGIONS

        unknown = [r for r in regions if r not in SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"phone_regions: no phone numbering known for {unknown[0]!r}")
    return regions


def _strings(value: object, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, tuple | list):
        raise ValueError(f"{name} must be a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return tuple(value)
