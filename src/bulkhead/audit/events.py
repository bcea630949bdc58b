"""The one schema of every audit event: metadata only, never content or secrets."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, fields
from typing import Any


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
    event_id: str = field(default_factory=lambda: os.urandom(16).hex())

    def as_dict(self) -> dict[str, Any]:
        # NaN and infinities have no JSON form (RFC 8785 refuses them), so a bad
        # measurement is dropped rather than allowed to stop the audit writer.
        out: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, float) and not math.isfinite(value)):
                out[name] = value
        return out


_FIELDS = tuple(f.name for f in fields(AuditEvent))
