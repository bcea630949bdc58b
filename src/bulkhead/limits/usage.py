"""Token usage per tenant and model, counted by this process since it started."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class UsageLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage: dict[str, dict[str, Usage]] = defaultdict(dict)

    def add(self, tenant_id: str, model: str, prompt: int, completion: int) -> None:
        with self._lock:
            usage = self._usage[tenant_id].setdefault(model, Usage())
            usage.requests += 1
            usage.prompt_tokens += prompt
            usage.completion_tokens += completion

    def for_tenant(self, tenant_id: str) -> dict[str, Usage]:
        """A copy of one tenant's usage; the tenant id is required, never optional."""
        with self._lock:
            return {
                m: Usage(u.requests, u.prompt_tokens, u.completion_tokens)
                for m, u in self._usage.get(tenant_id, {}).items()
            }
