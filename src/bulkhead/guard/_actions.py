"""What replaces a found entity: its mask, its redaction marker, or its pseudonym.

Masks keep what people use to recognise their own data and nothing that
identifies it: the last four digits of a card, the first letter and domain
of an e-mail address, the network part of an IP address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from bulkhead.errors import ContentBlocked
from bulkhead.guard._entities import SECRET_ENTITIES, Action, Entity, Finding
from bulkhead.guard._pseudonym import PseudonymVault

ActionOf = Callable[[Entity], Action]


def redaction(entity: Entity) -> str:
    return _REDACTIONS[entity]


_REDACTIONS = {entity: f"[REDACTED:{entity.label}]" for entity in Entity}


def _keep_last_digits(value: str, keep: int, *, head: int = 0) -> str:
    """Star every digit but the first `head` and last `keep`, keeping the separators."""
    positions = [i for i, c in enumerate(value) if c.isdigit() or c in "Xx"]
    hidden = set(positions[head : len(positions) - keep])
    return "".join("*" if i in hidden else c for i, c in enumerate(value))


def _mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[0]}***@{domain}"


def _mask_ip(value: str) -> str:
    address = ipaddress.ip_address(value.split("%", 1)[0])
    if address.version == 4:
        return ".".join([*value.split(".")[:2], "*", "*"])
    return ":".join([*address.exploded.split(":")[:3], "*"])


def _mask_secret(value: str) -> str:
    if len(value) < 16:
        return "****"
    return f"{value[:4]}****{value[-4:]}"


def mask(entity: Entity, value: str) -> str:
    """The masked form of `value`; a private key has no safe part and is redacted."""
    if entity in (Entity.CARD, Entity.BANK_ACCOUNT):
        return "****" + "".join(c for c in value if c.isdigit())[-4:]
    if entity is Entity.EMAIL:
        return _mask_email(value)
    if entity is Entity.PHONE:
        national_mobile = sum(c.isdigit() for c in value) >= 11 and not value.startswith("+")
        return _keep_last_digits(value, 4, head=3 if national_mobile else 0)
    if entity in (Entity.PRC_ID, Entity.IBAN, Entity.PASSPORT):
        compact = value.replace(" ", "").replace("-", "")
        head = 2 if entity is Entity.IBAN else 0
        return compact[:head] + "*" * (len(compact) - head - 4) + compact[-4:]
    if entity is Entity.IP_ADDRESS:
        return _mask_ip(value)
    if entity in (Entity.PRIVATE_KEY, Entity.CREDENTIAL):  # no part of a password is safe
        return redaction(entity)
    return _mask_secret(value)


def replacement(finding: Finding, value: str, action: Action, vault: PseudonymVault | None) -> str:
    """The text that takes `value`'s place under `action` (detect keeps it as it is)."""
    if action is Action.MASK:
        return mask(finding.entity, value)
    if action is Action.REDACT:
        return redaction(finding.entity)
    if action is Action.PSEUDONYMIZE and vault is not None:
        return vault.placeholder_for(finding.entity, value)
    return value


def reason(entity: Entity) -> str:
    kind = "secret" if entity in SECRET_ENTITIES else "pii"
    return f"{kind}:{entity.value}"


def refuse_blocked(findings: Sequence[Finding], action_of: ActionOf, *, output: bool) -> None:
    """Raise `ContentBlocked` naming the entity kinds (never the values) set to `block`."""
    blocked = sorted({reason(f.entity) for f in findings if action_of(f.entity) is Action.BLOCK})
    if not blocked:
        return
    if output:
        raise ContentBlocked(
            "The response was stopped by the content filter.", reasons=tuple(blocked)
        )
    kinds = ", ".join(r.split(":", 1)[1] for r in blocked)
    raise ContentBlocked(
        f"The request contains data that this tenant's policy does not allow ({kinds}).",
        reasons=tuple(blocked),
    )


def rewrite(
    text: str, findings: Sequence[Finding], action_of: ActionOf, vault: PseudonymVault | None
) -> str:
    """`text` with each finding replaced under its action; findings must not overlap."""
    if not findings:
        return text
    parts: list[str] = []
    position = 0
    for finding in findings:
        parts.append(text[position : finding.start])
        value = text[finding.start : finding.end]
        parts.append(replacement(finding, value, action_of(finding.entity), vault))
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)
