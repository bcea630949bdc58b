"""What the guards find and what a tenant can do about it: entity kinds, actions, findings.

A `Finding` holds where an entity is, never what it is: it can be logged,
audited and compared in tests without carrying the matched text anywhere.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Entity(StrEnum):
    """A kind of sensitive value; the string is its name in configuration and audit."""

    EMAIL = "email"
    PHONE = "phone"
    PRC_ID = "prc_id"
    CARD = "card"
    IBAN = "iban"
    IP_ADDRESS = "ip_address"
    BANK_ACCOUNT = "bank_account"
    PASSPORT = "passport"
    API_KEY = "api_key"
    CLOUD_SECRET = "cloud_secret"  # noqa: S105 - an entity name, not a secret.
    BEARER_TOKEN = "bearer_token"  # noqa: S105 - an entity name, not a secret.
    JWT = "jwt"
    PRIVATE_KEY = "private_key"
    CREDENTIAL = "credential"
    """A password or secret: in a URL, a Basic authorization, a config or code assignment."""

    @property
    def label(self) -> str:
        """The upper-case name used in placeholders: `[REDACTED:CARD]`, `<EMAIL_1>`."""
        return self.value.upper()


SECRET_ENTITIES: frozenset[Entity] = frozenset(
    {
        Entity.API_KEY,
        Entity.CLOUD_SECRET,
        Entity.BEARER_TOKEN,
        Entity.JWT,
        Entity.PRIVATE_KEY,
        Entity.CREDENTIAL,
    }
)
"""Credentials: redacted on input by default, unlike personal data (see `GuardConfig`)."""

PII_ENTITIES: frozenset[Entity] = frozenset(Entity) - SECRET_ENTITIES


class Action(StrEnum):
    """What happens to a found entity.

    `detect` reports it and changes nothing; `mask` keeps a recognisable tail
    (`****1234`); `redact` puts `[REDACTED:CARD]` in its place; `pseudonymize`
    sends a stable placeholder (`<EMAIL_1>`) to the model and restores the
    value in the response; `block` refuses the content; `off` skips detection.
    """

    OFF = "off"
    DETECT = "detect"
    MASK = "mask"
    REDACT = "redact"
    PSEUDONYMIZE = "pseudonymize"
    BLOCK = "block"


class Finding(NamedTuple):
    """One entity at `text[start:end]`; `validated` says a checksum or parser confirmed it.

    `where` names the part of a request it was found in (`messages[2].content`).  A named
    tuple, immutable like a frozen dataclass and made several times faster: a scan of a
    text full of entities makes two for each (issue 19).
    """

    entity: Entity
    start: int
    end: int
    score: float = 1.0
    validated: bool = False
    where: str = ""

    def at(self, where: str) -> Finding:
        """The same finding, located in the part of a request named `where`."""
        return Finding(self.entity, self.start, self.end, self.score, self.validated, where)

    def shifted(self, offset: int) -> Finding:
        return Finding(
            self.entity,
            self.start + offset,
            self.end + offset,
            self.score,
            self.validated,
            self.where,
        )

    def summary(self) -> str:
        """A line safe for any log: kind, place and span, never the text."""
        check = "validated" if self.validated else "pattern"
        place = f"{self.where}:" if self.where else ""
        return f"{self.entity.value}@{place}{self.start}-{self.end} ({check}, {self.score:.2f})"


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep non-overlapping findings, earliest first, the longer one where two start together.

    A bearer token that is also a JWT, or a PEM block holding key-like lines,
    is reported once, as the widest match.
    """
    ordered = sorted(findings, key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for finding in ordered:
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept
