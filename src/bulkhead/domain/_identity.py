"""People's credentials: a tenant's OIDC identity provider, and a signed-in person."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from bulkhead.domain._tenancy import PLATFORM_ROLES, TENANT_ROLES, Role

# When a token's claims map to several roles, the first of these that it holds is
# the session's role (a context carries one role).
ROLE_PRECEDENCE = (Role.TENANT_ADMIN, Role.MODEL_DEVELOPER, Role.END_USER, Role.TENANT_AUDITOR)
# A person's session in these roles needs a second factor.  Platform auditors
# read every tenant's records, so they are held to the admins' rule.
MFA_ROLES = PLATFORM_ROLES | {Role.TENANT_ADMIN}
# OpenID Connect `amr` values (RFC 8176 §2) by authentication factor.  A sign-in is
# multi-factor when the IdP says so (`mfa`) or its methods span two of these kinds:
# `pin` and `pwd` are both something known, so ["pwd", "pin"] is one factor; `hwk` or
# `otp` alone is one factor too.  `sms` and `tel` (a code or call to a phone number)
# never count: the number can be taken over (SIM swap, SS7 interception) and NIST SP
# 800-63B §5.1.3.3 restricts them; an IdP that accepts them still may assert `mfa`.
# `user` (presence), `mca`, `geo`, `rba` and `wia` are not factors.
MFA_AMR = "mfa"
AMR_FACTORS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(("pwd", "pin", "kba"), "knowledge"),
        **dict.fromkeys(("otp", "hwk", "swk", "sc"), "possession"),
        **dict.fromkeys(("fpt", "face", "iris", "retina", "vbm"), "inherence"),
    }
)
# RFC 8176 registers about twenty values: a longer `amr` is not one a real IdP sends.
MAX_AMR_VALUES = 32
_MAPPING_KEYS = frozenset({"principal", "roles", "role_values", "default_role", "attributes"})
# Attribute names a claim mapping may not set: policy reads them as the platform
# set them (the principal's tenant, regions and hours; the request's address,
# hour and privileged-access grants).  `clearance` may be mapped, since a claim
# can only lower the clearance the platform set (`gateway.tenant_context`).
RESERVED_ATTRIBUTES = frozenset(
    {"grants", "tenant", "regions", "hours_from", "hours_to", "ip", "hour", "role", "roles"}
)
MAX_MAPPED_ATTRIBUTES = 16
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_CLAIM = re.compile(r"[!-~]{1,128}")


def mappable(attribute: str) -> bool:
    """Whether a claim may be mapped onto `attribute` of the tenant context."""
    return bool(_ATTRIBUTE.fullmatch(attribute)) and attribute.lower() not in RESERVED_ATTRIBUTES


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    """Which claims name the principal, its roles and its attributes.

    `role_values` maps a claim value (e.g. an IdP group) to a tenant role; when
    it is empty, claim values that are tenant role names are taken as they are.
    Platform roles are never granted through a tenant's IdP, whatever it says.
    """

    principal: str = "sub"
    roles: str = "roles"
    role_values: Mapping[str, Role] = field(default_factory=dict)
    default_role: Role | None = None
    # attribute name -> claim name
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, strict: bool = True) -> ClaimMapping:
        """Parse a submitted (or, not `strict`, a stored) mapping; bad input raises ValueError.

        Unknown keys and bad roles are refused either way.  A submitted mapping
        must also name claims plainly and may not map a claim onto a reserved
        attribute; a stored one, written before that rule, has those dropped.
        """
        claim = _claim if strict else str
        unknown = set(data) - _MAPPING_KEYS
        if unknown:
            raise ValueError(f"unknown claim mapping key '{sorted(unknown)[0]}'")
        role_values = {
            str(k): _tenant_role(v) for k, v in dict(data.get("role_values", {})).items()
        }
        default = data.get("default_role")
        return cls(
            principal=claim(data.get("principal", "sub")),
            roles=claim(data.get("roles", "roles")),
            role_values=MappingProxyType(role_values),
            default_role=_tenant_role(default) if default is not None else None,
            attributes=MappingProxyType(_attributes(data.get("attributes") or {}, strict)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "roles": self.roles,
            "role_values": {k: v.value for k, v in self.role_values.items()},
            "default_role": self.default_role.value if self.default_role else None,
            "attributes": dict(self.attributes),
        }


def _claim(value: object) -> str:
    if not isinstance(value, str) or not _CLAIM.fullmatch(value):
        raise ValueError(f"'{value}' is not a claim name (1 to 128 printable characters)")
    return value


def _attributes(data: object, strict: bool) -> dict[str, str]:
    """attribute -> claim.  Strict: refuse reserved or malformed names; else drop them."""
    if not isinstance(data, Mapping):
        raise ValueError("attributes must map attribute names to claim names")
    out: dict[str, str] = {}
    for name, claim in data.items():
        if not strict:
            if isinstance(name, str) and mappable(name):
                out[name] = str(claim)
            continue
        if not isinstance(name, str) or not _ATTRIBUTE.fullmatch(name):
            raise ValueError(
                f"'{name}' is not an attribute name (a letter, then letters, digits, _)"
            )
        if not mappable(name):
            raise ValueError(
                f"'{name}' cannot come from a claim: policy reads it as the platform set it"
            )
        out[name] = _claim(claim)
    if len(out) > MAX_MAPPED_ATTRIBUTES:
        raise ValueError(f"at most {MAX_MAPPED_ATTRIBUTES} attributes may be mapped")
    return out


def _tenant_role(value: object) -> Role:
    try:
        role = Role(str(value))
    except ValueError:
        raise ValueError(f"'{value}' is not a role") from None
    if role not in TENANT_ROLES:
        raise ValueError(f"'{role.value}' is a platform role; an IdP grants tenant roles only")
    return role


@dataclass(frozen=True, slots=True)
class IdpConfig:
    """A tenant's OpenID Connect provider.  An issuer belongs to exactly one tenant."""

    tenant_id: str
    issuer: str
    audience: str
    jwks_url: str
    mapping: ClaimMapping = ClaimMapping()
    # Admin roles need a second factor, which the IdP asserts in `amr`.
    require_mfa_for_admin: bool = True
    algorithms: frozenset[str] = frozenset({"RS256", "ES256"})
    # Whether a (sealed) client secret is stored for the console's code exchange.
    has_client_secret: bool = False


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A person's credential on one request: a sign-in session or an IdP token.

    It has no model scope beyond its role (`models` is always None), unlike an
    API key, which may be narrowed to some models.
    """

    id: str
    kind: str  # "session" or "oidc"
    tenant_id: str | None
    principal_id: str
    role: Role
    mfa: bool
    expires_at: datetime
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> frozenset[str] | None:
        return None


def multi_factor(amr: Any) -> bool:
    """Whether an `amr` claim (RFC 8176: a JSON array of strings) shows multi-factor sign-in.

    Anything but a list of at most `MAX_AMR_VALUES` is no proof of anything (fail closed).
    """
    if not isinstance(amr, list) or len(amr) > MAX_AMR_VALUES:
        return False
    values = {v for v in amr if isinstance(v, str)}
    return MFA_AMR in values or len({AMR_FACTORS[v] for v in values if v in AMR_FACTORS}) >= 2
