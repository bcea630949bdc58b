"""The one schema of every audit event: metadata only, never content or secrets.

Events carry values that tenants and their identity providers chose (a
token's `jti`, a model name, a path), so `as_dict` is a boundary: whatever a
field holds, what leaves it is a JSON value that RFC 8785 can encode — lone
surrogates replaced, strings bounded, integers exact, floats finite — and an
event can never stop the writer.  The writer encodes `members` as they are
first and cleans only an event that fails to encode or comes out too long,
which keeps the common case at one length check.
"""

from __future__ import annotations

import math
import operator
import os
import re
import time
from dataclasses import dataclass, field, fields
from typing import Any

MAX_TEXT = 2048
"""The most characters a string field keeps; the rest is cut and marked."""

_SAFE_INTEGER = 2**53
"""RFC 8785 §3.2.2.3: JSON numbers are doubles, exact for integers up to 2**53."""

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def new_event_id() -> str:
    """A fresh event id: 32 hex digits, the creation time in milliseconds, then 80 random bits.

    Ids made one after another sort one after another, so each new entry goes
    to the right edge of the log's unique index on `event_id` (one B-tree page
    per commit, not one random page per entry: every page a commit touches is
    written and fsynced).  80 random bits keep ids unique however many are
    made in one millisecond, across replicas; an id says nothing the entry's
    own `time` does not, and grants nothing (a proof is looked up by id only
    within the asker's view).
    """
    return (time.time_ns() // 1_000_000).to_bytes(6, "big").hex() + os.urandom(10).hex()


@dataclass(slots=True)
class AuditEvent:
    action: str
    outcome: str  # "success" or "failure"
    status: int
    request_id: str | None = None
    tenant_id: str | None = None
    principal_id: str | None = None
    credential_id: str | None = None
    resource: str | None = None
    decision: str = "allow"  # "allow" or "deny"
    reason: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    client: str | None = None
    time: float = field(default_factory=time.time)
    event_id: str = field(default_factory=new_event_id)
    # The id of what the call created: a tenant, principal, key, model, version, request.
    object_id: str | None = None
    # The tenant a platform action acted on; the event then shows in that tenant's view.
    target_tenant: str | None = None

    def members(self) -> dict[str, Any]:
        """The fields that are set, as they are: the writer's fast path, checked by encoding."""
        return {n: v for n, v in zip(_FIELDS, _values(self), strict=True) if v is not None}

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-safe members; a value with no exact JSON form is dropped."""
        return clean_members(self.members())


def clean_members(members: dict[str, Any]) -> dict[str, Any]:
    """`members` with every value cleaned (see `clean`); those without a JSON form dropped."""
    return {n: c for n, v in members.items() if (c := clean(v)) is not None}


def clean(value: object) -> str | int | float | None:
    """One field's value as RFC 8785 can encode it, or None where it has no such form."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool):
        return None  # no field is a boolean; True would pass for the integer 1
    if isinstance(value, int):
        return value if -_SAFE_INTEGER <= value <= _SAFE_INTEGER else None
    if isinstance(value, float):
        # NaN and infinities have no JSON form: a bad measurement is dropped.
        return value if math.isfinite(value) else None
    return None


def clean_text(text: str) -> str:
    """`text` without lone surrogates (I-JSON, RFC 7493 §2.1) and at most `MAX_TEXT` long."""
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "\u2026"
    if not text.isascii():
        text = _LONE_SURROGATE.sub("\ufffd", text)
    return text


_FIELDS = tuple(f.name for f in fields(AuditEvent))
_values = operator.attrgetter(*_FIELDS)
